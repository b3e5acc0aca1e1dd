// Quantization recipes: which number format applies to the weights, the activations (inputs of every
// Conv / Gemm / MatMul / Linear) and the KV cache, with per-layer overrides by glob and skip lists.
//
//   weights: mxfp4            # format name (docs/formats.md); "fp32" or "none" = full precision
//   activations: mxfp8        # dynamic: scales computed per block at run time (as MX does)
//   kv_cache: mxfp8
//   layers:                   # overrides, first matching glob wins (matched against layer names)
//     "/fc/*": {weights: mxfp8, activations: none}
//   skip: ["/convnet/c1/Conv"]  # layers left in full precision
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "qcast/format.hpp"

namespace qcast::nn {

struct LayerOverride {
  std::string pattern;
  std::optional<std::string> weights, acts;  // set = override ("none" = full precision)
};

struct Recipe {
  std::string weights, acts, kv;  // empty = full precision
  std::vector<LayerOverride> layers;
  std::vector<std::string> skip;
  bool empty() const;
  /// Effective formats for one layer (empty string = full precision).
  void formats_for(const std::string& layer, std::string& w, std::string& a) const;
  /// Patterns (overrides and skip entries) that match none of `names`.
  std::vector<std::string> unmatched(const std::vector<std::string>& names) const;
};

/// Loads a YAML or JSON recipe file. Throws qcast::Error for unknown keys or bad structure.
Recipe load_recipe(const std::string& path);
/// Shell-style glob: `*` any run, `?` one character, `[abc]` a set.
bool glob_match(const std::string& pattern, const std::string& name);
/// Parses a format name; "", "fp32", "none" -> nullopt.
std::optional<Format> parse_optional_format(const std::string& name);
/// A one-line warning listing unmatched patterns and the available layer names, or "" if none.
std::string unmatched_warning(const Recipe& r, const std::vector<std::string>& names);

}  // namespace qcast::nn

namespace qcast::nn {
class Graph;
/// Attaches a recipe to the quantizable nodes (Conv / Gemm / MatMul with a constant weight) of a graph
/// and fake-quantizes their weights. Returns a warning naming unmatched patterns, or "".
std::string apply_recipe(Graph& g, const Recipe& r, int threads = 1);
/// Names of the quantizable nodes of a graph.
std::vector<std::string> quantizable_layers(const Graph& g);
}  // namespace qcast::nn
