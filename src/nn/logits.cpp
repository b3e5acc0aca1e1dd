#include "qcast/nn/logits.hpp"

#include <algorithm>
#include <cmath>

namespace qcast::nn {

double LogSumExp::value() const { return max + std::log(sum); }

LogSumExp log_sum_exp(const float* l, std::int64_t C) {
  LogSumExp r;
  r.max = l[0];
  for (std::int64_t k = 1; k < C; ++k) r.max = std::max(r.max, static_cast<double>(l[k]));
  for (std::int64_t k = 0; k < C; ++k) r.sum += std::exp(static_cast<double>(l[k]) - r.max);
  return r;
}

double nll(const float* l, std::int64_t C, std::int64_t target) {
  const LogSumExp z = log_sum_exp(l, C);
  return -(static_cast<double>(l[target]) - z.max - std::log(z.sum));
}

void log_softmax_rows(float* v, std::int64_t rows, std::int64_t C) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* l = v + r * C;
    const double lz = log_sum_exp(l, C).value();
    for (std::int64_t k = 0; k < C; ++k) l[k] = static_cast<float>(l[k] - lz);
  }
}

}  // namespace qcast::nn
