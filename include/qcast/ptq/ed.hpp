// Error diffusion (ED), after Khodamoradi, Denolf, Dellinger 2024 (arXiv 2410.11203): the network is a
// composite function f_L o ... o f_1, layers are quantized in order, and the error that the quantized
// prefix has already made is "diffused" into the next layer instead of being left to accumulate.
//
// What qcast implements (layer-level primitive; see docs/algorithms.md for the derivation and for what
// of the paper is and is not reproduced): layer l sees its float-model inputs x (rows of X) and the
// inputs x~ that the already-quantized prefix actually produces (rows of X~). Its target is the
// float-model output y = W x. ED first solves the least-squares correction
//     W* = argmin_V sum_t || W x_t - V x~_t ||^2 = W C_fq C_qq^-1,   C_fq = sum x x~^T,  C_qq = sum x~ x~^T
// (which absorbs the prefix error that is linear in x~), then quantizes W* with the inner method
// (RTN by default: hyperparameter-free, no Hessian search; or GPTQ with H = 2 C_qq / N). Because
// W x - V x~ splits into the orthogonal parts (W x - W* x~) + (W* - Q) x~, quantizing W* minimises the
// remaining output error against the real inputs of the quantized network.
#pragma once
#include <cstdint>
#include <vector>

#include "qcast/ptq/common.hpp"
#include "qcast/ptq/gptq.hpp"

namespace qcast::ptq {

/// Streams the cross statistics of (float-model inputs, quantized-prefix inputs), both [tokens, dim].
class EdAccumulator {
 public:
  explicit EdAccumulator(std::int64_t dim);
  void add(const float* X_float, const float* X_quant, std::int64_t tokens);
  std::int64_t dim() const { return dim_; }
  std::int64_t samples() const { return n_; }
  const std::vector<double>& cqq() const { return cqq_; }  ///< sum x~ x~^T [dim, dim]
  const std::vector<double>& cfq() const { return cfq_; }  ///< sum x x~^T  [dim, dim] (row = float feature)

 private:
  std::int64_t dim_ = 0, n_ = 0;
  std::vector<double> cqq_, cfq_;
};

struct EdOptions {
  enum class Inner { Rtn, Gptq };
  Inner inner = Inner::Rtn;
  GptqOptions gptq;     ///< used when inner == Gptq
  double ridge = 1e-6;  ///< numerical safeguard only: C_qq += ridge * mean(diag C_qq) I
};

struct EdResult {
  QuantizedWeight q;          ///< quantized corrected weights
  std::vector<float> target;  ///< W* = W C_fq C_qq^-1 before quantization
};

EdResult error_diffusion(const Format& f, const float* W, std::int64_t rows, std::int64_t cols,
                         const EdAccumulator& stats, const EdOptions& opt = {});

}  // namespace qcast::ptq
