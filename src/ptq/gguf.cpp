#include "qcast/ptq/gguf.hpp"

#include <cmath>
#include <cstring>

#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/half.hpp"
#include "qcast/quantize.hpp"

namespace qcast::ptq::gguf {

namespace {

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr std::uint64_t kMaxCount = 1ull << 32;

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

struct Reader {
  const std::uint8_t* p;
  std::size_t n, pos = 0;
  const std::string& what;
  void need(std::size_t k, const char* field) {
    if (k > n - pos) throw Error(what + ": truncated at byte " + std::to_string(pos) + " reading " + field);
  }
  template <class T>
  T get(const char* field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* field) {
    const auto len = get<std::uint64_t>(field);
    need(len, field);
    std::string s(reinterpret_cast<const char*>(p + pos), static_cast<std::size_t>(len));
    pos += static_cast<std::size_t>(len);
    return s;
  }
};

Scalar get_scalar(Reader& r, ValueType t, const std::string& key) {
  switch (t) {
    case ValueType::U8: return r.get<std::uint8_t>("u8");
    case ValueType::I8: return r.get<std::int8_t>("i8");
    case ValueType::U16: return r.get<std::uint16_t>("u16");
    case ValueType::I16: return r.get<std::int16_t>("i16");
    case ValueType::U32: return r.get<std::uint32_t>("u32");
    case ValueType::I32: return r.get<std::int32_t>("i32");
    case ValueType::F32: return r.get<float>("f32");
    case ValueType::Bool: {
      const auto b = r.get<std::uint8_t>("bool");
      if (b > 1) throw Error(r.what + ": metadata '" + key + "' has a bool byte of " + std::to_string(b));
      return b != 0;
    }
    case ValueType::String: return r.str("string");
    case ValueType::U64: return r.get<std::uint64_t>("u64");
    case ValueType::I64: return r.get<std::int64_t>("i64");
    case ValueType::F64: return r.get<double>("f64");
    default: break;
  }
  throw Error(r.what + ": metadata '" + key + "' has unknown value type " + std::to_string(static_cast<std::uint32_t>(t)));
}

struct TypeInfo {
  std::uint64_t block, bytes;
};

TypeInfo type_info(GgmlType t, const std::string& what) {
  switch (t) {
    case GgmlType::F32: return {1, 4};
    case GgmlType::F16: return {1, 2};
    case GgmlType::Q4_0: return {32, 18};
    case GgmlType::Q8_0: return {32, 34};
    case GgmlType::MXFP4: return {32, 17};
  }
  throw Error(what + ": unsupported ggml type " + std::to_string(static_cast<std::uint32_t>(t)));
}

std::uint64_t tensor_bytes(const TensorData& t, const std::string& what) {
  const auto ti = type_info(t.type, what);
  if (t.ne.empty()) throw Error(what + ": tensor '" + t.name + "' has no dimensions");
  if (t.ne[0] % ti.block) throw Error(what + ": tensor '" + t.name + "' row of " + std::to_string(t.ne[0]) + " is not a multiple of the block size");
  std::uint64_t n = 1;
  for (auto d : t.ne) {
    if (d != 0 && n > (1ull << 62) / d) throw Error(what + ": tensor '" + t.name + "' is too large");
    n *= d;
  }
  return n / ti.block * ti.bytes;
}

const std::int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

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

File parse(const std::uint8_t* data, std::size_t size, const std::string& what) {
  Reader r{data, size, 0, what};
  File f;
  if (r.get<std::uint32_t>("magic") != kMagic) throw Error(what + ": not a GGUF file (bad magic)");
  f.version = r.get<std::uint32_t>("version");
  if (f.version != 2 && f.version != 3) throw Error(what + ": unsupported GGUF version " + std::to_string(f.version));
  const auto nt = r.get<std::uint64_t>("tensor_count");
  const auto nkv = r.get<std::uint64_t>("metadata_kv_count");
  if (nt > kMaxCount || nkv > kMaxCount) throw Error(what + ": implausible tensor / metadata counts");
  for (std::uint64_t i = 0; i < nkv; ++i) {
    std::string key = r.str("metadata key");
    Value v;
    v.type = static_cast<ValueType>(r.get<std::uint32_t>("value type"));
    if (v.type == ValueType::Array) {
      v.elem = static_cast<ValueType>(r.get<std::uint32_t>("array type"));
      if (v.elem == ValueType::Array) throw Error(what + ": metadata '" + key + "' is a nested array (unsupported)");
      const auto cnt = r.get<std::uint64_t>("array length");
      if (cnt > size - r.pos) throw Error(what + ": metadata '" + key + "' array length " + std::to_string(cnt) + " exceeds the file");
      v.array.reserve(static_cast<std::size_t>(cnt));
      for (std::uint64_t k = 0; k < cnt; ++k) v.array.push_back(get_scalar(r, v.elem, key));
    } else {
      v.scalar = get_scalar(r, v.type, key);
    }
    if (key == "general.alignment") {
      if (v.type != ValueType::U32) throw Error(what + ": general.alignment must be a uint32");
      f.alignment = std::get<std::uint32_t>(v.scalar);
      if (f.alignment == 0 || (f.alignment & (f.alignment - 1))) throw Error(what + ": general.alignment " + std::to_string(f.alignment) + " is not a power of two");
    }
    f.metadata.emplace_back(std::move(key), std::move(v));
  }
  std::vector<std::uint64_t> offsets;
  for (std::uint64_t i = 0; i < nt; ++i) {
    TensorData t;
    t.name = r.str("tensor name");
    const auto nd = r.get<std::uint32_t>("n_dimensions");
    if (nd == 0 || nd > 4) throw Error(what + ": tensor '" + t.name + "' has " + std::to_string(nd) + " dimensions (1..4 allowed)");
    for (std::uint32_t d = 0; d < nd; ++d) t.ne.push_back(r.get<std::uint64_t>("dimension"));
    t.type = static_cast<GgmlType>(r.get<std::uint32_t>("tensor type"));
    offsets.push_back(r.get<std::uint64_t>("tensor offset"));
    f.tensors.push_back(std::move(t));
  }
  const std::uint64_t base = (r.pos + f.alignment - 1) / f.alignment * f.alignment;
  for (std::size_t i = 0; i < f.tensors.size(); ++i) {
    auto& t = f.tensors[i];
    if (offsets[i] % f.alignment) throw Error(what + ": tensor '" + t.name + "' offset is not aligned");
    const auto nb = tensor_bytes(t, what);
    if (base > size || offsets[i] > size - base || nb > size - base - offsets[i])
      throw Error(what + ": tensor '" + t.name + "' data lies outside the file");
    t.data.assign(data + base + offsets[i], data + base + offsets[i] + nb);
  }
  return f;
}

File read(const std::string& path) {
  MappedFile m(path);
  return parse(m.data(), m.size(), path);
}

std::string ggml_mapping() {
  return "qcast -> ggml: int8@fp16/b32 (symmetric int8, fp16 scale per 32 inputs) -> Q8_0; int4@fp16/b32 or "
         "int4@fp16/g32 (symmetric int4, fp16 scale per 32) -> Q4_0; mxfp4 (e2m1@e8m0/b32) -> MXFP4; rows must be a "
         "multiple of 32; every other format has no ggml type";
}

GgmlType ggml_type_for(const Format& f, const Shape& shape) {
  const auto& s = f.scaling();
  if (shape.empty() || shape.back() % 32 != 0) return GgmlType::F32;
  const bool last_axis_blocks = s.kind == ScaleKind::Block && s.block == 32 && !s.asym && !s.tensor_scale &&
                                (!s.axis_explicit || s.axis == -1 || s.axis == static_cast<int>(shape.size()) - 1);
  if (!last_axis_blocks) return GgmlType::F32;
  const Element& e = f.elem();
  const Element& se = s.scale_elem;
  if (e.kind == Element::Kind::Int && e.is_signed && e.frac_bits == 0 && se.name == "fp16") {
    if (e.bits == 8) return GgmlType::Q8_0;
    if (e.bits == 4) return GgmlType::Q4_0;
  }
  if (e.name == "e2m1" && se.name == "e8m0") return GgmlType::MXFP4;
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
  if (t.type == GgmlType::F32 || (e.axis >= 0 && e.axis != static_cast<int>(shape.size()) - 1))
    throw Error("gguf tensor '" + name + "': format " + f.name() + " of shape " + shape_str(shape) +
                " has no ggml block type (" + ggml_mapping() + ")");
  const std::int64_t n = shape_numel(shape);
  std::vector<std::uint32_t> codes(static_cast<std::size_t>(n)), sc(static_cast<std::size_t>(e.num_groups));
  unpack_bits(e.codes.data(), e.codes.size(), codes.size(), f.elem().bits, codes.data());
  unpack_bits(e.scales.data(), e.scales.size(), sc.size(), f.scaling().scale_elem.bits, sc.data());
  const std::int64_t nblocks = n / 32;  // groups are the 32-blocks in row-major order
  if (e.num_groups != nblocks) throw Error("gguf tensor '" + name + "': " + std::to_string(e.num_groups) + " scale groups, expected " + std::to_string(nblocks));
  const std::uint64_t bytes = type_info(t.type, name).bytes;
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
    } else {  // MXFP4
      out[0] = static_cast<std::uint8_t>(sc[b]);
      for (int j = 0; j < 16; ++j) out[1 + j] = static_cast<std::uint8_t>((c[j] & 15u) | ((c[j + 16] & 15u) << 4));
    }
  }
  return t;
}

