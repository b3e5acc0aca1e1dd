// qcast quantize MODEL (--recipe R | --weights F) --method M [--acts F [--act-observer O]] --calib SPEC [--calib-samples N]
//                --out OUT.safetensors|OUT.gguf [--report report.json] [--eval SPEC [--eval-limit N]]
// Post-training quantization of a whole model (rtn, search, gptq, ed, rotate+gptq, lowrank, mixed@BITS,
// each optionally after the quarot+ residual rotation of LLaMA models and with +bias correction);
// writes packed codes + scales with the recipe in the metadata, loadable by `qcast eval OUT.safetensors`.
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command.hpp"
#include "nn_common.hpp"
#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/hw.hpp"
#include "qcast/ptq/gguf_llama.hpp"
#include "qcast/ptq/method.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/ptq/qdq.hpp"

namespace qcast::cli {
namespace {

// ptq's default candidates, comma-separated (one list for quantize, the sweep and the API).
std::string default_mixed_formats() {
  std::string s;
  for (const auto& f : ptq::QuantizeOptions{}.mixed_formats) s += (s.empty() ? "" : ",") + f;
  return s;
}

struct Args {
  std::string model, method = "rtn", calib, data_root, tokenizer, out, report, save_recipe, eval, mixed_formats = default_mixed_formats();
  ptq::HardwareTarget hardware;  // mixed@energy= / mixed@cycles=
  RecipeFlags q;
  std::int64_t calib_samples = 256, calib_offset = 0, calib_batch = 64, eval_limit = 0;
  int calib_tokens = 256, rotate_block = 32, rank = 8;
  std::uint64_t seed = 0;
  bool act_order = false, quiet = false;
  int threads = 1;
};

std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

/// Runs `qcast eval OUT --json` (this binary) and returns its JSON object.
nlohmann::json run_eval(const Args& a, const std::string& model) {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) throw Error("cannot locate the qcast binary for --eval");
  exe[n] = '\0';
  std::string cmd = shell_quote(exe) + " eval " + shell_quote(model) + " --data " + shell_quote(a.eval) + " --json --threads " +
                    std::to_string(a.threads);
  if (!a.data_root.empty()) cmd += " --data-root " + shell_quote(a.data_root);
  if (!a.tokenizer.empty()) cmd += " --tokenizer " + shell_quote(a.tokenizer);
  if (a.eval_limit > 0) cmd += " --limit " + std::to_string(a.eval_limit);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw Error("cannot run " + cmd);
  std::string out;
  std::array<char, 4096> buf;
  std::size_t k;
  while ((k = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), k);
  const int rc = pclose(p);
  if (rc != 0) throw Error("--eval failed: " + cmd);
  return nlohmann::json::parse(out);
}

/// GGUF output: refuses graph models and weight formats without a ggml type before any calibration runs.
void gguf_precheck(const ptq::Model& m, const ptq::QuantizeOptions& o) {
  if (m.is_graph) throw Error(m.path + ": GGUF output (--out *.gguf) is for LLaMA models; use .safetensors");
  ptq::check_gguf_format(o.recipe.weights);
  for (const auto& l : o.recipe.layers)
    if (l.weights) ptq::check_gguf_format(*l.weights);
  if (o.method.rfind("mixed@", 0) == 0)
    for (const auto& f : o.mixed_formats) ptq::check_gguf_format(f);
}

void write_gguf(const Args& a, const ptq::Model& m, const ptq::QuantizeResult& r, const std::string& path, std::vector<std::string>& notes) {
  const nn::Tokenizer tok = nn::load_tokenizer_for(m.path, a.tokenizer, m.llama.cfg.vocab_size);
  ptq::gguf::write(path, ptq::llama_gguf(m, r, a.method, tok, &notes));
  for (const auto& n : notes) warn("GGUF: " + n);
}

void run(const Args& a) {
  namespace fs = std::filesystem;
  const bool gguf = fs::path(a.out).extension() == ".gguf";
  const bool onnx = fs::path(a.out).extension() == ".onnx";
  if (!gguf && !onnx && fs::path(a.out).extension() != ".safetensors")
    throw Error("--out " + a.out + ": qcast quantize writes packed safetensors (.safetensors), for LLaMA models GGUF (.gguf), for ONNX models a QDQ ONNX model (.onnx)");
  // Every output and input is checked before anything is written (a --report in a missing directory or
  // an --eval dataset that does not exist must not cost an hour of calibration, nor leave --out behind).
  (void)ptq::parse_method(a.method);  // a bad --method fails before any file is read
  check_output_path(a.out, "--out");
  if (!a.report.empty()) check_output_path(a.report, "--report");
  if (!a.save_recipe.empty()) check_output_path(a.save_recipe, "--save-recipe");
  if (!a.eval.empty()) nn::check_dataset_files(nn::parse_dataset_spec(a.eval, a.data_root));
  ptq::QuantizeOptions o;
  o.method = a.method;
  o.recipe = a.q.get();
  // --weights fp32 with a GGUF output converts the model without quantizing it (F32 tensors): the baseline
  // that llama.cpp's perplexity of the quantized files is compared with (tests/llamacpp).
  const bool f32_gguf = gguf && (a.q.weights == "fp32" || a.q.weights == "f32");
  if (!f32_gguf && (o.recipe.empty() || (o.recipe.weights.empty() && o.recipe.layers.empty())))
    throw Error("qcast quantize needs a weight format: --weights F or a --recipe with weights (--weights fp32 only converts, to --out *.gguf)");
  if (onnx) {  // refused before any calibration runs (ptq::qdq_weights checks every layer again)
    if (o.method.find("bias") != std::string::npos) throw Error("--out *.onnx: bias correction (+bias) changes biases, which the ONNX output does not write yet; use a method without +bias");
  }
  o.calib.spec = a.calib;
  o.calib.data_root = a.data_root;
  o.calib.tokenizer = a.tokenizer;
  o.calib.samples = a.calib_samples;
  o.calib.offset = a.calib_offset;
  o.calib.batch = a.calib_batch;
  o.calib.max_tokens = a.calib_tokens;
  o.threads = a.threads;
  o.rotate_block = a.rotate_block;
  o.rank = a.rank;
  o.seed = a.seed;
  o.act_order = a.act_order;
  o.progress = !a.quiet;
  o.mixed_formats.clear();
  std::stringstream ss(a.mixed_formats);
  for (std::string f; std::getline(ss, f, ',');) if (!f.empty()) o.mixed_formats.push_back(f);
  o.hardware = a.hardware;
  {
    const ptq::Method pm = ptq::parse_method(a.method);
    const bool hw_budget = pm.name() == "mixed" && pm.budget != ptq::Method::Budget::Bits;
    if (hw_budget && a.hardware.arch.empty())
      throw Error("--method " + a.method + " prices the layers on an accelerator: give --arch A.yaml (as qcast cost takes it)");
    if (!hw_budget && (!a.hardware.arch.empty() || !a.hardware.ert.empty() || !a.hardware.constraints.empty()))
      throw Error("--arch / --ert / --constraints apply to --method mixed@energy=X / mixed@cycles=X");
    if (hw_budget) (void)hw::Architecture::from_yaml_file(a.hardware.arch);  // a bad file fails before calibration
  }

  model_kind(a.model, "quantize", {FileKind::Onnx, FileKind::Llama2c, FileKind::HfDir, FileKind::Gguf}, "ONNX, llama2.c, HF and GGUF models");
  ptq::Model m = ptq::load_model(a.model);
  if (gguf) gguf_precheck(m, o);
  if (onnx) ptq::check_qdq_recipe(m, o.recipe);  // a LLaMA model, dynamic / block-scaled activations: refused before calibration
  {
    const std::string w = nn::unmatched_warning(o.recipe, m.layer_names());
    warn(w);
  }
  const ptq::QuantizeResult r = ptq::quantize_model(m, o);
  // The model is written to a staging file beside --out (evaluated there with --eval) and renamed to --out
  // only when everything else, the report included, has succeeded: a failed command leaves --out as it was.
  TempFileGuard stage(a.out + ".tmp." + std::to_string(::getpid()) + ".stage" + fs::path(a.out).extension().string());
  std::vector<std::string> notes;
  if (gguf) write_gguf(a, m, r, stage.path(), notes);
  else if (onnx) {
    nn::write_onnx_qdq(a.model, stage.path(), ptq::qdq_weights(m, r, notes), ptq::qdq_acts(m, r.recipe), notes);
    for (const auto& n : notes) warn("ONNX: " + n);
  } else ptq::write_quantized(stage.path(), m, r, a.method);

  nlohmann::json j;
  j["model"] = a.model;
  j["method"] = a.method;
  j["out"] = a.out;
  j["recipe"] = nlohmann::json::parse(nn::recipe_to_json(r.recipe));
  j["calibration"] = {{"data", a.calib}, {"samples", r.calib_samples}, {"offset", a.calib_offset}, {"rows", r.calib_rows},
                      {"static_activation_layers", r.recipe.act_ranges.size()}};
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& L : r.layers)
    layers.push_back({{"name", L.name}, {"rows", L.rows}, {"cols", L.cols}, {"format", L.q.format.name()}, {"error", L.error},
                      {"rel_error", L.rel_error}, {"seconds", L.seconds}, {"rotate_block", L.rotate_block}, {"rank", L.rank},
                      {"bias_corrected", !L.bias.empty()}});
  j["layers"] = layers;
  j["timings"] = {{"calibration_s", r.seconds_calib}, {"quantization_s", r.seconds_quant}, {"total_s", r.seconds_total}};
  if (!r.mixed_json.empty()) j["mixed"] = nlohmann::json::parse(r.mixed_json);
  if (!r.quarot_json.empty()) j["quarot"] = nlohmann::json::parse(r.quarot_json);
  j["threads"] = a.threads;
  if (gguf) j["gguf_f32_layers"] = notes;
  if (onnx) j["onnx_notes"] = notes;

