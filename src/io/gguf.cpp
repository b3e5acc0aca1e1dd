// GGUF reader and writer (see include/qcast/gguf.hpp); the type table and dequantizers are in gguf_types.cpp.
#include "qcast/gguf.hpp"
#include "qcast/kernels/ggml_quants.hpp"

#include <cmath>
#include <cstring>
#include <set>
#include <type_traits>

#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/half.hpp"
#include "qcast/quantize.hpp"

namespace qcast::gguf {

namespace {

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" little-endian

struct Writer {
  std::vector<std::uint8_t> out;
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<std::uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void pad(std::size_t align) {
    while (out.size() % align) out.push_back(0);
  }
};

void put_scalar(Writer& w, ValueType t, const Scalar& s, const std::string& key) {
  try {
    switch (t) {
      case ValueType::U8: w.put(std::get<std::uint8_t>(s)); break;
      case ValueType::I8: w.put(std::get<std::int8_t>(s)); break;
      case ValueType::U16: w.put(std::get<std::uint16_t>(s)); break;
      case ValueType::I16: w.put(std::get<std::int16_t>(s)); break;
      case ValueType::U32: w.put(std::get<std::uint32_t>(s)); break;
      case ValueType::I32: w.put(std::get<std::int32_t>(s)); break;
      case ValueType::F32: w.put(std::get<float>(s)); break;
      case ValueType::Bool: w.put<std::uint8_t>(std::get<bool>(s) ? 1 : 0); break;
      case ValueType::String: w.str(std::get<std::string>(s)); break;
      case ValueType::U64: w.put(std::get<std::uint64_t>(s)); break;
      case ValueType::I64: w.put(std::get<std::int64_t>(s)); break;
      case ValueType::F64: w.put(std::get<double>(s)); break;
      case ValueType::Array: throw Error("gguf: nested arrays are not supported (key '" + key + "')");
    }
  } catch (const std::bad_variant_access&) {
    throw Error("gguf: metadata '" + key + "' holds a value that does not match its declared type " +
                std::to_string(static_cast<std::uint32_t>(t)));
  }
}

// A bounds-checked cursor over the file image: every read is checked against the bytes left, so a
// count or length from the file is never trusted before the file is known to hold it.
struct Cursor {
  const std::uint8_t* p;
  std::size_t n, pos = 0;
  const std::string& what;
  std::size_t left() const { return n - pos; }
  void need(std::uint64_t k, const std::string& field) {
    if (k > left())
      throw Error(what + ": truncated at byte " + std::to_string(pos) + " reading " + field + " (needs " + std::to_string(k) +
                  " bytes, " + std::to_string(left()) + " left)");
  }
  template <class T>
  T get(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const std::string& field) {
    const auto len = get<std::uint64_t>(field + " length");
    need(len, field);
    std::string s(reinterpret_cast<const char*>(p + pos), static_cast<std::size_t>(len));
    pos += static_cast<std::size_t>(len);
    return s;
  }
};

// Smallest encoding of one value of type t (strings: the u64 length), to bound array counts by the file.
std::uint64_t min_size(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::String: case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::Array: return 12;
  }
  return 1;
}

bool known_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(ValueType::F64); }

Scalar get_scalar(Cursor& r, ValueType t, const std::string& key) {
  const std::string f = "metadata '" + key + "'";
  switch (t) {
    case ValueType::U8: return r.get<std::uint8_t>(f);
    case ValueType::I8: return r.get<std::int8_t>(f);
    case ValueType::U16: return r.get<std::uint16_t>(f);
    case ValueType::I16: return r.get<std::int16_t>(f);
    case ValueType::U32: return r.get<std::uint32_t>(f);
    case ValueType::I32: return r.get<std::int32_t>(f);
    case ValueType::F32: return r.get<float>(f);
    case ValueType::Bool: {
      const auto b = r.get<std::uint8_t>(f);
      if (b > 1) throw Error(r.what + ": metadata '" + key + "' has a bool byte of " + std::to_string(b));
      return b != 0;
    }
    case ValueType::String: return r.str(f);
    case ValueType::U64: return r.get<std::uint64_t>(f);
    case ValueType::I64: return r.get<std::int64_t>(f);
    case ValueType::F64: return r.get<double>(f);
    case ValueType::Array: break;
  }
  throw Error(r.what + ": metadata '" + key + "' has unknown value type " + std::to_string(static_cast<std::uint32_t>(t)));
}

