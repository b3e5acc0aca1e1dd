// Whole-file tensor transforms shared by `qcast cast` and friends: .npy or .safetensors in, the same kind out,
// the input memory-mapped and the output written through a memory map that is renamed into place at the end.
#pragma once
#include <functional>
#include <string>

#include "qcast/io.hpp"

namespace qcast {

/// True for .npy, false for .safetensors; throws qcast::Error for any other extension.
bool is_npy_path(const std::string& path);

/// Is `t` a floating tensor that the float transforms accept (F32, F16, BF16)?
bool is_float_tensor(const Tensor& t);

/// Applies `fn(name, input_as_f32, output)` to every floating tensor of `in` whose name `select` accepts,
/// writing float32 results to `out` (same kind of file as `in`); other tensors are copied unchanged.
/// For .npy the tensor name is "" and the array must be F32 or F16. Returns the number of tensors transformed.
int transform_float_tensors(const std::string& in, const std::string& out,
                            const std::function<bool(const std::string&)>& select,
                            const std::function<void(const std::string&, const Tensor&, float*)>& fn);

}  // namespace qcast
