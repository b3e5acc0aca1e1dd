// Whole-file tensor transforms shared by `qcast cast` and friends: .npy or .safetensors in, the same kind out.
// The input is memory-mapped for its headers; float32 tensor data is read in windows with pread and the
// output written in windows with pwrite into a temporary file that is renamed into place at the end.
// (Measured on the dev VM: writing a fresh 64 MiB file through a shared memory map faults it in page by
// page, ~5x the CPU time of write() calls; reading a fresh mapping of a 64 MiB input costs ~27 ms of page
// faults, pread of the same bytes ~11 ms.)
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "qcast/io.hpp"
#include "qcast/quantize.hpp"

namespace qcast {

/// True for .npy, false for .safetensors; throws qcast::Error for any other extension.
bool is_npy_path(const std::string& path);

/// Writes one tensor to `path` in the file type its extension names: .npy, or .safetensors (one tensor
/// called `name`); qcast::Error for any other extension (checked before anything is written).
void write_tensor_file(const std::string& path, const std::string& name, const Tensor& t);

/// Is `t` a floating tensor that the float transforms accept (F32, F16, BF16)?
bool is_float_tensor(const Tensor& t);

/// Applies `fn(name, shape, source, sink)` to every floating tensor of `in` whose name `select` accepts:
/// `source` reads the tensor's values as float32 by window (pread of F32 data; F16 / BF16 are converted
/// first), `sink` takes the results (FloatSink: windows from any thread, in any order, each written at its
/// place with pwrite). The windows must cover the numel() results exactly once; anything else is an error
/// and no output file is left. Results go to `out` (same kind of file as `in`); other tensors are copied
/// unchanged. For .npy the tensor name is "" and the array must be F32 or F16. Returns the number of
/// tensors transformed.
int transform_float_tensors(const std::string& in, const std::string& out,
                            const std::function<bool(const std::string&)>& select,
                            const std::function<void(const std::string&, const Shape&, const FloatSource&, const FloatSink&)>& fn);

}  // namespace qcast
