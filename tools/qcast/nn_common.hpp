// Shared flags of the model subcommands (inspect, eval, generate): quantization recipe shorthands.
#pragma once
#include <CLI/CLI.hpp>
#include <initializer_list>
#include <iostream>
#include <string>

#include "qcast/error.hpp"
#include "qcast/nn/act_quant.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/recipe.hpp"
#include "qcast/sniff.hpp"

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

/// A `qcast quantize` output carries its own recipe and calibrated scales: recipe flags do not apply to it.
inline void refuse_recipe_flags_for_quantized(const std::string& path, const RecipeFlags& q) {
  if (!q.recipe.empty() || !q.weights.empty() || !q.acts.empty() || !q.kv.empty() || !q.act_observer.empty())
    throw Error(path + " is a quantized model with its own recipe (and calibrated scales); --recipe/--weights/--acts/--kv/"
                "--act-observer do not apply");
}

inline void warn(const std::string& w) {
  if (!w.empty()) std::cerr << "qcast: " << w << "\n";
}

/// --kernel fp32|lowbit of the language-model commands (eval, generate).
inline void add_kernel_option(CLI::App* sub, std::string& kernel) {
  sub->add_option("--kernel", kernel,
                  "language models: fp32 (every weight as float32, the fake-quant emulation) or lowbit (layers whose weights are "
                  "Q8_0 / Q4_0 blocks, from a GGUF or --weights int8|int4@fp16/b32, run on packed-weight kernels with "
                  "8-bit activations as llama.cpp does; the other layers stay fp32)")
      ->check(CLI::IsMember({"fp32", "lowbit"}))
      ->capture_default_str();
}

/// Switches `m` to the low-bit kernels when asked; returns how many linear layers run on them (0 for fp32).
inline int use_kernel(nn::Llama& m, const std::string& kernel, int threads, bool quiet) {
  if (kernel != "lowbit") return 0;
  const int n = m.use_lowbit_kernels(threads);
  const std::size_t total = m.layer_names().size();
  if (!quiet)
    std::cerr << "qcast: " << n << " of " << total << " linear layers run on the low-bit kernels"
              << (n == 0 ? " (no Q8_0 / Q4_0 weights: give a GGUF of those types or --weights int8@fp16/b32 | int4@fp16/b32)" : "")
              << "\n";
  return n;
}

/// What the model file `path` is, by content (qcast/sniff.hpp). A file `command` cannot take (a kind not in
/// `accepted`) is refused with qcast::Error (exit 2) naming what it is and which command takes it;
/// `accepted_text` says what `command` takes.
inline FileKind model_kind(const std::string& path, const std::string& command, std::initializer_list<FileKind> accepted,
                           const std::string& accepted_text) {
  const FileKind k = sniff_model_file(path);
  for (FileKind a : accepted)
    if (a == k) return k;
  refuse_file(path, k, command, accepted_text);
  return k;
}

}  // namespace qcast::cli