// Elements and bytes of a tensor of type `type` and dims `ne`, checked: known type, 1..4 dims, no
// overflow, rows of whole blocks. `who` names the tensor in errors.
std::uint64_t checked_bytes(GgmlType type, const std::vector<std::uint64_t>& ne, const std::string& who) {
  const TypeTraits* tt = find_type(static_cast<std::uint32_t>(type));
  if (!tt) throw Error(who + " has unknown ggml type " + std::to_string(static_cast<std::uint32_t>(type)));
  if (ne.empty() || ne.size() > 4) throw Error(who + " has " + std::to_string(ne.size()) + " dimensions (1..4 allowed)");
  std::uint64_t n = 1;
  for (auto d : ne) {
    if (d > (1ull << 62) || (d != 0 && n > (1ull << 62) / d)) throw Error(who + " is implausibly large");
    n *= d;
  }
  if (ne[0] % tt->block)
    throw Error(who + ": row of " + std::to_string(ne[0]) + " elements is not a multiple of the " + tt->name + " block of " +
                std::to_string(tt->block));
  if (n / tt->block > (1ull << 62) / tt->bytes) throw Error(who + " is implausibly large");  // bytes must not wrap
  return n / tt->block * tt->bytes;
}

std::uint64_t tensor_bytes(const TensorData& t, const std::string& what) {
  return checked_bytes(t.type, t.ne, what + ": tensor '" + t.name + "'");
}
}  // namespace

const Value* File::find(const std::string& key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

void write(const std::string& path, const File& file) {
  Writer w;
  std::vector<std::pair<std::string, Value>> meta = file.metadata;
  const std::uint64_t align = file.alignment ? file.alignment : 32;
  bool has_align = false;
  for (auto& [k, v] : meta)
    if (k == "general.alignment") {
      has_align = true;
      v = Value::of(static_cast<std::uint32_t>(align));
    }
  if (!has_align && align != 32) meta.emplace_back("general.alignment", Value::of(static_cast<std::uint32_t>(align)));
  w.put(kMagic);
  w.put<std::uint32_t>(3);
  w.put<std::uint64_t>(file.tensors.size());
  w.put<std::uint64_t>(meta.size());
  for (const auto& [k, v] : meta) {
    w.str(k);
    w.put(static_cast<std::uint32_t>(v.type));
    if (v.type == ValueType::Array) {
      w.put(static_cast<std::uint32_t>(v.elem));
      w.put<std::uint64_t>(v.array.size());
      for (const auto& s : v.array) put_scalar(w, v.elem, s, k);
    } else {
      put_scalar(w, v.type, v.scalar, k);
    }
  }
  std::uint64_t offset = 0;
  for (const auto& t : file.tensors) {
    const auto nb = tensor_bytes(t, path);
    if (nb != t.data.size())
      throw Error(path + ": tensor '" + t.name + "' holds " + std::to_string(t.data.size()) + " bytes, its type and shape need " + std::to_string(nb));
    w.str(t.name);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(t.ne.size()));
    for (auto d : t.ne) w.put<std::uint64_t>(d);
    w.put(static_cast<std::uint32_t>(t.type));
    w.put<std::uint64_t>(offset);
    offset += (nb + align - 1) / align * align;
  }
  w.pad(static_cast<std::size_t>(align));
  for (const auto& t : file.tensors) {
    w.out.insert(w.out.end(), t.data.begin(), t.data.end());
    w.pad(static_cast<std::size_t>(align));
  }
  write_file_atomic(path, [&](int fd) { write_all(fd, w.out.data(), w.out.size(), path); });
}

