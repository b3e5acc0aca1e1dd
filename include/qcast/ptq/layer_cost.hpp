// The cost model's price of a layer in a weight format, for mixed precision under a hardware budget
// (mixed@energy=X, mixed@cycles=X): each (layer, candidate format) is a layer problem mapped onto the
// architecture by the same search `qcast cost` runs, with the same defaults, so that `qcast cost` of the
// quantized model reproduces the predicted energy / cycles of the chosen allocation.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qcast/hw.hpp"
#include "qcast/mapper.hpp"
#include "qcast/nn/recipe.hpp"

namespace qcast::ptq {

/// The accelerator a hardware budget refers to, and the mapper settings (qcast cost's defaults).
struct HardwareTarget {
  std::string arch;                ///< architecture YAML (as qcast cost --arch); empty = none given
  std::string table = "horowitz";  ///< built-in energy table (qcast cost --table)
  std::string ert, constraints;    ///< optional Accelergy ERT and mapspace constraints (qcast cost --ert / --constraints)
  std::int64_t samples = 8000;
  int refine = 1000;
  std::uint64_t seed = 1;
};

class LayerCoster {
 public:
  /// Reads the architecture and the layer shapes of the model file at `model_path` (hw::model_layer_shapes).
  /// `cycles`: price in cycles (mapper objective: delay), else in pJ (objective: energy).
  LayerCoster(const std::string& model_path, const HardwareTarget& target, bool cycles, int threads);
  /// True if `layer` is a layer with MACs that the cost model knows.
  bool has(const std::string& layer) const { return shapes_.count(layer) != 0; }
  /// The price of `layer` with the recipe's formats, its weights in `weights` (empty: the recipe's own).
  double price(const std::string& layer, const nn::Recipe& recipe, const std::string& weights = "");
  /// The price of the whole model (every layer with MACs) in fp32 weights and activations.
  double fp32_total();
  /// Layers with MACs, in model order.
  const std::vector<std::string>& layers() const { return order_; }
  std::string unit() const { return cycles_ ? "cycles" : "pJ"; }

 private:
  double price(const std::string& layer, const hw::Precision& p);
  hw::Architecture arch_;
  hw::SearchOptions so_;
  bool cycles_;
  std::map<std::string, hw::LayerShape> shapes_;
  std::vector<std::string> order_;
  std::map<std::string, double> cache_;  // by layer shape and formats: LLaMA blocks repeat their shapes
};

}  // namespace qcast::ptq
