// Round-to-nearest: the baseline every PTQ method is compared against.
#pragma once
#include "qcast/ptq/common.hpp"

namespace qcast::ptq {

/// Quantizes W [rows, cols] with the format's own scale rule (identical to fake_quant with axis -1),
/// keeping the per-group parameters. `round` is the element rounding mode (stochastic is seeded by `seed`).
QuantizedWeight rtn(const Format& f, const float* W, std::int64_t rows, std::int64_t cols,
                    RoundMode round = RoundMode::Even, std::uint64_t seed = 0);
/// The same result on up to `threads` threads: round to nearest even goes through qcast::encode's SIMD
/// kernels (bit for bit the reference's codes and scales; the packed codes are kept for encode()), other
/// rounding modes and asymmetric formats through the scalar reference.
QuantizedWeight rtn(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, int threads);

}  // namespace qcast::ptq