std::uint64_t TensorInfo::numel() const {
  std::uint64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

Shape TensorInfo::shape() const {
  Shape s;
  for (auto it = ne.rbegin(); it != ne.rend(); ++it) s.push_back(static_cast<std::int64_t>(*it));
  return s;
}

Reader Reader::open(const std::string& path) {
  auto m = std::make_shared<MappedFile>(path);
  return parse(m->data(), m->size(), m, path);
}

Reader Reader::parse(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner, const std::string& what) {
  Reader f;
  f.what_ = what;
  f.owner_ = std::move(owner);
  Cursor r{data, size, 0, what};
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) throw Error(what + ": not a GGUF file (bad magic)");
  r.pos = 4;
  f.version_ = r.get<std::uint32_t>("version");
  if (f.version_ == 0x03000000u || f.version_ == 0x02000000u) throw Error(what + ": big-endian GGUF files are not supported");
  if (f.version_ != 2 && f.version_ != 3)
    throw Error(what + ": unsupported GGUF version " + std::to_string(f.version_) + " (qcast reads versions 2 and 3)");
  const auto nt = r.get<std::uint64_t>("tensor_count");
  const auto nkv = r.get<std::uint64_t>("metadata_kv_count");
  // Each KV takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8 + 4 + 8 + 4 + 8.
  if (nkv > r.left() / 13 || nt > r.left() / 32)
    throw Error(what + ": " + std::to_string(nt) + " tensors and " + std::to_string(nkv) + " metadata entries cannot fit in " +
                std::to_string(size) + " bytes");
  f.meta_.reserve(static_cast<std::size_t>(nkv));
  std::set<std::string> keys;
  for (std::uint64_t i = 0; i < nkv; ++i) {
    std::string key = r.str("metadata key " + std::to_string(i));
    if (!keys.insert(key).second) throw Error(what + ": metadata key '" + key + "' appears twice");
    Value v;
    const auto ty = r.get<std::uint32_t>("type of '" + key + "'");
    if (!known_value_type(ty)) throw Error(what + ": metadata '" + key + "' has unknown value type " + std::to_string(ty));
    v.type = static_cast<ValueType>(ty);
    if (v.type == ValueType::Array) {
      const auto et = r.get<std::uint32_t>("element type of '" + key + "'");
      if (!known_value_type(et)) throw Error(what + ": metadata '" + key + "' has unknown array element type " + std::to_string(et));
      v.elem = static_cast<ValueType>(et);
      if (v.elem == ValueType::Array) throw Error(what + ": metadata '" + key + "' is an array of arrays (not supported)");
      const auto cnt = r.get<std::uint64_t>("length of '" + key + "'");
      if (cnt > r.left() / min_size(v.elem))
        throw Error(what + ": metadata '" + key + "' array of " + std::to_string(cnt) + " elements exceeds the file");
      v.array.reserve(static_cast<std::size_t>(cnt));
      for (std::uint64_t k = 0; k < cnt; ++k) v.array.push_back(get_scalar(r, v.elem, key));
    } else {
      v.scalar = get_scalar(r, v.type, key);
    }
    if (key == "general.alignment") {
      if (v.type != ValueType::U32) throw Error(what + ": general.alignment must be a uint32");
      f.alignment_ = std::get<std::uint32_t>(v.scalar);
      if (f.alignment_ == 0 || (f.alignment_ & (f.alignment_ - 1)) || f.alignment_ > (1u << 30))
        throw Error(what + ": general.alignment " + std::to_string(f.alignment_) + " is not a power of two");
    }
    f.meta_.emplace_back(std::move(key), std::move(v));
  }
  f.tensors_.reserve(static_cast<std::size_t>(nt));
  std::set<std::string> names;
  for (std::uint64_t i = 0; i < nt; ++i) {
    TensorInfo t;
    t.name = r.str("tensor name " + std::to_string(i));
    if (!names.insert(t.name).second) throw Error(what + ": tensor '" + t.name + "' appears twice");
    const std::string who = what + ": tensor '" + t.name + "'";
    const auto nd = r.get<std::uint32_t>("dimension count of '" + t.name + "'");
    if (nd == 0 || nd > 4) throw Error(who + " has " + std::to_string(nd) + " dimensions (1..4 allowed)");
    for (std::uint32_t d = 0; d < nd; ++d) t.ne.push_back(r.get<std::uint64_t>("dimensions of '" + t.name + "'"));
    t.type = static_cast<GgmlType>(r.get<std::uint32_t>("type of '" + t.name + "'"));
    t.offset = r.get<std::uint64_t>("offset of '" + t.name + "'");
    t.nbytes = checked_bytes(t.type, t.ne, who);
    f.tensors_.push_back(std::move(t));
  }
  const std::uint64_t base = (static_cast<std::uint64_t>(r.pos) + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (!f.tensors_.empty() && base > size) throw Error(what + ": truncated before the tensor data");
  f.data_offset_ = base;
  for (auto& t : f.tensors_) {
    if (t.offset % f.alignment_) throw Error(what + ": tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(f.alignment_));
    if (t.offset > size - base || t.nbytes > size - base - t.offset)
      throw Error(what + ": tensor '" + t.name + "' (" + std::to_string(t.nbytes) + " bytes at offset " + std::to_string(t.offset) +
                  ") lies outside the file of " + std::to_string(size) + " bytes");
    t.data = data + base + t.offset;
  }
  return f;
}

const Value* Reader::find(const std::string& key) const {
  for (const auto& [k, v] : meta_)
    if (k == key) return &v;
  return nullptr;
}

const TensorInfo* Reader::tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {
std::string vt_name(ValueType t) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"};
  const auto i = static_cast<std::uint32_t>(t);
  return i < 13 ? names[i] : "type " + std::to_string(i);
}
}  // namespace

std::optional<std::uint64_t> Reader::get_uint(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  std::optional<std::int64_t> s;
  std::optional<std::uint64_t> u;
  std::visit([&](const auto& x) {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::string>) {
    } else if constexpr (std::is_signed_v<T>) {
      s = static_cast<std::int64_t>(x);
    } else {
      u = static_cast<std::uint64_t>(x);
    }
  }, v->scalar);
  if (v->type == ValueType::Array || (!s && !u)) throw Error(what_ + ": metadata '" + key + "' is a " + vt_name(v->type) + ", expected an integer");
  if (s) {
    if (*s < 0) throw Error(what_ + ": metadata '" + key + "' is negative (" + std::to_string(*s) + ")");
    return static_cast<std::uint64_t>(*s);
  }
  return u;
}

