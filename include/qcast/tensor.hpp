// Tensors: a dtype tag, a shape, and either owned or borrowed (e.g. memory-mapped) storage.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace qcast {

enum class DType { F32, F16, BF16, F64, I8, U8, I16, I32, I64, U16, U32, U64, Bool };

/// Size in bytes of one element of `t`.
std::size_t dtype_size(DType t);
/// safetensors spelling ("F32", "BF16", ...).
std::string dtype_name(DType t);
/// Inverse of dtype_name; throws qcast::Error for unknown names.
DType dtype_from_name(const std::string& name);

using Shape = std::vector<std::int64_t>;

/// Number of elements of a shape (1 for a scalar). Throws on negative dims or overflow.
std::int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

/// A tensor of contiguous row-major data. `data` points either into `owner` (a vector, a mapping)
/// or elsewhere for the lifetime of `owner`.
struct Tensor {
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;
  std::shared_ptr<const void> owner;  // keeps `data` alive

  std::int64_t numel() const { return shape_numel(shape); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }

  /// A fresh float32 tensor (owned, zero-initialised).
  static Tensor zeros_f32(const Shape& shape);
  /// Converts any floating dtype to an owned float32 tensor (returns the same storage when already F32).
  Tensor to_f32() const;
  const float* f32() const;
  float* mutable_f32();  // only for tensors created by zeros_f32 / to_f32 copies
};

}  // namespace qcast
