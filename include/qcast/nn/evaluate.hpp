// Model evaluation (the numerics of `qcast eval`, shared with `qcast sweep`): top-1 accuracy and mean
// NLL of a classifier graph on an image dataset, per-token NLL / perplexity of a LLaMA model on stories.
// Per-sample results are kept so that callers can pair two evaluations on the same samples (the
// confidence interval of a difference).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qcast/nn/classify.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/graph.hpp"
#include "qcast/nn/llama.hpp"

namespace qcast::nn {

struct ClassifierEval {
  std::int64_t samples = 0, correct = 0;
  double nll = 0;                     ///< mean over samples
  std::vector<std::uint8_t> hit;      ///< per sample: 1 when the arg-max is the label
  std::vector<double> sample_nll;     ///< per sample: -log softmax(label)
  double accuracy() const { return samples ? static_cast<double>(correct) / static_cast<double>(samples) : 0.0; }
};

/// Runs a one-input classifier over the first `limit` samples (all when <= 0) of image dataset `d` in
/// batches of `batch`; `on_batch(so_far, total)` after each batch (progress). `what` names the model in errors.
ClassifierEval evaluate_classifier(const Graph& g, const DatasetSpec& d, std::int64_t limit, std::int64_t batch, int threads,
                                   const std::string& what, const std::function<void(const ClassifyResult& so_far, std::int64_t total)>& on_batch = {});

/// The stories of text dataset `d` (the first `limit` when > 0); qcast::Error when it is not text or empty.
std::vector<std::string> eval_stories(const DatasetSpec& d, std::int64_t limit, const std::string& what);

// perplexity() with each story's NLL and token count is declared in llama.hpp.

}  // namespace qcast::nn