std::vector<float> dequantize(const TensorData& t) {
  std::uint64_t n = 1;
  for (auto d : t.ne) n *= d;
  const auto nb = tensor_bytes(t, "gguf tensor '" + t.name + "'");
  if (nb != t.data.size()) throw Error("gguf tensor '" + t.name + "' data size does not match its type and shape");
  std::vector<float> out(static_cast<std::size_t>(n));
  const std::uint8_t* p = t.data.data();
  switch (t.type) {
    case GgmlType::F32: std::memcpy(out.data(), p, n * 4); break;
    case GgmlType::F16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      break;
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::MXFP4:
      for (std::uint64_t b = 0; b < n / 32; ++b) {
        float* o = out.data() + b * 32;
        if (t.type == GgmlType::Q8_0) {
          const std::uint8_t* blk = p + b * 34;
          std::uint16_t h;
          std::memcpy(&h, blk, 2);
          const float d = f16_to_f32(h);
          for (int i = 0; i < 32; ++i) o[i] = static_cast<float>(static_cast<std::int8_t>(blk[2 + i])) * d;
        } else if (t.type == GgmlType::Q4_0) {
          const std::uint8_t* blk = p + b * 18;
          std::uint16_t h;
          std::memcpy(&h, blk, 2);
          const float d = f16_to_f32(h);
          for (int j = 0; j < 16; ++j) {
            o[j] = static_cast<float>((blk[2 + j] & 15) - 8) * d;
            o[j + 16] = static_cast<float>((blk[2 + j] >> 4) - 8) * d;
          }
        } else {
          const std::uint8_t* blk = p + b * 17;
          const float d = static_cast<float>(std::ldexp(1.0, static_cast<int>(blk[0]) - 128));  // half of 2^(e-127)
          for (int j = 0; j < 16; ++j) {
            o[j] = kMxfp4Values[blk[1 + j] & 15] * d;
            o[j + 16] = kMxfp4Values[blk[1 + j] >> 4] * d;
          }
        }
      }
      break;
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

}  // namespace qcast::ptq::gguf