  if (!a.quiet) {
    std::printf("%-36s %-22s %12s %8s\n", "layer", "format", "rel. error", "s");
    for (const auto& L : r.layers)
      std::printf("%-36s %-22s %12.4e %8.3f\n", L.name.c_str(), L.q.format.name().c_str(), L.rel_error, L.seconds);
  }
  std::printf("%s: %s, %zu layers quantized (%lld calibration samples), %.2f s -> %s\n", a.model.c_str(), a.method.c_str(),
              r.layers.size(), static_cast<long long>(r.calib_samples), r.seconds_total, a.out.c_str());
  if (j.contains("mixed") && j["mixed"].contains("budget")) {
    const auto& mx = j["mixed"];
    const bool cyc = mx["budget"]["kind"] == "cycles";
    const char* key = cyc ? "cycles" : "energy_pj";
    const double fp32 = mx[std::string("fp32_") + key].get<double>(), pred = mx[std::string("predicted_") + key].get<double>();
    std::printf("mixed: predicted %s %.6g %s (%.4f of fp32) under a budget of %.6g (uniform recipe: %.6g) on %s\n", cyc ? "latency" : "energy",
                pred, cyc ? "cycles" : "pJ", pred / fp32, mx["budget"][key].get<double>(),
                mx[std::string("uniform_") + key].get<double>(), a.hardware.arch.c_str());
  }
  if (!a.eval.empty()) {
    std::fflush(stdout);
    j["eval"] = run_eval(a, stage.path());
    const auto& e = j["eval"];
    if (e.value("task", "") == "classification")
      std::printf("eval on %s: top-1 accuracy %.4f (%lld samples)\n", a.eval.c_str(), e["accuracy"].get<double>(),
                  static_cast<long long>(e["samples"].get<std::int64_t>()));
    else
      std::printf("eval on %s: perplexity %.6f (%lld stories, %lld tokens)\n", a.eval.c_str(), e["perplexity"].get<double>(),
                  static_cast<long long>(e["samples"].get<std::int64_t>()), static_cast<long long>(e["tokens"].get<std::int64_t>()));
  }
  if (!a.report.empty()) {
    const std::string text = json_output(j, 2) + "\n";
    write_file_atomic(a.report, [&](int fd) { write_all(fd, text.data(), text.size(), a.report); });
  }
  if (!a.save_recipe.empty()) nn::save_recipe(a.save_recipe, r.recipe);
  if (::rename(stage.path().c_str(), a.out.c_str()) != 0) throw Error("cannot write '" + a.out + "': " + std::strerror(errno));
  stage.release();
}