std::optional<float> Reader::get_float(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == ValueType::F32) return std::get<float>(v->scalar);
  if (v->type == ValueType::F64) return static_cast<float>(std::get<double>(v->scalar));
  throw Error(what_ + ": metadata '" + key + "' is a " + vt_name(v->type) + ", expected a float");
}

std::optional<std::string> Reader::get_string(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::String) throw Error(what_ + ": metadata '" + key + "' is a " + vt_name(v->type) + ", expected a string");
  return std::get<std::string>(v->scalar);
}

std::optional<bool> Reader::get_bool(const std::string& key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::Bool) throw Error(what_ + ": metadata '" + key + "' is a " + vt_name(v->type) + ", expected a bool");
  return std::get<bool>(v->scalar);
}

const std::vector<Scalar>* Reader::get_array(const std::string& key, ValueType elem) const {
  const Value* v = find(key);
  if (!v) return nullptr;
  if (v->type != ValueType::Array || v->elem != elem)
    throw Error(what_ + ": metadata '" + key + "' is " + (v->type == ValueType::Array ? "an array of " + vt_name(v->elem) : "a " + vt_name(v->type)) +
                ", expected an array of " + vt_name(elem));
  return &v->array;
}

std::vector<float> Reader::dequantize(const TensorInfo& t) const {
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  try {
    dequantize_row(t.type, t.data, out.data(), static_cast<std::int64_t>(out.size()));
  } catch (const Error& e) {
    throw Error(what_ + ": tensor '" + t.name + "': " + e.what());
  }
  return out;
}

File parse(const std::uint8_t* data, std::size_t size, const std::string& what) {
  const Reader r = Reader::parse(data, size, nullptr, what);
  File f;
  f.version = r.version();
  f.alignment = r.alignment();
  f.metadata = r.metadata();
  for (const auto& t : r.tensors()) f.tensors.push_back({t.name, t.ne, t.type, std::vector<std::uint8_t>(t.data, t.data + t.nbytes)});
  return f;
}

