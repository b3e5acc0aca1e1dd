// The model interface: one view over ONNX graphs and LLaMA language models for PTQ, eval, cost and the
// sweep. Layers carry the source model's own names (ONNX node names such as /convnet/c1/Conv, LLaMA
// names such as layers.0.attention.wq), which recipes, eval, quantize, cost and the sweep all use.
// Every weight layer is seen as W [rows = out, cols = in] with blocks along `in` (Conv: [M, C*kh*kw];
// Gemm with transB = 0 and 2-D MatMul weights transposed), whatever the stored layout.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qcast/nn/graph.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/recipe.hpp"

namespace qcast::nn {

/// A weight layer of a model, viewed as W [rows = out, cols = in].
struct LayerRef {
  std::string name;
  std::int64_t rows = 0, cols = 0;
  int group = 0;  ///< layers with the same group read the same input (q/k/v, w1/w3)
  // graph
  std::size_t node = 0;
  int wid = -1;
  bool transpose = false;  ///< stored [in, out]
  Shape wshape;
  // llama: index into linears()
  int lin = -1;
};

/// A loaded model: an ONNX graph or a LLaMA language model.
struct Model {
  std::string path;  ///< the model file as given
  bool is_graph = true;
  Graph graph;
  Llama llama;

  /// The weight layers in execution order (Conv / Gemm / 2-D MatMul nodes with a constant weight; the
  /// LLaMA linears and the classifier). A graph layer of another kind is an error naming it.
  std::vector<LayerRef> layers() const;
  /// Names of the weight layers in execution order.
  std::vector<std::string> layer_names() const;
  /// The full-precision weights of a layer as [rows, cols] (the original ones once set_weights replaced them).
  std::vector<float> weights(const LayerRef& L) const;
  /// The blocks those weights were read from (a GGUF's quantized tensor), or null.
  const StoredBlocks* stored_blocks(const LayerRef& L) const;
  /// Replaces the weights the layer computes with ([rows, cols]); the full-precision ones are kept.
  void set_weights(const LayerRef& L, std::vector<float> W);
  /// Graph layers with a constant bias of `rows` values (LLaMA linears have none).
  bool has_bias(const LayerRef& L) const;
  std::vector<float> bias(const LayerRef& L) const;
  void set_bias(const LayerRef& L, const std::vector<float>& b);
  /// Attaches a recipe (weights fake-quantized, activation / KV formats attached); returns a warning
  /// naming unmatched patterns, or "".
  std::string apply_recipe(const Recipe& r, int threads = 1);
};

/// Loads an ONNX file, a llama2.c checkpoint, an HF LLaMA directory or a GGUF file (recognized by content).
Model load_model(const std::string& path);

/// The linears of a LLaMA model in execution order (per layer wq wk wv wo w1 w3 w2, then the classifier).
std::vector<Linear*> linears(Llama& m);
std::vector<const Linear*> linears(const Llama& m);

}  // namespace qcast::nn