Registrar reg("quantize", [](CLI::App& root) {
  auto a = std::make_shared<Args>();
  auto* sub = root.add_subcommand("quantize", "Post-training quantization of a model (rtn, search, gptq, ed, rotate+gptq, lowrank, mixed@BITS) to packed safetensors");
  sub->add_option("model", a->model, "ONNX model, llama2.c .bin, Hugging Face LLaMA directory, or GGUF (llama); recognized by content")->required();
  a->q.add(sub);
  a->q.add_static(sub);
  sub->add_option("--method", a->method, "rtn | search | gptq | ed | rotate+gptq | lowrank | mixed@BITS | mixed@energy=X | mixed@cycles=X (X: a fraction of the fp32 model, e.g. 0.4, or 12uJ / 150000cycles; needs --arch), each optionally +bias (bias correction; bias = rtn+bias); prefix quarot+ (e.g. quarot+gptq) to fold norms and rotate the residual stream of a LLaMA model first")->capture_default_str();
  sub->add_option("--calib", a->calib, "calibration data: dataset spec as for eval (mnist:DIR, text:FILE, YAML)")->required();
  sub->add_option("--calib-samples", a->calib_samples, "calibration images / stories")->check(CLI::Range(std::int64_t(1), std::int64_t(1) << 40))->capture_default_str();
  sub->add_option("--calib-offset", a->calib_offset, "skip the first N samples of the calibration data")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--calib-batch", a->calib_batch, "images per calibration batch")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  sub->add_option("--calib-tokens", a->calib_tokens, "language models: tokens per calibration story (truncated)")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  sub->add_option("--data-root", a->data_root, "directory that overrides the dataset specs' root");
  sub->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer (tok*.bin) for language models");
  sub->add_option("--out", a->out, "output: packed safetensors (codes + scales, recipe in the metadata), .gguf for LLaMA models (Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 / MXFP4), or .onnx for ONNX models (QDQ: integer weights behind DequantizeLinear)")->required();
  sub->add_option("--save-recipe", a->save_recipe, "also write the recipe that was applied (mixed: the chosen per-layer formats; static activation ranges) as YAML, or JSON for *.json: eval, cost and quantize take it as --recipe");
  sub->add_option("--report", a->report, "write a JSON report (recipe, per-layer error, timings, eval)");
  sub->add_option("--eval", a->eval, "evaluate the written model on this dataset (as qcast eval --json)");
  sub->add_option("--eval-limit", a->eval_limit, "evaluate only the first N samples / stories")->check(CLI::Range(std::int64_t(1), std::int64_t(1) << 40));
  sub->add_option("--rotate-block", a->rotate_block, "rotate: Hadamard block (power of two <= 128)")->check(CLI::IsMember({1, 2, 4, 8, 16, 32, 64, 128}))->capture_default_str();
  sub->add_option("--rank", a->rank, "lowrank: rank of the compensation branch")->check(CLI::Range(1, 4096))->capture_default_str();
  add_seed_option(sub, a->seed, "seed (rotation signs, quarot rotation, randomized SVD)")->capture_default_str();
  sub->add_flag("--act-order", a->act_order, "gptq: act-order with static groups");
  sub->add_option("--mixed-formats", a->mixed_formats, "mixed: candidate formats besides the weight format (comma-separated)")->capture_default_str();
  sub->add_option("--arch", a->hardware.arch, "mixed@energy=X / mixed@cycles=X: the accelerator (architecture YAML, as qcast cost --arch)")
      ->check(CLI::ExistingFile);
  sub->add_option("--ert", a->hardware.ert, "with --arch: Accelergy energy reference table (as qcast cost --ert)")->check(CLI::ExistingFile);
  sub->add_option("--constraints", a->hardware.constraints, "with --arch: Timeloop mapspace constraints for the mapper (as qcast cost)")
      ->check(CLI::ExistingFile);
  sub->add_option("--table", a->hardware.table, "with --arch: the built-in energy table (horowitz|eyeriss, as qcast cost)")->capture_default_str();
  sub->add_option("--cost-samples", a->hardware.samples, "with --arch: mapper random samples per layer (qcast cost --samples)")
      ->capture_default_str()->check(CLI::Range(1, 100000000));
  sub->add_option("--cost-refine", a->hardware.refine, "with --arch: mapper local-search moves per start (qcast cost --refine)")
      ->capture_default_str()->check(CLI::Range(0, 100000000));
  sub->add_flag("--quiet,-q", a->quiet, "no progress bar and no per-layer table");
  add_threads_flag(sub, a->threads);
  sub->callback([a] { run(*a); });
});

}  // namespace
}  // namespace qcast::cli
