// The packed-model file: quantized tensors as bit-packed codes + scales inside a safetensors file
// (layout in docs/packed-layout.md). Written by `qcast encode` (and `qcast quantize`), read by `qcast decode`.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "qcast/io.hpp"
#include "qcast/quantize.hpp"

namespace qcast {

struct PackedFile {
  std::vector<std::pair<std::string, Encoded>> quantized;  // in file order
  std::vector<NamedTensor> plain;                          // tensors stored unquantized
  std::map<std::string, std::string> metadata;             // user metadata (qcast.* keys removed on read)
};

/// Writes atomically. Tensor names must not end in .codes/.scales/.zeros/.tscale.
void write_packed(const std::string& path, const PackedFile& f);
/// Reads and validates (sizes, formats, group counts); throws qcast::Error naming the tensor at fault.
PackedFile read_packed(const std::string& path);
/// The file's tensors as float32 values: the quantized ones decoded (in file order), then the plain ones
/// as stored. Errors name `where` and the tensor.
std::vector<NamedTensor> decode_packed(const PackedFile& f, int threads, const std::string& where);
/// Checks that an encoded tensor is consistent: its format parses, its axis suits its shape, its group
/// count and the sizes of its code / scale / zero-point streams are exactly what encode() writes for them.
/// Throws qcast::Error naming the first mismatch. read_packed applies it to every tensor.
void check_encoded(const Encoded& e);
/// True if the safetensors file carries qcast packed metadata.
bool is_packed(const SafeTensorsFile& st);

}  // namespace qcast
