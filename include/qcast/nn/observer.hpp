// Calibration hooks into the executors (used by qcast::ptq's model-level quantization): an observer is
// called with the inputs of every node (graph models) or of every linear layer (LLaMA) just before it
// runs. Observers may throw to stop a forward pass early (the exception propagates to the caller).
// Kept in a separate header so that the runtime's main headers stay untouched.
#pragma once
#include <cstddef>
#include <functional>
#include <vector>

#include "qcast/nn/graph.hpp"
#include "qcast/nn/llama.hpp"

namespace qcast::nn {

/// Called before node `index` of `g.nodes` executes; `inputs[k]` is the value of node input k
/// (nullptr for an omitted optional input). Values are the raw inputs: activation fake-quant
/// (node.quant.act) is applied inside the operator, after the observer.
using NodeObserver = std::function<void(std::size_t index, const Node& node, const std::vector<const Value*>& inputs)>;
/// Graph::run with an observer (same arithmetic and outputs as Graph::run).
std::vector<Value> run_observed(const Graph& g, const std::vector<Value>& feeds, int threads, const NodeObserver& obs);

/// Called before every linear layer of Llama::forward_seq with the rows the layer multiplies:
/// x [tokens, L.in], after the layer's activation fake-quant when it has one.
using LinearObserver = std::function<void(const Linear& L, const float* x, int tokens)>;
/// Llama::forward_seq with an observer (same arithmetic and logits as forward_seq).
std::vector<float> forward_seq_observed(const Llama& m, const std::vector<int>& tokens, const LinearObserver& obs);

}  // namespace qcast::nn