File read(const std::string& path) {
  MappedFile m(path);
  return parse(m.data(), m.size(), path);
}
std::string ggml_mapping() {
  return "qcast -> ggml: int8@fp16/b32 (symmetric int8, fp16 scale per 32 inputs) -> Q8_0; int4@fp16/b32 or "
         "int4@fp16/g32 (symmetric int4, fp16 scale per 32) -> Q4_0; int5@fp16/b32 -> Q5_0; q4_1 / q5_1 "
         "(int4 / int5@fp16/b32/asym/ggml: fp16 scale and minimum per 32) -> Q4_1 / Q5_1; mxfp4 (e2m1@e8m0/b32) -> MXFP4; "
         "q2_k .. q6_k (the ggml rule over 256-blocks) -> Q2_K .. Q6_K, iq4_nl -> IQ4_NL, rows that are not whole blocks as "
         "llama.cpp stores them (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K / Q3_K -> IQ4_NL, F16 where 32 does not divide a row); "
         "fp16 / bf16 -> F16 / BF16; "
         "rows of the 32-block types must be a multiple of 32; every other format has no ggml type";
}

GgmlType ggml_type_for(const Format& f, const Shape& shape) {
  if (const auto k = kern::ggml_quant_of(f)) {
    if (shape.empty()) return GgmlType::F32;
    const Format row = kern::ggml_quant_row_format(f, shape.back());
    if (!(row == f)) return ggml_type_for(row, shape);
    switch (*k) {
      case kern::GgmlQuant::Q2_K: return GgmlType::Q2_K;
      case kern::GgmlQuant::Q3_K: return GgmlType::Q3_K;
      case kern::GgmlQuant::Q4_K: return GgmlType::Q4_K;
      case kern::GgmlQuant::Q5_K: return GgmlType::Q5_K;
      case kern::GgmlQuant::Q6_K: return GgmlType::Q6_K;
      case kern::GgmlQuant::IQ4_NL: return GgmlType::IQ4_NL;
      case kern::GgmlQuant::MXFP4: return GgmlType::MXFP4;
      case kern::GgmlQuant::NVFP4: return GgmlType::NVFP4;
    }
  }
  const auto& s = f.scaling();
  // Unscaled half precision is a ggml type of its own, for any row length (llama.cpp's own fallback for rows
  // that fit no block).
  if (s.kind == ScaleKind::None && f.elem() == Element::parse("fp16")) return GgmlType::F16;
  if (s.kind == ScaleKind::None && f.elem() == Element::parse("bf16")) return GgmlType::BF16;
  if (shape.empty() || shape.back() % 32 != 0) return GgmlType::F32;
  // An fp16 minimum per block (Q4_1, Q5_1) is the ggml rule's asym; an integer zero point has no ggml type.
  const bool ggml_min = s.asym && s.rule == ScaleRule::Ggml;
  const bool last_axis_blocks = s.kind == ScaleKind::Block && s.block == 32 && (!s.asym || ggml_min) && !s.tensor_scale &&
                                (!s.axis_explicit || s.axis == -1 || s.axis == static_cast<int>(shape.size()) - 1);
  if (!last_axis_blocks) return GgmlType::F32;
  // By storage layout, whatever the scale rule: the block's codes and its one scale are all ggml keeps.
  const Element& e = f.elem();
  const Element& se = s.scale_elem;
  if (e.kind == Element::Kind::Int && e.is_signed && e.frac_bits == 0 && se == Element::parse("fp16")) {
    if (ggml_min) return e.bits == 4 ? GgmlType::Q4_1 : e.bits == 5 ? GgmlType::Q5_1 : GgmlType::F32;
    if (e.bits == 8) return GgmlType::Q8_0;
    if (e.bits == 4) return GgmlType::Q4_0;
    if (e.bits == 5) return GgmlType::Q5_0;
  }
  if (e == Element::parse("e2m1") && se == Element::parse("e8m0")) return GgmlType::MXFP4;
  return GgmlType::F32;
}

