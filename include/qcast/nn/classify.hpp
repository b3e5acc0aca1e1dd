// Classification accuracy and NLL of a graph model over an image set: the numbers `qcast eval`, quantize's
// --eval and the sweep report for classifiers.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "qcast/nn/dataset.hpp"
#include "qcast/nn/graph.hpp"

namespace qcast::nn {

struct ClassifyResult {
  std::int64_t samples = 0;
  std::int64_t correct = 0;
  double nll = 0;  ///< summed over samples (natural log)
  std::vector<std::uint8_t> hit;   ///< per sample: 1 when the arg-max is the label
  std::vector<double> sample_nll;  ///< per sample: -log softmax(label)
  double accuracy() const { return samples ? static_cast<double>(correct) / static_cast<double>(samples) : 0.0; }
  double mean_nll() const { return samples ? nll / static_cast<double>(samples) : 0.0; }
};

/// Runs the graph (one input [batch, ...sample_shape], logits [batch, classes] out) over `set` in batches
/// of `batch` and counts top-1 hits (first maximum wins) and the NLL of the labels. `on_batch(so_far)` is
/// called after each batch (progress). Results do not depend on `threads`. `what` names the model in errors.
ClassifyResult classify(const Graph& g, const ImageSet& set, std::int64_t batch, int threads, const std::string& what,
                        const std::function<void(const ClassifyResult& so_far)>& on_batch = {});

}  // namespace qcast::nn
