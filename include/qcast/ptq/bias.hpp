// Bias correction: removes the mean output error of a quantized layer,
//   E[y - y_q] = (W - Q) E[x]   =>   b' = b - (Q - W) E[x].
#pragma once
#include <cstdint>
#include <vector>

namespace qcast::ptq {

/// Corrected bias [rows] for W, Q [rows, cols] and the input mean E[x] [cols] (InputStats::mean()).
/// `bias` may be nullptr (a layer without bias: the correction becomes its bias).
std::vector<float> correct_bias(const float* W, const float* Q, std::int64_t rows, std::int64_t cols,
                                const float* input_mean, const float* bias = nullptr);

}  // namespace qcast::ptq