TensorData make_tensor(const std::string& name, const float* data, const Shape& shape, const Format& f) {
  if (ggml_type_for(f, shape) == GgmlType::F32) {
    std::vector<float> q(static_cast<std::size_t>(shape_numel(shape)));
    fake_quant(f, data, q.data(), shape);
    return f32_tensor(name, q.data(), shape);
  }
  return make_tensor(name, encode(f, data, shape));
}

TensorData f32_tensor(const std::string& name, const float* data, const Shape& shape) {
  TensorData t;
  t.name = name;
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) t.ne.push_back(static_cast<std::uint64_t>(*it));
  if (t.ne.empty()) t.ne.push_back(1);
  t.type = GgmlType::F32;
  t.data.resize(static_cast<std::size_t>(shape_numel(shape)) * 4);
  std::memcpy(t.data.data(), data, t.data.size());
  return t;
}

TensorData make_tensor(const std::string& name, const Encoded& e) {
  const Format f = Format::parse(e.format);
  const Shape& shape = e.shape;
  TensorData t;
  t.name = name;
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) t.ne.push_back(static_cast<std::uint64_t>(*it));
  t.type = ggml_type_for(f, shape);
  if (t.type == GgmlType::F16 || t.type == GgmlType::BF16) {  // 16-bit codes, packed LSB first: little-endian halves
    const std::size_t bytes = static_cast<std::size_t>(shape_numel(shape)) * 2;
    if (e.codes.size() != bytes)
      throw Error("gguf tensor '" + name + "': " + std::to_string(e.codes.size()) + " code bytes, expected " + std::to_string(bytes));
    t.data.assign(e.codes.begin(), e.codes.end());
    return t;
  }
  if (kern::ggml_quant_of(f) && t.type != GgmlType::F32) {  // the levels and headers are the blocks, reassembled
    try {
      t.data = kern::ggml_quant_blocks(e);
    } catch (const Error& err) {
      throw Error("gguf tensor '" + name + "': " + err.what());
    }
    return t;
  }
  if (t.type == GgmlType::F32 || (e.axis >= 0 && e.axis != static_cast<int>(shape.size()) - 1))
    throw Error("gguf tensor '" + name + "': format " + f.name() + " of shape " + shape_str(shape) +
                " has no ggml block type (" + ggml_mapping() + ")");
  const std::int64_t n = shape_numel(shape);
  std::vector<std::uint32_t> codes(static_cast<std::size_t>(n)), sc(static_cast<std::size_t>(e.num_groups));
  unpack_bits(e.codes.data(), e.codes.size(), codes.size(), f.elem().bits, codes.data());
  unpack_bits(e.scales.data(), e.scales.size(), sc.size(), f.scaling().scale_elem.bits, sc.data());
  std::vector<std::uint32_t> mins;
  if (t.type == GgmlType::Q4_1 || t.type == GgmlType::Q5_1) {  // the fp16 block minimum (the ggml rule's zero)
    mins.resize(sc.size());
    unpack_bits(e.zeros.data(), e.zeros.size(), mins.size(), 16, mins.data());
  }
  const std::int64_t nblocks = n / 32;  // groups are the 32-blocks in row-major order
  if (e.num_groups != nblocks) throw Error("gguf tensor '" + name + "': " + std::to_string(e.num_groups) + " scale groups, expected " + std::to_string(nblocks));
  const std::uint64_t bytes = traits(t.type).bytes;
  t.data.assign(static_cast<std::size_t>(nblocks * bytes), 0);
  for (std::int64_t b = 0; b < nblocks; ++b) {
    std::uint8_t* out = t.data.data() + b * bytes;
    const std::uint32_t* c = codes.data() + b * 32;
    if (t.type == GgmlType::Q8_0) {
      const auto d = static_cast<std::uint16_t>(sc[b]);
      std::memcpy(out, &d, 2);
      for (int i = 0; i < 32; ++i) out[2 + i] = static_cast<std::uint8_t>(c[i]);
    } else if (t.type == GgmlType::Q4_0) {
      const auto d = static_cast<std::uint16_t>(sc[b]);
      std::memcpy(out, &d, 2);
      auto q = [&](int i) { return static_cast<std::uint8_t>(((c[i] ^ 8u) & 15u)); };  // two's complement -> code + 8
      for (int j = 0; j < 16; ++j) out[2 + j] = static_cast<std::uint8_t>(q(j) | (q(j + 16) << 4));
    } else if (t.type == GgmlType::Q4_1 || t.type == GgmlType::Q5_0 || t.type == GgmlType::Q5_1) {
      // block_q4_1 {d, m, qs[16]}, block_q5_0 {d, qh[4], qs[16]}, block_q5_1 {d, m, qh[4], qs[16]}: element j and
      // j + 16 share qs[j] (low / high nibble); bit 4 of element j is bit j of qh. Q5_0 stores code + 16.
      const bool has_min = t.type != GgmlType::Q5_0, five = t.type != GgmlType::Q4_1;
      const auto d = static_cast<std::uint16_t>(sc[b]);
      std::memcpy(out, &d, 2);
      std::size_t at = 2;
      if (has_min) {
        const auto m = static_cast<std::uint16_t>(mins[b]);
        std::memcpy(out + at, &m, 2);
        at += 2;
      }
      auto u = [&](int i) { return t.type == GgmlType::Q5_0 ? ((c[i] ^ 16u) & 31u) : (c[i] & (five ? 31u : 15u)); };
      if (five) {
        std::uint32_t qh = 0;
        for (int i = 0; i < 32; ++i) qh |= ((u(i) >> 4) & 1u) << i;
        std::memcpy(out + at, &qh, 4);
        at += 4;
      }
      for (int j = 0; j < 16; ++j) out[at + j] = static_cast<std::uint8_t>((u(j) & 15u) | ((u(j + 16) & 15u) << 4));
    } else {  // MXFP4
      // ggml decodes code 8 (-0) as +0, and its quantizer never writes it: -0 is stored as code 0, so a file
      // re-quantized from its own decoded values is the same bytes.
      auto code = [&](int i) { return (c[i] & 15u) == 8u ? 0u : (c[i] & 15u); };
      out[0] = static_cast<std::uint8_t>(sc[b]);
      for (int j = 0; j < 16; ++j) out[1 + j] = static_cast<std::uint8_t>(code(j) | (code(j + 16) << 4));
    }
  }
  return t;
}

