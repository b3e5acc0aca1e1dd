#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/io.hpp"

namespace qcast {

const Tensor* SafeTensorsFile::find(const std::string& name) const {
  if (index.size() == tensors.size()) {
    const auto it = index.find(name);
    if (it == index.end()) return nullptr;
    if (it->second < tensors.size() && tensors[it->second].name == name) return &tensors[it->second].tensor;
  }
  for (auto& t : tensors)
    if (t.name == name) return &t.tensor;
  return nullptr;
}

std::string safetensors_header(const std::vector<SafeTensorsEntry>& entries, const std::map<std::string, std::string>& metadata,
                               const std::string& path) {
  // Written piece by piece: each entry is a small JSON object of its own, and the names are checked
  // for duplicates with a hash set.
  std::string hs = "{";
  if (!metadata.empty()) hs += "\"__metadata__\":" + nlohmann::json(metadata).dump();
  std::unordered_set<std::string> seen;
  std::uint64_t off = 0;
  for (const auto& e : entries) {
    if (e.name == "__metadata__" || !seen.insert(e.name).second)
      throw Error("duplicate tensor name '" + e.name + "' while writing " + path);
    nlohmann::ordered_json j;
    j["dtype"] = dtype_name(e.dtype);
    j["shape"] = e.shape;
    j["data_offsets"] = {off, off + e.nbytes};
    off += e.nbytes;
    if (hs.size() > 1) hs += ",";
    hs += nlohmann::json(e.name).dump() + ":" + j.dump();
  }
  hs += "}";
  hs.append((8 - hs.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  return hs;
}

SafeTensorsFile parse_safetensors(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner,
                                  const std::string& what) {
  if (size < 8) throw Error(what + ": not a safetensors file (shorter than its 8-byte header length)");
  std::uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | data[i];
  if (hlen > size - 8) throw Error(what + ": truncated safetensors header (header says " + std::to_string(hlen) + " bytes, file has " + std::to_string(size - 8) + ")");
  if (hlen > (std::uint64_t{100} << 20)) throw Error(what + ": safetensors header larger than 100 MB");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(data + 8, data + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": bad safetensors JSON header: " + e.what());
  }
  if (!j.is_object()) throw Error(what + ": safetensors header is not a JSON object");
  const std::uint8_t* base = data + 8 + hlen;
  const std::uint64_t body = size - 8 - hlen;
  SafeTensorsFile out;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error(what + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw Error(what + ": __metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const auto& e = *it;
    const std::string tw = what + ": tensor '" + it.key() + "'";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw Error(tw + " lacks dtype, shape or data_offsets");
    if (!e["dtype"].is_string() || !e["shape"].is_array() || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
      throw Error(tw + " has a malformed entry");
    Tensor t;
    try {
      t.dtype = dtype_from_name(e["dtype"].get<std::string>());
    } catch (const Error& err) {
      throw Error(tw + ": " + err.what());
    }
    for (auto& d : e["shape"]) {
      if (!d.is_number_unsigned()) throw Error(tw + " has a non-integer or negative dimension");
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim > (std::uint64_t{1} << 50)) throw Error(tw + ": dimension " + std::to_string(dim) + " is too large (at most 2^50)");
      t.shape.push_back(static_cast<std::int64_t>(dim));
    }
    const auto& off = e["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) throw Error(tw + " has bad data_offsets");
    const std::uint64_t b = off[0].get<std::uint64_t>(), en = off[1].get<std::uint64_t>();
    if (b > en || en > body) throw Error(tw + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] lie outside the " + std::to_string(body) + "-byte data section");
    std::int64_t n;
    try {
      n = shape_numel(t.shape);
    } catch (const Error& err) {
      throw Error(tw + ": " + err.what());
    }
    if (static_cast<std::uint64_t>(n) > (std::uint64_t{1} << 60) / dtype_size(t.dtype) ||
        static_cast<std::uint64_t>(n) * dtype_size(t.dtype) != en - b)
      throw Error(tw + ": shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) + " needs " +
                  std::to_string(static_cast<std::uint64_t>(n) * dtype_size(t.dtype)) + " bytes, offsets give " + std::to_string(en - b));
    t.data = base + b;
    t.owner = owner;
    ranges.push_back({b, en});
    out.tensors.push_back({it.key(), std::move(t)});
  }
  std::sort(out.tensors.begin(), out.tensors.end(), [&](const NamedTensor& a, const NamedTensor& b) {
    return a.tensor.data < b.tensor.data || (a.tensor.data == b.tensor.data && a.name < b.name);
  });
  out.index.reserve(out.tensors.size());
  for (std::size_t k = 0; k < out.tensors.size(); ++k) out.index.emplace(out.tensors[k].name, k);
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) throw Error(what + ": tensors overlap in the data section");
  return out;
}

SafeTensorsFile read_safetensors(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  return parse_safetensors(file->data(), file->size(), file, path);
}

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<SafeTensorsEntry> entries;
  entries.reserve(tensors.size());
  for (auto& nt : tensors) entries.push_back({nt.name, nt.tensor.dtype, nt.tensor.shape, nt.tensor.nbytes()});
  const std::string hs = safetensors_header(entries, metadata, path);
  write_file_atomic(path, [&](int fd) {
    std::uint8_t len[8];
    std::uint64_t l = hs.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(l >> (8 * i));
    write_all(fd, len, 8, path);
    write_all(fd, hs.data(), hs.size(), path);
    for (auto& nt : tensors) write_all(fd, nt.tensor.data, nt.tensor.nbytes(), path);
  });
}

}  // namespace qcast
