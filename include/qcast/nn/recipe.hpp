// Quantization recipes: which number format applies to the weights, the activations (inputs of every
// Conv / Gemm / MatMul / Linear) and the KV cache, with per-layer overrides by glob and skip lists.
//
//   weights: mxfp4            # format name (docs/formats.md); "fp32" or "none" = full precision
//   activations: mxfp8        # dynamic: scales computed per block at run time (as MX does)
//   activations: {format: int8, observer: minmax}   # static: scale fixed by calibration
//   kv_cache: mxfp8
//   layers:                   # overrides, first matching glob wins (matched against layer names)
//     "/fc/*": {weights: mxfp8, activations: none}
//   skip: ["/convnet/c1/Conv"]  # layers left in full precision
//   accumulator: fp32         # the arithmetic qcast cost assumes (outputs, accumulator, partial_sums);
//                             # eval and quantize carry these keys along and leave them alone
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast::nn {

struct LayerOverride {
  bool operator==(const LayerOverride&) const = default;
  std::string pattern;
  std::optional<std::string> weights, acts;  // set = override ("none" = full precision)
  std::string act_observer;  // with `acts`: "" = dynamic, else static with this observer (an override's
                             // activation entry replaces the format and the observer together)
};

struct Recipe {
  std::string weights, acts, kv;  // empty = full precision
  std::string act_observer;       // "" = dynamic activations, else the observer of static ones (act_quant.hpp)
  /// Calibrated static activation ranges by layer name (filled by calibration, stored by qcast quantize).
  std::map<std::string, StaticRange> act_ranges;
  std::vector<LayerOverride> layers;
  std::vector<std::string> skip;
  /// The hardware's arithmetic, for qcast cost (empty = its defaults): the format of a layer's final
  /// outputs in memory (default: the activations'), the MAC's accumulator (int32, fp32, fp16, ...) and the
  /// format of partial sums in memory (default: the accumulator's).
  std::string outputs, accumulator, partial_sums;
  bool operator==(const Recipe&) const = default;
  bool empty() const;
  /// Effective formats for one layer (empty string = full precision).
  void formats_for(const std::string& layer, std::string& w, std::string& a) const;
  /// As above, plus the layer's activation observer ("" = dynamic).
  void formats_for(const std::string& layer, std::string& w, std::string& a, std::string& observer) const;
  /// True if any layer may get static activations (the top level or an override names an observer).
  bool has_static_acts() const;
  /// Checks every format name, that weight / KV-cache / dynamic activation formats with integer or
  /// codebook elements have a scale, and that static observers suit their formats. Errors name `where`.
  void validate(const std::string& where) const;
  /// Patterns (overrides and skip entries) that match none of `names`.
  std::vector<std::string> unmatched(const std::vector<std::string>& names) const;
};

/// The one recipe reader: YAML or JSON text (JSON is YAML), as written by hand or by recipe_to_json /
/// recipe_to_yaml (which qcast quantize stores in its files). Keys: weights, activations (a format or
/// {format, observer}), act_observer, kv_cache, layers (a mapping of glob -> {weights, activations,
/// act_observer} or a list with `pattern`), skip, act_ranges ({layer: {lo: [...], hi: [...]}}), name,
/// description, and for the cost model outputs, accumulator, partial_sums. Throws qcast::Error naming `where` for unknown keys, bad structure or bad formats.
Recipe parse_recipe(const std::string& text, const std::string& where);
/// parse_recipe of a file's contents.
Recipe load_recipe(const std::string& path);
/// The one recipe writer, JSON (compact for indent < 0): nothing is dropped, floats are exact, and
/// parse_recipe(recipe_to_json(r)) == r.
std::string recipe_to_json(const Recipe& r, int indent = -1);
/// The same content as YAML; parse_recipe(recipe_to_yaml(r)) == r.
std::string recipe_to_yaml(const Recipe& r);
/// Writes the recipe to `path` (JSON for *.json, else YAML) through a temp file and a rename.
void save_recipe(const std::string& path, const Recipe& r);
/// Shell-style glob: `*` any run, `?` one character, `[abc]` a set.
bool glob_match(const std::string& pattern, const std::string& name);
/// Checks an accumulator or partial-sum format: intN / uintN (N in 2..64) or a float element (fp32, fp16,
/// bf16, ...). Throws qcast::Error naming the key.
void check_accumulator_name(const std::string& name, const std::string& key);
/// Parses a format name; "", "fp32", "none" -> nullopt.
std::optional<Format> parse_optional_format(const std::string& name);
/// Throws if an integer or codebook format has no scale (its codes would be used as raw values), naming
/// the role ("weight", ...) and formats that would work.
void require_scale(const Format& f, const std::string& role);
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
