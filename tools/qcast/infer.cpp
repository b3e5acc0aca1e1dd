// qcast infer MODEL INPUT.npy [MORE.npy...] [-o OUTPUT.npy] [--repeat N] [--json]: run an ONNX graph on a
// batch (one .npy per graph input, in order), with optional fake-quant, and report the throughput (best of
// --repeat runs).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <vector>

#include "command.hpp"
#include "nn_common.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/file.hpp"
#include "qcast/io.hpp"
#include "qcast/tensor_files.hpp"
#include "qcast/nn/onnx.hpp"

namespace qcast::cli {
namespace {

struct Args {
  std::string model, output, base_model;
  std::vector<std::string> inputs;  // one .npy per graph input, in order
  RecipeFlags q;
  int repeat = 1;
  bool json = false;
  int threads = 1;
};

void run(const Args& a) {
  const FileKind kind = model_kind(a.model, "infer", {FileKind::Onnx, FileKind::QcastQuantized}, "ONNX models and qcast quantize outputs of them");
  if (!a.output.empty()) {  // the output's type and place are checked before the model runs
    (void)is_npy_path(a.output);
    check_output_path(a.output, "--output");
  }
  nn::Graph g;
  if (kind == FileKind::QcastQuantized) {
    refuse_recipe_flags_for_quantized(a.model, a.q);
    ptq::Model pm = ptq::load_quantized(a.model, a.base_model);
    if (!pm.is_graph) throw Error(a.model + " is a quantized language model (" + pm.path + "); infer takes graph models (use eval or generate)");
    g = std::move(pm.graph);
  } else {
    g = nn::load_onnx(a.model);
    warn(nn::apply_recipe(g, a.q.get(), a.threads));
  }
  std::vector<nn::Value> feeds;
  for (const auto& path : a.inputs) feeds.push_back(nn::Value::from_tensor(read_npy(path)));
  const nn::Value& x = feeds[0];  // the batch (later inputs may be states or scalars, e.g. a sample rate)
  if (x.shape.empty()) throw Error(a.inputs[0] + ": expected a batch of inputs");
  std::vector<nn::Value> out;
  double best = 1e300, total = 0;
  for (int r = 0; r < a.repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    out = g.run(feeds, a.threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  if (!a.output.empty()) write_tensor_file(a.output, g.value_names[g.outputs[0]], out[0].to_tensor());
  const double n = static_cast<double>(x.shape[0]);
  if (a.json) {
    nlohmann::json shapes = nlohmann::json::array();
    for (const auto& f : feeds) shapes.push_back(f.shape);
    nlohmann::json j = {{"model", a.model}, {"input_shape", x.shape}, {"input_shapes", shapes}, {"output_shape", out[0].shape}, {"repeat", a.repeat},
                        {"threads", a.threads}, {"best_seconds", best}, {"mean_seconds", total / a.repeat},
                        {"samples_per_second", n / best}};
    std::cout << json_output(j, 2) << "\n";
  } else {
    std::printf("%s: input %s -> output %s; best of %d: %.4f s, %.1f samples/s (%d threads)\n", a.model.c_str(),
                shape_str(x.shape).c_str(), shape_str(out[0].shape).c_str(), a.repeat, best, n / best, a.threads);
  }
}

Registrar reg("infer", [](CLI::App& root) {
  auto a = std::make_shared<Args>();
  auto* sub = root.add_subcommand("infer", "run an ONNX model on a .npy batch (fp32 or fake-quantized); report throughput");
  sub->add_option("model", a->model, "ONNX model, or a qcast quantize output of one; recognized by content")->required();
  sub->add_option("--base-model", a->base_model, "for a qcast quantize output: the base model, if it moved since quantize wrote the file");
  sub->add_option("input", a->inputs, ".npy input batch [N, ...]; a model with several inputs takes one .npy per input, in order")->required();
  sub->add_option("-o,--output", a->output, "write the first output as .npy or .safetensors (by extension)");
  a->q.add(sub);
  sub->add_option("--repeat", a->repeat, "run N times, report the best")->check(CLI::Range(1, 1000))->capture_default_str();
  sub->add_flag("--json", a->json, "print one JSON object");
  add_threads_flag(sub, a->threads);
  sub->callback([a] { run(*a); });
});

}  // namespace
}  // namespace qcast::cli
