// qcast eval MODEL --data SPEC [--recipe R | --weights F --acts F --kv F] [--act-observer O --calib SPEC]
//                [--limit N] [--batch B] [--json]
// Top-1 accuracy for classifiers (ONNX), per-token NLL and perplexity for language models. Static
// activation scales are calibrated first (ptq/act_calib.hpp) on --calib.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "nn_common.hpp"
#include "qcast/error.hpp"
#include "qcast/nn/classify.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/logits.hpp"
#include "qcast/nn/evaluate.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/progress.hpp"
#include "qcast/ptq/act_calib.hpp"
#include "qcast/ptq/model.hpp"

namespace qcast::cli {
namespace {

struct Args {
  std::string model, data, data_root, tokenizer, base_model;
  bool packed = false;  // model is a `qcast quantize` output
  RecipeFlags q;
  ptq::CalibOptions calib;
  std::int64_t limit = 0, batch = 256;
  bool json = false;
  int threads = 1;
  std::string kernel = "fp32";
};

using Clock = std::chrono::steady_clock;

/// Calibrates the static activation scales of a freshly loaded model (nothing to do without any).
void calibrate(const Args& a, const nn::Recipe& recipe, ptq::Model& pm) {
  if (!recipe.has_static_acts()) return;
  // A recipe that carries calibrated ranges (quantize --save-recipe) needs no calibration data.
  if (a.calib.spec.empty() && !recipe.act_ranges.empty()) return;
  if (a.calib.spec.empty())
    throw Error("static activations (an activation observer in the recipe or --act-observer) need calibration data: --calib SPEC "
                "(e.g. mnist:DIR, text:FILE)");
  ptq::CalibOptions o = a.calib;
  o.data_root = a.data_root;
  o.tokenizer = a.tokenizer;
  ptq::calibrate_activations(pm, o, a.threads, !a.json);
}

void eval_classifier(const Args& a, const nn::Recipe& recipe, nlohmann::json& j) {
  nn::Graph g;
  if (a.packed) g = std::move(ptq::load_quantized(a.model, a.base_model).graph);
  else {
    g = nn::load_onnx(a.model);
    warn(nn::apply_recipe(g, recipe, a.threads));
    ptq::Model pm;
    pm.path = a.model;
    pm.graph = std::move(g);
    calibrate(a, recipe, pm);
    g = std::move(pm.graph);
  }
  const nn::DatasetSpec d = nn::parse_dataset_spec(a.data, a.data_root);
  std::optional<Progress> bar;  // the sample count is known once the dataset is read
  const auto t0 = Clock::now();
  std::int64_t shown = 0;
  const nn::ClassifierEval r = nn::evaluate_classifier(g, d, a.limit, a.batch, a.threads, a.model,
                                                       [&](const nn::ClassifyResult& so_far, std::int64_t total) {
    if (!bar) bar.emplace("eval", total);
    char fig[32];
    std::snprintf(fig, sizeof fig, "acc %.4f", so_far.accuracy());
    bar->set_figure(fig);
    bar->advance(so_far.samples - shown);
    shown = so_far.samples;
  });
  if (bar) bar->finish();
  const std::int64_t n = r.samples;
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  j["task"] = "classification";
  j["samples"] = n;
  j["correct"] = r.correct;
  j["accuracy"] = r.accuracy();
  j["nll"] = r.nll;
  j["seconds"] = secs;
  j["samples_per_second"] = secs > 0 ? static_cast<double>(n) / secs : 0.0;
  j["batch"] = a.batch;
}

void eval_lm(const Args& a, const nn::Recipe& recipe, nlohmann::json& j) {
  nn::Llama m;
  std::string path = a.model;
  if (a.packed) {
    ptq::Model pm = ptq::load_quantized(a.model, a.base_model);
    m = std::move(pm.llama);
    path = pm.path;
  } else {
    m = nn::load_llama(a.model);
    warn(m.apply_recipe(recipe, a.threads));
    ptq::Model pm;
    pm.path = a.model;
    pm.is_graph = false;
    pm.llama = std::move(m);
    calibrate(a, recipe, pm);
    m = std::move(pm.llama);
  }
  // Stories run in parallel on `threads`; each product runs on the story's thread.
  j["kernel"] = a.kernel;
  j["lowbit_layers"] = use_kernel(m, a.kernel, 1, a.json);
  nn::Tokenizer tok = nn::load_tokenizer_for(path, a.tokenizer, m.cfg.vocab_size);
  const auto stories = nn::eval_stories(nn::parse_dataset_spec(a.data, a.data_root), a.limit, a.model);
  Progress bar("eval", static_cast<std::int64_t>(stories.size()));
  const auto t0 = Clock::now();
  auto r = nn::perplexity(m, tok, stories, a.threads, [&](const nn::PerplexityResult& so_far) {
    char fig[32];
    std::snprintf(fig, sizeof fig, "ppl %.4g", so_far.perplexity());
    bar.set_figure(fig);
    bar.advance(1);
  });
  bar.finish();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  j["task"] = "language-model";
  j["samples"] = r.samples;
  j["tokens"] = r.tokens;
  j["nll"] = r.mean_nll();
  j["total_nll"] = r.nll;
  j["perplexity"] = r.perplexity();
  j["seconds"] = secs;
  j["tokens_per_second"] = secs > 0 ? static_cast<double>(r.tokens) / secs : 0.0;
}

void run(Args a) {
  nn::Recipe recipe = a.q.get();
  bool graph = false;
  std::string method;
  const FileKind kind = model_kind(a.model, "eval", {FileKind::Onnx, FileKind::Llama2c, FileKind::HfDir, FileKind::Gguf, FileKind::QcastQuantized},
                                   "ONNX, llama2.c, HF and GGUF models and qcast quantize outputs");
  if (kind == FileKind::QcastQuantized) {
    // A `qcast quantize` output: the base model with its packed weights and stored recipe.
    if (!a.q.recipe.empty() || !a.q.weights.empty() || !a.q.acts.empty() || !a.q.kv.empty() || !a.q.act_observer.empty() ||
        !a.calib.spec.empty())
      throw Error(a.model + " is a quantized model with its own recipe (and calibrated scales); --recipe/--weights/--acts/--kv/"
                  "--act-observer/--calib do not apply");
    a.packed = true;
    ptq::Model probe = ptq::load_quantized(a.model, a.base_model, &method, &recipe);
    graph = probe.is_graph;
  } else {
    graph = kind == FileKind::Onnx;
    if (!a.calib.spec.empty() && !recipe.has_static_acts())
      throw Error("--calib calibrates static activation scales; add --act-observer (or a recipe observer) and an activation format");
  }
  nlohmann::json j;
  j["model"] = a.model;
  j["data"] = a.data;
  j["recipe"] = nlohmann::json::parse(nn::recipe_to_json(recipe));
  if (a.packed) j["quantize_method"] = method;
  if (!a.packed && recipe.has_static_acts())
    j["calibration"] = {{"data", a.calib.spec}, {"samples", a.calib.samples}, {"offset", a.calib.offset}};
  j["threads"] = a.threads;
  if (graph && a.kernel != "fp32") throw Error("--kernel " + a.kernel + " applies to language models; " + a.model + " is a graph model");
  if (graph) eval_classifier(a, recipe, j);
  else eval_lm(a, recipe, j);
  if (a.json) {
    std::cout << json_output(j, 2) << "\n";
    return;
  }
  if (j["task"] == "classification")
    std::printf("%s on %s: top-1 accuracy %.4f (%lld / %lld), mean NLL %.4f, %.2f s, %.1f samples/s\n", a.model.c_str(), a.data.c_str(),
                j["accuracy"].get<double>(), static_cast<long long>(j["correct"].get<std::int64_t>()),
                static_cast<long long>(j["samples"].get<std::int64_t>()), j["nll"].get<double>(), j["seconds"].get<double>(),
                j["samples_per_second"].get<double>());
  else
    std::printf("%s on %s: %lld stories, %lld tokens, NLL %.6f, perplexity %.6f, %.2f s, %.0f tokens/s\n", a.model.c_str(),
                a.data.c_str(), static_cast<long long>(j["samples"].get<std::int64_t>()), static_cast<long long>(j["tokens"].get<std::int64_t>()),
                j["nll"].get<double>(), j["perplexity"].get<double>(), j["seconds"].get<double>(), j["tokens_per_second"].get<double>());
}

Registrar reg("eval", [](CLI::App& root) {
  auto a = std::make_shared<Args>();
  auto* sub = root.add_subcommand("eval", "evaluate a model (fp32 or fake-quantized): top-1 accuracy or perplexity");
  sub->add_option("model", a->model, "ONNX classifier, llama2.c .bin, Hugging Face LLaMA directory, GGUF (llama), or a qcast quantize output (.safetensors); recognized by content")->required();
  sub->add_option("--data", a->data, "dataset spec (YAML) or mnist:DIR, fashion-mnist[:DIR], text:FILE, npy:INPUTS,LABELS")->required();
  sub->add_option("--data-root", a->data_root, "directory that overrides the spec's root");
  sub->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer (tok*.bin) for language models (default: a GGUF model's own, else tok<vocab>.bin beside the model)");
  sub->add_option("--base-model", a->base_model, "quantized models (qcast quantize output): the base model, if moved");
  a->q.add(sub);
  a->q.add_static(sub);
  sub->add_option("--calib", a->calib.spec, "calibration data for static activation scales (dataset spec as for --data)");
  sub->add_option("--calib-samples", a->calib.samples, "calibration images / stories")->check(CLI::Range(std::int64_t(1), std::int64_t(1) << 40))->capture_default_str();
  sub->add_option("--calib-offset", a->calib.offset, "skip the first N samples of the calibration data")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--calib-batch", a->calib.batch, "images per calibration batch")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  sub->add_option("--calib-tokens", a->calib.max_tokens, "language models: tokens per calibration story (truncated)")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  sub->add_option("--limit", a->limit, "evaluate only the first N samples / stories")->check(CLI::Range(std::int64_t(1), std::int64_t(1) << 40));
  sub->add_option("--batch", a->batch, "batch size (classifiers)")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  sub->add_flag("--json", a->json, "print one JSON object");
  add_threads_flag(sub, a->threads);
  add_kernel_option(sub, a->kernel);
  sub->callback([a] { run(*a); });
});

}  // namespace
}  // namespace qcast::cli
