// Low-rank compensation of the quantization residual (data-free, in the spirit of LoRaQ):
//   W ~= Q(W - A B) + A B,   A [rows, rank], B [rank, cols],
// iterated: L_0 = 0; for t = 1..iters: Qt = Q(W - L_{t-1}); E = W - Qt; (A, B) = rank-r SVD of E
// (A = U_r sqrt(S_r), B = sqrt(S_r) V_r^T), optionally quantized with their own format; L_t = A B.
// The SVD is randomized (range finder with oversampling and power iterations, then an exact SVD of the
// small projected matrix via LAPACK dgesdd); exact whenever rank + oversampling >= min(rows, cols).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "qcast/ptq/common.hpp"

namespace qcast::ptq {

struct LowRankOptions {
  int rank = 8;
  int iters = 3;                        ///< alternations (1 = quantize once, compensate once)
  std::optional<Format> branch_format;  ///< format of A and B (e.g. int8/ch0 or mxfp6_e2m3); none = fp32
  int oversample = 8;
  int power_iters = 4;
  std::uint64_t seed = 0;
};

struct LowRankResult {
  QuantizedWeight q;        ///< the main quantized layer Q(W - A B)
  std::vector<float> A, B;  ///< branch factors (dequantized if branch_format is set): A [rows, rank], B [rank, cols]
  int rank = 0;
  /// The effective weights Q + A B [rows, cols].
  std::vector<float> effective() const;
};

LowRankResult lowrank(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, const LowRankOptions& opt = {});

/// Best rank-r approximation of M [rows, cols] (randomized SVD as above): M ~= A B.
void low_rank_factors(const float* M, std::int64_t rows, std::int64_t cols, int rank, std::vector<float>& A,
                      std::vector<float>& B, int oversample = 8, int power_iters = 4, std::uint64_t seed = 0);

}  // namespace qcast::ptq
