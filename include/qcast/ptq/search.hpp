// Scale (and zero-point) search: for every scale group, the representable scale that minimises the
// importance-weighted squared error  sum_j imp_j (w_j - Q(w_j; s, z))^2, imp_j = E[x_j^2] (input feature j).
#pragma once
#include "qcast/ptq/common.hpp"

namespace qcast::ptq {

struct SearchOptions {
  /// Power-of-two scales (e8m0, or rule floor/ceil/midmax): exponents e0 + k, k in [-pow2_radius, pow2_radius],
  /// e0 = the OCP floor exponent floor(log2 amax) - emax_elem.
  int pow2_radius = 2;
  /// Other scale elements: shrink factors alpha = 1 - k * shrink_step for k = -grow_steps .. shrink_steps,
  /// candidate scale = round_to_scale_elem(alpha * amax / max_elem) (asym: alpha shrinks [min, max]).
  int shrink_steps = 50;
  int grow_steps = 5;
  double shrink_step = 0.01;
  RoundMode round = RoundMode::Even;
  int threads = 1;  ///< groups are split across threads (result independent of the count)
};

/// Searches per-group scales. `importance` has `cols` entries (E[x_j^2]; nullptr = all ones, i.e. plain
/// MSE). The format's own rule is always one of the candidates, so the weighted error never exceeds RTN's.
QuantizedWeight search(const Format& f, const float* W, std::int64_t rows, std::int64_t cols,
                       const float* importance = nullptr, const SearchOptions& opt = {});

}  // namespace qcast::ptq
