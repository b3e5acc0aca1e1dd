#include "qcast/packed.hpp"

#include <cstring>
#include <nlohmann/json.hpp>

#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/kernels/reference.hpp"
#include "qcast/error.hpp"

namespace qcast {

namespace {

const char* kLayoutKey = "qcast.layout";
const char* kLayoutValue = "packed-v1";
const std::string kTensorPrefix = "qcast.tensor.";

Tensor bytes_tensor(const Bytes& b) {
  Tensor t;
  t.dtype = DType::U8;
  t.shape = {static_cast<std::int64_t>(b.size())};
  t.data = b.data();
  return t;
}

Bytes tensor_bytes(const SafeTensorsFile& st, const std::string& name, bool required) {
  const Tensor* t = st.find(name);
  if (!t) {
    if (required) throw Error("packed file lacks tensor '" + name + "'");
    return {};
  }
  if (t->dtype != DType::U8) throw Error("packed tensor '" + name + "' must be U8, got " + dtype_name(t->dtype));
  auto* p = static_cast<const std::uint8_t*>(t->data);
  return Bytes(p, p + t->nbytes());
}

}  // namespace

bool is_packed(const SafeTensorsFile& st) {
  auto it = st.metadata.find(kLayoutKey);
  return it != st.metadata.end() && it->second == kLayoutValue;
}

void write_packed(const std::string& path, const PackedFile& f) {
  std::map<std::string, std::string> meta = f.metadata;
  meta[kLayoutKey] = kLayoutValue;
  std::vector<NamedTensor> out;
  std::vector<float> tscales(f.quantized.size());
  std::size_t i = 0;
  for (auto& [name, e] : f.quantized) {
    nlohmann::json j = {{"format", e.format}, {"shape", e.shape}, {"axis", e.axis}, {"groups", e.num_groups}};
    meta[kTensorPrefix + name] = j.dump();
    out.push_back({name + ".codes", bytes_tensor(e.codes)});
    if (!e.scales.empty()) out.push_back({name + ".scales", bytes_tensor(e.scales)});
    if (!e.zeros.empty()) out.push_back({name + ".zeros", bytes_tensor(e.zeros)});
    const Format fmt = Format::parse(e.format);
    if (fmt.scaling().tensor_scale) {
      tscales[i] = e.tensor_scale;
      Tensor t;
      t.dtype = DType::F32;
      t.shape = {1};
      t.data = &tscales[i];
      out.push_back({name + ".tscale", t});
    }
    ++i;
  }
  for (auto& nt : f.plain) out.push_back(nt);
  write_safetensors(path, out, meta);
}

void check_encoded(const Encoded& e) {
  const Format fmt = Format::parse(e.format);
  // Every stream must have exactly the size the format, shape and axis give it (what encode writes):
  // a longer one means the metadata names another format or shape, and the shape is only trusted once
  // the stream really holds its codes (nothing is allocated from it before).
  const auto check_size = [&](const std::string& what, const Bytes& b, std::int64_t count, int bits) {
    // ceil(count * bits / 8) without overflow: count < 2^63, bits <= 32.
    const std::uint64_t c = static_cast<std::uint64_t>(count), ub = static_cast<std::uint64_t>(bits);
    const std::uint64_t want = c / 8 * ub + (c % 8 * ub + 7) / 8;
    if (static_cast<std::uint64_t>(b.size()) != want)
      throw Error(what + " hold " + std::to_string(b.size()) + " bytes; " + std::to_string(count) + " " + std::to_string(bits) +
                  "-bit values of format " + fmt.name() + " (shape " + shape_str(e.shape) + ") take " + std::to_string(want));
  };
  const auto layout = ref::GroupLayout::make(fmt, e.shape, e.axis);  // checks the shape and axis
  if (const auto k = kern::ggml_quant_of(fmt)) {
    // llama.cpp's searched types: levels + each ggml block's header bytes (docs/packed-layout.md), one group per
    // ggml block (NVFP4's block of 64 holds four scales).
    const auto& lay = kern::ggml_quant_layout(*k);
    if (e.shape.empty() || !(kern::ggml_quant_row_format(fmt, e.shape.back()) == fmt))
      throw Error("format " + fmt.name() + " on shape " + shape_str(e.shape) + ": rows are not whole blocks of " + std::to_string(lay.block) +
                  " (such rows are stored in their fallback format)");
    if (e.axis != static_cast<int>(e.shape.size()) - 1)
      throw Error("format " + fmt.name() + " runs along the last axis, metadata gives axis " + std::to_string(e.axis));
    const std::int64_t numel = layout.numel;
    if (e.num_groups != numel / lay.block)
      throw Error("metadata gives " + std::to_string(e.num_groups) + " blocks, format " + fmt.name() + " on shape " + shape_str(e.shape) +
                  " has " + std::to_string(numel / lay.block));
    check_size("codes", e.codes, numel, lay.bits);
    check_size("scales", e.scales, e.num_groups * lay.header_bytes(), 8);
    if (!e.zeros.empty())
      throw Error("format " + fmt.name() + " keeps its scales and minimums in the block headers, got " + std::to_string(e.zeros.size()) +
                  " zero-point bytes");
    return;
  }
  if (layout.num_groups != e.num_groups)
    throw Error("metadata gives " + std::to_string(e.num_groups) + " scale groups, format " + fmt.name() + " on shape " +
                shape_str(e.shape) + " has " + std::to_string(layout.num_groups));
  check_size("codes", e.codes, layout.numel, fmt.elem().bits);
  if (fmt.scaling().kind != ScaleKind::None)
    check_size("scales", e.scales, layout.num_groups, fmt.scaling().scale_elem.bits >= 32 ? 32 : fmt.scaling().scale_elem.bits);
  else if (!e.scales.empty())
    throw Error("format " + fmt.name() + " has no scales, got " + std::to_string(e.scales.size()) + " scale bytes");
  if (fmt.scaling().asym) check_size("zero points", e.zeros, layout.num_groups, ref::zero_bits(fmt));
  else if (!e.zeros.empty())
    throw Error("format " + fmt.name() + " has no zero points, got " + std::to_string(e.zeros.size()) + " bytes of them");
}

PackedFile read_packed(const std::string& path) {
  const SafeTensorsFile st = read_safetensors(path);
  if (!is_packed(st)) throw Error("'" + path + "' is not a qcast packed file (no " + std::string(kLayoutKey) + " metadata)");
  PackedFile f;
  std::map<std::string, bool> used;
  for (auto& [k, v] : st.metadata) {
    if (k == kLayoutKey) continue;
    if (k.rfind(kTensorPrefix, 0) != 0) {
      f.metadata[k] = v;
      continue;
    }
    const std::string name = k.substr(kTensorPrefix.size());
    const std::string where = path + ": tensor '" + name + "'";
    Encoded e;
    try {
      auto j = nlohmann::json::parse(v);
      e.format = j.at("format").get<std::string>();
      // Integers only: a JSON float (1e25) converted to an integer is undefined behaviour, not an error.
      const auto integer = [&](const nlohmann::json& x, const char* what) {
        if (!x.is_number_integer()) throw Error(where + ": bad packed metadata: " + what + " must be an integer, got " + x.dump());
        return x;
      };
      const auto& shape = j.at("shape");
      if (!shape.is_array()) throw Error(where + ": bad packed metadata: shape must be an array, got " + shape.dump());
      for (const auto& d : shape) integer(d, "every shape dimension");
      e.shape = shape.get<Shape>();
      e.axis = integer(j.at("axis"), "axis").get<int>();
      e.num_groups = integer(j.at("groups"), "groups").get<std::int64_t>();
    } catch (const nlohmann::json::exception& ex) {
      throw Error(where + ": bad packed metadata: " + ex.what());
    }
    try {
      const Format fmt = Format::parse(e.format);
      e.codes = tensor_bytes(st, name + ".codes", true);
      used[name + ".codes"] = true;
      if (fmt.scaling().kind != ScaleKind::None) {
        e.scales = tensor_bytes(st, name + ".scales", true);
        used[name + ".scales"] = true;
      }
      if (fmt.scaling().asym && !kern::ggml_quant_of(fmt)) {  // the k-quants keep their minimums in the block headers
        e.zeros = tensor_bytes(st, name + ".zeros", true);
        used[name + ".zeros"] = true;
      }
      if (fmt.scaling().tensor_scale) {
        const Tensor* t = st.find(name + ".tscale");
        if (!t || t->dtype != DType::F32 || t->numel() != 1) throw Error("missing or malformed .tscale");
        std::memcpy(&e.tensor_scale, t->data, 4);
        used[name + ".tscale"] = true;
      }
      check_encoded(e);
    } catch (const Error& ex) {
      throw Error(where + ": " + ex.what());
    }
    f.quantized.emplace_back(name, std::move(e));
  }
  for (auto& nt : st.tensors)
    if (!used.count(nt.name)) f.plain.push_back(nt);
  return f;
}

std::vector<NamedTensor> decode_packed(const PackedFile& f, int threads, const std::string& where) {
  std::vector<NamedTensor> out;
  for (const auto& [name, e] : f.quantized) {
    auto buf = std::make_shared<std::vector<float>>(static_cast<std::size_t>(shape_numel(e.shape)));
    try {
      decode(e, buf->data(), threads);
    } catch (const Error& ex) {
      throw Error(where + ": tensor '" + name + "': " + ex.what());
    }
    Tensor t;
    t.dtype = DType::F32;
    t.shape = e.shape;
    t.data = buf->data();
    t.owner = buf;
    out.push_back({name, t});
  }
  for (const auto& p : f.plain) out.push_back(p);
  return out;
}

}  // namespace qcast
