#include "qcast/ptq/bias.hpp"

namespace qcast::ptq {

std::vector<float> correct_bias(const float* W, const float* Q, std::int64_t rows, std::int64_t cols,
                                const float* mean, const float* bias) {
  std::vector<float> b(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    double d = 0;
    for (std::int64_t c = 0; c < cols; ++c) d += (static_cast<double>(Q[r * cols + c]) - W[r * cols + c]) * mean[c];
    b[r] = static_cast<float>((bias ? bias[r] : 0.0) - d);
  }
  return b;
}

std::vector<float> correct_bias(const float* W, const float* Q, std::int64_t rows, std::int64_t cols,
                                const float* mean_float, const float* mean_quant, const float* bias) {
  std::vector<float> b(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    double d = 0;
    for (std::int64_t c = 0; c < cols; ++c)
      d += static_cast<double>(Q[r * cols + c]) * mean_quant[c] - static_cast<double>(W[r * cols + c]) * mean_float[c];
    b[r] = static_cast<float>((bias ? bias[r] : 0.0) - d);
  }
  return b;
}

}  // namespace qcast::ptq
