#include "qcast/tensor.hpp"

#include <limits>

#include "qcast/error.hpp"
#include "qcast/half.hpp"

namespace qcast {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

static const std::pair<DType, const char*> kNames[] = {
    {DType::F32, "F32"}, {DType::F16, "F16"}, {DType::BF16, "BF16"}, {DType::F64, "F64"},
    {DType::I8, "I8"},   {DType::U8, "U8"},   {DType::I16, "I16"},   {DType::I32, "I32"},
    {DType::I64, "I64"}, {DType::U16, "U16"}, {DType::U32, "U32"},   {DType::U64, "U64"},
    {DType::Bool, "BOOL"}};

std::string dtype_name(DType t) {
  for (auto& [d, n] : kNames) if (d == t) return n;
  return "?";
}

DType dtype_from_name(const std::string& name) {
  for (auto& [d, n] : kNames) if (name == n) return d;
  throw Error("unknown dtype '" + name + "'");
}

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) {
    if (d < 0) throw Error("negative dimension in shape " + shape_str(s));
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d) throw Error("shape " + shape_str(s) + " is too large");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

Tensor Tensor::zeros_f32(const Shape& shape) {
  auto buf = std::make_shared<std::vector<float>>(static_cast<std::size_t>(shape_numel(shape)), 0.0f);
  Tensor t;
  t.dtype = DType::F32;
  t.shape = shape;
  t.data = buf->data();
  t.owner = buf;
  return t;
}

Tensor Tensor::to_f32() const {
  if (dtype == DType::F32) return *this;
  Tensor out = zeros_f32(shape);
  float* o = out.mutable_f32();
  const std::int64_t n = numel();
  switch (dtype) {
    case DType::F16: { auto* p = static_cast<const std::uint16_t*>(data); for (std::int64_t i = 0; i < n; ++i) o[i] = f16_to_f32(p[i]); break; }
    case DType::BF16: { auto* p = static_cast<const std::uint16_t*>(data); for (std::int64_t i = 0; i < n; ++i) o[i] = bf16_to_f32(p[i]); break; }
    case DType::F64: { auto* p = static_cast<const double*>(data); for (std::int64_t i = 0; i < n; ++i) o[i] = static_cast<float>(p[i]); break; }
    default: throw Error("tensor of dtype " + dtype_name(dtype) + " is not floating point");
  }
  return out;
}

const float* Tensor::f32() const {
  if (dtype != DType::F32) throw Error("expected a float32 tensor, got " + dtype_name(dtype));
  return static_cast<const float*>(data);
}

float* Tensor::mutable_f32() { return const_cast<float*>(f32()); }

}  // namespace qcast
