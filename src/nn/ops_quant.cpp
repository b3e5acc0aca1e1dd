// Quantization operators of the graph executor: ONNX QuantizeLinear and DequantizeLinear (opset 10-21:
// per-tensor, per-axis and blocked scales; integer codes are held as int64 values, as every integer tensor), so
// that QDQ models (those `qcast quantize --out *.onnx` writes among them) run. QuantizeLinear's output type (its
// saturation range) is its zero point's element type, which the importer records on the node (kQuantizeRange).
#include <algorithm>
#include <cmath>
#include <string>

#include "nn/ops.hpp"
#include "qcast/nn/onnx.hpp"

namespace qcast::nn::detail {

namespace {

// Index of the scale / zero point of element `k` of a tensor of shape `s` under axis / block_size.
struct QuantIndex {
  std::int64_t inner = 1, len = 1, block = 0, groups = 1;
  bool per_tensor = true;
  QuantIndex(const OpCtx& c, const Shape& s, const Shape& scale_shape) {
    per_tensor = scale_shape.empty() || (scale_shape.size() == 1 && scale_shape[0] == 1);
    if (per_tensor) return;
    const std::int64_t r = static_cast<std::int64_t>(s.size());
    std::int64_t axis = c.node.get_i("axis", 1);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) c.fail("axis out of range for " + shape_str(s));
    block = c.node.get_i("block_size", 0);
    len = s[static_cast<std::size_t>(axis)];
    for (std::int64_t d = axis + 1; d < r; ++d) inner *= s[static_cast<std::size_t>(d)];
    if (block <= 0) {
      if (scale_shape != Shape{len}) c.fail("scale shape " + shape_str(scale_shape) + " does not match axis " + std::to_string(axis) + " of " + shape_str(s));
      block = 0;
    } else {
      Shape want = s;
      want[static_cast<std::size_t>(axis)] = (len + block - 1) / block;
      if (scale_shape != want) c.fail("scale shape " + shape_str(scale_shape) + " does not match blocks of " + std::to_string(block) + " in " + shape_str(s));
      groups = want[static_cast<std::size_t>(axis)];
    }
  }
  std::int64_t operator()(std::int64_t k) const {
    if (per_tensor) return 0;
    const std::int64_t l = (k / inner) % len;
    if (block == 0) return l;
    const std::int64_t outer = k / (inner * len), i = k % inner;
    return (outer * groups + l / block) * inner + i;
  }
};

}  // namespace

void op_dequantize_linear(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& S = c.x(1);
  if (!X.is_int) c.fail("float codes are not supported (only integer DequantizeLinear)");
  if (S.is_int) c.fail("the scale must be a float tensor");
  const Value* Z = c.present(2) ? c.in[2] : nullptr;
  if (Z && Z->shape != S.shape) c.fail("zero point shape " + shape_str(Z->shape) + " differs from the scale's " + shape_str(S.shape));
  Value& Y = c.alloc(0, X.shape);
  if (c.shape_only) return;
  const QuantIndex idx(c, X.shape, S.shape);
  const std::int64_t n = X.numel();
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t g = idx(k);
    const std::int64_t z = Z ? static_cast<std::int64_t>(Z->at(g)) : 0;
    Y.mfp()[k] = static_cast<float>(X.ip()[k] - z) * S.fp()[g];
  }
}

void op_quantize_linear(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& S = c.x(1);
  if (X.is_int) c.fail("the input must be a float tensor");
  if (S.is_int) c.fail("the scale must be a float tensor");
  const Value* Z = c.present(2) ? c.in[2] : nullptr;
  if (Z && Z->shape != S.shape) c.fail("zero point shape " + shape_str(Z->shape) + " differs from the scale's " + shape_str(S.shape));
  const auto range = c.node.get_ints(kQuantizeRange);
  if (range.size() != 2) c.fail("the output type is unknown (a graph not read by the ONNX importer)");
  Value& Y = c.alloc(0, X.shape, true);
  if (c.shape_only) return;
  const QuantIndex idx(c, X.shape, S.shape);
  const std::int64_t n = X.numel();
  const double lo = static_cast<double>(range[0]), hi = static_cast<double>(range[1]);
  std::int64_t* y = Y.i->data();
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t g = idx(k);
    const double z = Z ? Z->at(g) : 0.0;
    // ONNX: saturate(round_half_even(x / scale) + zero_point), the division in float32 as ONNX Runtime does.
    const float q = std::nearbyint(X.fp()[k] / S.fp()[g]);
    const double v = std::isnan(q) ? z : std::clamp(static_cast<double>(q) + z, lo, hi);  // NaN: no defined code; the zero point
    y[k] = static_cast<std::int64_t>(v);
  }
}

// DynamicQuantizeLinear (opset 11): uint8 codes with the scale and zero point of the input's range, which
// always includes 0: scale = (max(0, max x) - min(0, min x)) / 255, zero = saturate(round(-min / scale)),
// y = saturate(round(x / scale) + zero), rounding half to even. An all-zero input (scale 0) gives codes 0.
void op_dynamic_quantize_linear(OpCtx& c) {
  const Value& X = c.x(0);
  if (X.is_int) c.fail("the input must be a float tensor");
  Value& Z = c.alloc(2, {}, true);  // the last output first: later allocs then never move the outputs vector
  Value& S = c.alloc(1, {});
  Value& Y = c.alloc(0, X.shape, true);
  if (c.shape_only) return;
  const std::int64_t n = X.numel();
  float lo = 0.0f, hi = 0.0f;
  for (std::int64_t k = 0; k < n; ++k) {
    const float v = X.fp()[k];
    if (std::isnan(v)) c.fail("NaN in the input: no range to quantize to");
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const float scale = (hi - lo) / 255.0f;
  if (!std::isfinite(scale)) c.fail("the input's range is not finite");
  const float z = scale > 0 ? std::clamp(std::nearbyint(-lo / scale), 0.0f, 255.0f) : 0.0f;
  S.mfp()[0] = scale;
  Z.i->data()[0] = static_cast<std::int64_t>(z);
  std::int64_t* y = Y.i->data();
  for (std::int64_t k = 0; k < n; ++k)
    y[k] = scale > 0 ? static_cast<std::int64_t>(std::clamp(std::nearbyint(X.fp()[k] / scale) + z, 0.0f, 255.0f)) : 0;
}

}  // namespace qcast::nn::detail
