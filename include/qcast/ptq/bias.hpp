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

/// Model-level (empirical) bias correction: the layer's mean output error against the *float* model,
///   E[y_q - y] = Q E[x~] - W E[x]   =>   b' = b - (Q E[x~] - W E[x]),
/// with E[x] [cols] the layer's input mean in the float model and E[x~] [cols] its input mean in the model
/// whose prefix is already quantized (so the mean shift that the prefix causes is removed too). Equals
/// correct_bias(W, Q, rows, cols, mean) when both means are equal.
std::vector<float> correct_bias(const float* W, const float* Q, std::int64_t rows, std::int64_t cols,
                                const float* mean_float, const float* mean_quant, const float* bias);

}  // namespace qcast::ptq
