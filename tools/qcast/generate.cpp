// qcast generate MODEL --tokenizer T [--prompt P] [--steps N] [--temperature T]: sample from a LLaMA model.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "nn_common.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/nn/llama.hpp"

namespace qcast::cli {
namespace {

struct Args {
  std::string model, tokenizer, prompt, base_model;
  int steps = 256;
  float temperature = 0.0f;
  std::uint64_t seed = 0;
  RecipeFlags q;
  bool json = false;
  int threads = 1;
  std::string kernel = "fp32";
};

void run(const Args& a) {
  const FileKind kind = model_kind(a.model, "generate", {FileKind::Llama2c, FileKind::HfDir, FileKind::Gguf, FileKind::QcastQuantized},
                                   "llama2.c, HF and GGUF language models and qcast quantize outputs of them");
  nn::Llama m;
  std::string base = a.model;  // where the tokenizer is looked for
  if (kind == FileKind::QcastQuantized) {
    refuse_recipe_flags_for_quantized(a.model, a.q);
    ptq::Model pm = ptq::load_quantized(a.model, a.base_model);
    if (pm.is_graph) throw Error(a.model + " is a quantized graph model (" + pm.path + "); generate takes language models");
    m = std::move(pm.llama);
    base = pm.path;
  } else {
    m = nn::load_llama(a.model);
    warn(m.apply_recipe(a.q.get(), a.threads));  // quantizing the weights is the parallel part
  }
  const int lowbit_layers = use_kernel(m, a.kernel, a.threads, a.json);
  nn::Tokenizer tok = nn::load_tokenizer_for(base, a.tokenizer, m.cfg.vocab_size);
  const std::uint64_t seed = a.seed ? a.seed : static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  std::vector<int> toks;
  const auto t0 = std::chrono::steady_clock::now();
  std::string text = nn::generate(m, tok, a.prompt, a.steps, a.temperature, seed, &toks);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (a.json) {
    nlohmann::json j = {{"model", a.model}, {"prompt", a.prompt}, {"text", text}, {"tokens", toks.size()},
                        {"temperature", a.temperature}, {"seconds", secs},
                        {"tokens_per_second", secs > 0 ? static_cast<double>(toks.size()) / secs : 0.0},
                        {"kernel", a.kernel}, {"lowbit_layers", lowbit_layers}, {"threads", a.threads}};
    std::cout << json_output(j, 2) << "\n";
  } else {
    std::cout << text << "\n";
    std::cerr << "qcast: " << toks.size() << " tokens, " << (secs > 0 ? static_cast<double>(toks.size()) / secs : 0.0) << " tokens/s\n";
  }
}

Registrar reg("generate", [](CLI::App& root) {
  auto a = std::make_shared<Args>();
  auto* sub = root.add_subcommand("generate", "generate text with a LLaMA model (fp32 or fake-quantized), llama2.c sampling");
  sub->add_option("model", a->model, "llama2.c .bin, Hugging Face LLaMA directory, GGUF (llama) or a qcast quantize output of one; recognized by content")->required();
  sub->add_option("--base-model", a->base_model, "for a qcast quantize output: the base model, if it moved since quantize wrote the file");
  sub->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer (tok*.bin); default: a GGUF model's own, else tok<vocab>.bin beside the model");
  sub->add_option("--prompt", a->prompt, "prompt text (default: empty)");
  sub->add_option("--steps", a->steps, "number of positions (prompt included), at most seq_len")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub->add_option("--temperature", a->temperature, "0 = greedy; otherwise multinomial sampling of softmax(logits / T)")->check(finite_range(0, 100))->capture_default_str();
  add_seed_option(sub, a->seed, "random seed for sampling (default: time)");
  a->q.add(sub);
  sub->add_flag("--json", a->json, "print one JSON object");
  add_threads_flag(sub, a->threads);
  add_kernel_option(sub, a->kernel);
  sub->callback([a] { run(*a); });
});

}  // namespace
}  // namespace qcast::cli
