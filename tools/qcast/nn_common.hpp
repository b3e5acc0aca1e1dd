// Shared flags of the model subcommands (inspect, eval, generate): quantization recipe shorthands.
#pragma once
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <string>

#include "qcast/error.hpp"
#include "qcast/nn/act_quant.hpp"
#include "qcast/nn/recipe.hpp"

namespace qcast::cli {

struct RecipeFlags {
  std::string recipe, weights, acts, kv, act_observer;
  void add(CLI::App* sub) {
    sub->add_option("--recipe", recipe, "quantization recipe (YAML or JSON): weights / activations / kv_cache, layers, skip");
    sub->add_option("--weights", weights, "weight format for every Conv / Gemm / MatMul / Linear (e.g. mxfp4)");
    sub->add_option("--acts", acts, "activation format (inputs of those layers), dynamic per-block scales");
    sub->add_option("--kv", kv, "KV-cache format (language models)");
  }
  /// --act-observer, for the commands that can calibrate (eval, quantize).
  void add_static(CLI::App* sub) {
    sub->add_option("--act-observer", act_observer,
                    "static activation scales from calibration (--calib): minmax | percentile:P (e.g. percentile:99.99) | mse | dynamic; "
                    "a format without a scale (int8, e4m3) gets one fp32 scale per tensor");
  }
  nn::Recipe get() const {
    nn::Recipe r;
    if (!recipe.empty()) r = nn::load_recipe(recipe);
    if (!weights.empty()) r.weights = weights;
    if (!acts.empty()) r.acts = acts;
    if (!kv.empty()) r.kv = kv;
    if (!act_observer.empty()) {
      const std::string obs = act_observer == "dynamic" || act_observer == "none" ? "" : act_observer;
      if (!obs.empty()) nn::parse_observer(obs);  // a bad name fails before any model is loaded
      if (!obs.empty() && !nn::parse_optional_format(r.acts)) throw Error("--act-observer " + obs + " needs an activation format (--acts F)");
      if (!obs.empty()) {
        try { nn::make_act_quant(*nn::parse_optional_format(r.acts), obs, ""); }
        catch (const Error& e) { throw Error("--act-observer " + obs + " with activations " + r.acts + ": " + e.what()); }
      }
      r.act_observer = obs;
    }
    r.validate(recipe.empty() ? "command line" : recipe + " with the command line");
    return r;
  }
};

inline void warn(const std::string& w) {
  if (!w.empty()) std::cerr << "qcast: " << w << "\n";
}

/// A model file is a language model (llama2.c .bin, HF directory / config.json) or an ONNX graph.
inline bool is_onnx(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(path + ": no such file or directory");
  return std::filesystem::path(path).extension() == ".onnx";
}

}  // namespace qcast::cli