std::vector<float> dequantize(const TensorData& t) {
  const auto nb = tensor_bytes(t, "gguf");
  if (nb != t.data.size()) throw Error("gguf tensor '" + t.name + "' data size does not match its type and shape");
  std::uint64_t n = 1;
  for (auto d : t.ne) n *= d;
  std::vector<float> out(static_cast<std::size_t>(n));
  try {
    dequantize_row(t.type, t.data.data(), out.data(), static_cast<std::int64_t>(n));
  } catch (const Error& e) {
    throw Error("gguf tensor '" + t.name + "': " + e.what());
  }
  return out;
}

void add_tokenizer(File& file, const std::string& model, const std::vector<std::string>& tokens,
                   const std::vector<float>& scores, const std::vector<std::int32_t>& types, std::uint32_t bos,
                   std::uint32_t eos, std::int64_t unk) {
  file.metadata.emplace_back("tokenizer.ggml.model", Value::of(model));
  std::vector<Scalar> t(tokens.begin(), tokens.end()), s(scores.begin(), scores.end()), ty(types.begin(), types.end());
  file.metadata.emplace_back("tokenizer.ggml.tokens", Value::array_of(ValueType::String, std::move(t)));
  if (!scores.empty()) file.metadata.emplace_back("tokenizer.ggml.scores", Value::array_of(ValueType::F32, std::move(s)));
  if (!types.empty()) file.metadata.emplace_back("tokenizer.ggml.token_type", Value::array_of(ValueType::I32, std::move(ty)));
  file.metadata.emplace_back("tokenizer.ggml.bos_token_id", Value::of(bos));
  file.metadata.emplace_back("tokenizer.ggml.eos_token_id", Value::of(eos));
  if (unk >= 0) file.metadata.emplace_back("tokenizer.ggml.unknown_token_id", Value::of(static_cast<std::uint32_t>(unk)));
}

}  // namespace qcast::gguf
