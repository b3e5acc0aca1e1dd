// Log-probabilities from logits: the one log-softmax / negative log-likelihood of qcast (eval's accuracy
// and NLL, LLaMA perplexity, PTQ's calibration loss and KL terms). Sums in double around the row maximum.
#pragma once
#include <cstdint>

namespace qcast::nn {

/// Row maximum `mx` and sum of exp(l[k] - mx) over a row of C logits (C > 0).
struct LogSumExp {
  double max = 0;
  double sum = 0;
  double value() const;  ///< log(sum(exp(l))) = max + log(sum)
};
LogSumExp log_sum_exp(const float* logits, std::int64_t C);

/// -log softmax(logits)[target] for a row of C logits.
double nll(const float* logits, std::int64_t C, std::int64_t target);

/// Replaces each of `rows` rows of C logits by its log-softmax.
void log_softmax_rows(float* v, std::int64_t rows, std::int64_t C);

}  // namespace qcast::nn
