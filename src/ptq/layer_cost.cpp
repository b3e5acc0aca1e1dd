#include "qcast/ptq/layer_cost.hpp"

#include "qcast/error.hpp"

namespace qcast::ptq {

LayerCoster::LayerCoster(const std::string& model_path, const HardwareTarget& t, bool cycles, int threads) : cycles_(cycles) {
  if (t.arch.empty()) throw Error("a hardware budget (mixed@energy= / mixed@cycles=) needs the accelerator: --arch A.yaml");
  arch_ = hw::Architecture::from_yaml_file(t.arch);
  arch_.apply_builtin(t.table, 8, 8);  // with formats, the MAC energy is the format-aware model's (as in qcast cost)
  if (!t.ert.empty()) arch_.apply_ert_file(t.ert);
  if (!t.constraints.empty()) (void)arch_.apply_constraints_file(t.constraints);
  so_.objective = cycles ? hw::Objective::Delay : hw::Objective::Energy;
  so_.seed = t.seed;
  so_.samples = t.samples;
  so_.refine_steps = t.refine;
  so_.threads = threads;
  for (const auto& l : hw::model_layer_shapes(model_path))
    if (hw::layer_has_macs(l)) {
      order_.push_back(l.name);
      shapes_.emplace(l.name, l);
    }
}

double LayerCoster::price(const std::string& layer, const hw::Precision& p) {
  const hw::LayerShape& l = shapes_.at(layer);
  const hw::Problem prob = hw::layer_problem(l);
  const std::string key = prob.key() + "|" + p.key();
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  const hw::SearchResult r = hw::search_mapping(prob, arch_, p, so_);
  if (!r.eval.valid) throw Error("layer '" + layer + "': no valid mapping on the architecture (" + r.eval.reason + ")");
  const double v = cycles_ ? static_cast<double>(r.eval.cycles) : r.eval.energy_pj;
  cache_.emplace(key, v);
  return v;
}

double LayerCoster::price(const std::string& layer, const nn::Recipe& recipe, const std::string& weights) {
  hw::Precision p = hw::Precision::for_layer(recipe, layer);
  if (!weights.empty()) p.weights = weights;
  return price(layer, p);
}

double LayerCoster::fp32_total() {
  double t = 0;
  for (const auto& name : order_) {
    hw::Precision p;
    p.weights = p.activations = "fp32";
    t += price(name, p);
  }
  return t;
}

}  // namespace qcast::ptq
