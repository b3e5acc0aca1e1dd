// Tensor file formats: NumPy .npy and safetensors. Readers memory-map the file and validate every
// size and offset before touching data; writers are atomic (temp file + rename).
#pragma once
#include <cstdint>
#include <map>
#include <unordered_map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qcast/tensor.hpp"

namespace qcast {

/// Parses an in-memory .npy image (version 1.0/2.0/3.0, little-endian, C order). The returned tensor
/// points into `data`; `owner` is stored in it to keep the bytes alive. `what` names the source in errors.
Tensor parse_npy(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner, const std::string& what);
/// Memory-maps and parses a .npy file.
Tensor read_npy(const std::string& path);
/// The .npy header (magic, version, dict, padding to a multiple of 64) for a C-order array.
std::string npy_header(DType dtype, const Shape& shape);
/// Writes a tensor as .npy, atomically.
void write_npy(const std::string& path, const Tensor& t);

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct SafeTensorsFile {
  std::vector<NamedTensor> tensors;  // in the order of their data offsets
  std::map<std::string, std::string> metadata;
  /// The tensor called `name`, or nullptr. Constant time for a parsed file (an index built by
  /// parse_safetensors; a file whose `tensors` were changed afterwards is searched linearly).
  const Tensor* find(const std::string& name) const;
  std::unordered_map<std::string, std::size_t> index;  // name -> position in `tensors`
};

/// One header entry of a safetensors file being written.
struct SafeTensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t nbytes;
};
/// The JSON header of a safetensors file holding `entries` back to back (in this order) and `metadata`,
/// padded with spaces to a multiple of 8 bytes; qcast::Error naming `path` on a duplicate name. Linear
/// in the number of entries (nlohmann's ordered_json looks keys up linearly).
std::string safetensors_header(const std::vector<SafeTensorsEntry>& entries, const std::map<std::string, std::string>& metadata,
                               const std::string& path);

/// Parses an in-memory safetensors image; tensors point into `data`.
SafeTensorsFile parse_safetensors(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner,
                                  const std::string& what);
SafeTensorsFile read_safetensors(const std::string& path);
/// Writes tensors (in the given order) and string metadata, atomically.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

/// True if `path` ends with `ext` (case-sensitive, e.g. ".npy").
bool has_extension(const std::string& path, const std::string& ext);

}  // namespace qcast
