// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers"), following the published algorithm step for step:
//   H = 2 X^T X / N (HessianAccumulator), dead inputs (H_jj = 0: H_jj = 1, W[:, j] = 0),
//   optional act-order (columns by decreasing H_jj, undone at the end), dampening H += damp * mean(diag H) I,
//   U = upper Cholesky factor of H^-1, then columns in lazy batches of `block_size`:
//     q_j = Q(w_j),  e = (w_j - q_j) / U_jj,  W[:, j+1 : batch end] -= e U[j, j+1 : batch end]
//   and after each batch W[:, batch end :] -= E U[batch, batch end :].
// Scale groups are the format's own (blocks along in_features): "dynamic" computes a group's
// parameters when its first column is reached (from the weights as they stand at the start of that
// lazy batch, as the reference implementation does), "static" computes all of them up front from the
// unquantized W, which keeps MX / NVFP4 blocks consistent under act-order.
#pragma once
#include <cstdint>
#include <vector>

#include "qcast/ptq/common.hpp"

namespace qcast::ptq {

struct GptqOptions {
  int block_size = 128;        ///< lazy batch width (columns)
  double damp = 0.01;          ///< dampening, fraction of the mean diagonal of H
  bool act_order = false;      ///< process columns by decreasing H_jj
  bool static_groups = false;  ///< precompute all group parameters from the unquantized W
  RoundMode round = RoundMode::Even;
  std::uint64_t seed = 0;      ///< stochastic rounding (keyed by element index: thread-count independent)
  int threads = 1;             ///< worker threads (rows are split) and BLAS / LAPACK threads
};

struct GptqResult {
  QuantizedWeight q;                 ///< quantized W in the original column order
  std::vector<std::int64_t> perm;    ///< processing order: perm[k] = original column processed k-th
  std::vector<std::int64_t> dead;    ///< columns with H_jj == 0 (set to zero)
  double loss = 0;                   ///< sum over columns of ||w_j - q_j||^2 / (2 U_jj^2), as the reference reports
  double seconds_setup = 0;          ///< dead columns, static groups, permutation
  double seconds_cholesky = 0;       ///< dampening, H^-1 and its Cholesky factor
  double seconds_loop = 0;           ///< the column loop (lazy batches, group parameters, GEMM updates)
};

/// Quantizes W [rows, cols] given H [cols, cols] (symmetric, e.g. HessianAccumulator::H()).
/// Throws qcast::Error when the dampened H is not positive definite.
GptqResult gptq(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, const float* H,
                const GptqOptions& opt = {});

}  // namespace qcast::ptq
