// Quantization error statistics of a tensor under a format.
#pragma once
#include <cstdint>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast {

struct QuantStats {
  std::int64_t count = 0;        // finite elements measured (non-finite inputs are skipped)
  double signal = 0;             // sum of x^2
  double noise = 0;              // sum of (x - q)^2
  double max_abs_err = 0;
  std::int64_t clipped = 0;      // |x| beyond the largest value its group can represent
  std::int64_t flushed = 0;      // x != 0 quantized to 0

  double mse() const { return count ? noise / static_cast<double>(count) : 0.0; }
  /// 10 log10(signal / noise) in dB; +inf when the quantization is lossless.
  double sqnr_db() const;
  double frac_clipped() const { return count ? static_cast<double>(clipped) / static_cast<double>(count) : 0.0; }
  double frac_flushed() const { return count ? static_cast<double>(flushed) / static_cast<double>(count) : 0.0; }
  /// Adds another tensor's counts (for whole-model figures).
  void merge(const QuantStats& o);
};

/// Quantizes `x` (row-major, `shape`) with `f` and measures the error.
QuantStats quant_stats(const Format& f, const float* x, const Shape& shape, const QuantOptions& opt = {});

}  // namespace qcast
