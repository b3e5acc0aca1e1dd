// Whole-file tensor transforms shared by `qcast cast` and friends: .npy or .safetensors in, the same kind out.
// The input is memory-mapped; the output is streamed with write() in pieces into a temporary file that is
// renamed into place at the end. (Measured on the dev VM: writing a fresh 64 MiB file through a shared
// memory map faults it in page by page, ~5x the CPU time of 4 MiB write() calls, which let the kernel
// allocate large page-cache folios.)
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "qcast/io.hpp"

namespace qcast {

/// True for .npy, false for .safetensors; throws qcast::Error for any other extension.
bool is_npy_path(const std::string& path);

/// Is `t` a floating tensor that the float transforms accept (F32, F16, BF16)?
bool is_float_tensor(const Tensor& t);

/// Receives consecutive pieces of one output tensor (float32 values, in order).
using FloatSink = std::function<void(const float*, std::int64_t)>;

/// Applies `fn(name, input_as_f32, sink)` to every floating tensor of `in` whose name `select` accepts;
/// fn must pass exactly numel() float32 results to `sink`, in order (anything else is an error and no
/// output file is left). Results go to `out` (same kind of file as `in`); other tensors are copied
/// unchanged. For .npy the tensor name is "" and the array must be F32 or F16. Returns the number of
/// tensors transformed.
int transform_float_tensors(const std::string& in, const std::string& out,
                            const std::function<bool(const std::string&)>& select,
                            const std::function<void(const std::string&, const Tensor&, const FloatSink&)>& fn);

}  // namespace qcast
