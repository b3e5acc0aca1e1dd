#include "qcast/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/kernels/reference.hpp"

namespace qcast {

double QuantStats::sqnr_db() const {
  if (noise == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

void QuantStats::merge(const QuantStats& o) {
  count += o.count;
  signal += o.signal;
  noise += o.noise;
  max_abs_err = std::max(max_abs_err, o.max_abs_err);
  clipped += o.clipped;
  flushed += o.flushed;
}

QuantStats quant_stats(const Format& f, const float* x, const Shape& shape, const QuantOptions& opt) {
  // A k-quant on rows that are not whole 256-blocks is its fallback format (as stored and fake-quantized).
  if (kern::ggml_quant_of(f) && !shape.empty() && !(kern::ggml_quant_row_format(f, shape.back()) == f))
    return quant_stats(kern::ggml_quant_row_format(f, shape.back()), x, shape, opt);
  const std::int64_t n = shape_numel(shape);
  std::vector<float> q(static_cast<std::size_t>(n));
  fake_quant(f, x, q.data(), shape, opt);
  // The clipping threshold of each element: the largest magnitude its group can represent.
  std::vector<float> lo_lim(static_cast<std::size_t>(n), -std::numeric_limits<float>::infinity());
  std::vector<float> hi_lim(static_cast<std::size_t>(n), std::numeric_limits<float>::infinity());
  const double emax = f.elem().max_value();
  if (const auto t = kern::ggml_quant_of(f)) {
    // llama.cpp's searched types: each value's range is its sub-block's, lowest to highest level.
    const auto& lay = kern::ggml_quant_layout(*t);
    const std::int64_t nb = n / lay.block;
    std::vector<std::uint8_t> blk(static_cast<std::size_t>(lay.bytes));
    for (std::int64_t b = 0; b < nb; ++b) {
      const float* xb = x + b * lay.block;
      bool finite = true;
      for (int i = 0; i < lay.block && finite; ++i) finite = std::isfinite(xb[i]);
      if (!finite) continue;  // a NaN block: not counted below
      kern::ggml_quant_quantize(*t, xb, blk.data(), lay.block);
      kern::ggml_quant_ranges(*t, blk.data(), lo_lim.data() + b * lay.block, hi_lim.data() + b * lay.block);
    }
  } else if (f.scaling().kind == ScaleKind::None) {
    std::fill(hi_lim.begin(), hi_lim.end(), static_cast<float>(emax));
    std::fill(lo_lim.begin(), lo_lim.end(), f.elem().is_unsigned() ? 0.0f : static_cast<float>(-emax));
  } else {
    const auto layout = ref::GroupLayout::make(f, shape, opt.axis);
    const float ts = ref::tensor_scale_for(f, x, n);
    std::vector<float> buf;
    layout.enumerate(0, layout.num_groups, [&](std::int64_t, const std::vector<std::int64_t>& off) {
      buf.resize(off.size());
      for (std::size_t k = 0; k < off.size(); ++k) buf[k] = x[off[k]];
      const auto p = ref::group_params(f, buf.data(), buf.size(), ts, opt.round);
      float lo, hi;
      if (f.scaling().rule == ScaleRule::Ggml) {
        // llama.cpp's blocks: codes 0..2^b-1 above an fp16 minimum (Q4_1, Q5_1), or -2^(b-1)..2^(b-1)-1 times a
        // scale that is negative when the block's largest magnitude is positive (Q4_0, Q5_0: d = max / -8).
        const double top = std::ldexp(1.0, f.elem().bits) - 1, half = std::ldexp(1.0, f.elem().bits - 1);
        const double a = f.scaling().asym ? p.offset : -half * p.scale;
        const double b = f.scaling().asym ? p.offset + top * p.scale : (half - 1) * p.scale;
        lo = static_cast<float>(std::min(a, b));
        hi = static_cast<float>(std::max(a, b));
      } else if (f.scaling().asym) {
        const double qmax = std::ldexp(1.0, f.elem().bits) - 1;
        lo = static_cast<float>(-p.zero * static_cast<double>(p.scale));
        hi = static_cast<float>((qmax - p.zero) * p.scale);
      } else {
        hi = static_cast<float>(emax * p.scale);
        lo = -hi;
      }
      for (auto o : off) {
        lo_lim[o] = lo;
        hi_lim[o] = hi;
      }
    });
  }
  QuantStats s;
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v) || !std::isfinite(q[i])) continue;
    ++s.count;
    const double d = static_cast<double>(v) - q[i];
    s.signal += static_cast<double>(v) * v;
    s.noise += d * d;
    s.max_abs_err = std::max(s.max_abs_err, std::fabs(d));
    if (v > hi_lim[i] || v < lo_lim[i]) ++s.clipped;
    if (v != 0 && q[i] == 0) ++s.flushed;
  }
  return s;
}

}  // namespace qcast
