// qcast inspect MODEL [--json]: layers, shapes, parameters, MACs per layer, weight bytes per format.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.hpp"
#include "nn_common.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/format.hpp"
#include "qcast/gguf.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/onnx.hpp"

namespace qcast::cli {
namespace {

struct Args {
  std::string model, base_model;
  bool json = false;
  std::int64_t batch = 1;
  std::vector<std::string> input_shapes;  // --input-shape, one per ONNX graph input
  std::string formats = "fp32,bf16,mxfp8,mxfp6_e2m3,mxfp4,mxint8,nvfp4";
};


nlohmann::json weight_bytes(std::int64_t elems, const std::string& formats, std::vector<std::string>* skipped) {
  nlohmann::json o = nlohmann::json::object();
  std::size_t b = 0;
  while (b <= formats.size()) {
    std::size_t e = formats.find(',', b);
    if (e == std::string::npos) e = formats.size();
    const std::string f = formats.substr(b, e - b);
    b = e + 1;
    if (f.empty()) continue;
    if (f == "fp32") { o[f] = elems * 4; continue; }
    try {
      o[f] = static_cast<std::int64_t>(std::ceil(static_cast<double>(elems) * Format::parse(f).bits_per_element() / 8.0));
    } catch (const Error& err) {
      if (skipped) skipped->push_back(f + " (" + err.what() + ")");
    }
  }
  return o;
}

std::string fmt_shapes(const std::vector<Shape>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : " ") + shape_str(x);
  return s;
}

void run(const Args& a) {
  nlohmann::json j;
  j["model"] = a.model;
  std::vector<std::string> skipped;
  const FileKind kind = model_kind(a.model, "inspect", {FileKind::Onnx, FileKind::Llama2c, FileKind::HfDir, FileKind::Gguf, FileKind::QcastQuantized},
                                   "ONNX, llama2.c, HF and GGUF models and qcast quantize outputs");
  std::optional<ptq::Model> packed;  // a qcast quantize output: its base model, with what quantize did
  if (kind == FileKind::QcastQuantized) {
    std::string method;
    nn::Recipe recipe;
    packed = ptq::load_quantized(a.model, a.base_model, &method, &recipe);
    j["quantized"] = {{"base_model", packed->path}, {"method", method}, {"recipe", nlohmann::json::parse(nn::recipe_to_json(recipe))}};
    if (!a.json) std::printf("%s: qcast quantize output (%s) of %s\n", a.model.c_str(), method.c_str(), packed->path.c_str());
  }
  if (!a.input_shapes.empty() && !(packed ? packed->is_graph : kind == FileKind::Onnx))
    throw Error("--input-shape applies to ONNX models (their graph inputs); " + a.model + " is a language model");
  if (packed ? packed->is_graph : kind == FileKind::Onnx) {
    nn::Graph g = packed ? std::move(packed->graph) : nn::load_onnx(a.model);
    const auto input_shapes = cli::parse_input_shapes(a.input_shapes);
    auto layers = input_shapes.empty() ? nn::layer_info(g, a.batch) : nn::layer_info(g, input_shapes);
    const std::int64_t batch = input_shapes.empty() ? a.batch : input_shapes[0][0];
    j["kind"] = "onnx";
    j["batch"] = batch;
    nlohmann::json ins = nlohmann::json::array();
    for (auto& in : g.inputs) ins.push_back({{"name", g.value_names[in.id]}, {"shape", in.shape}});
    j["inputs"] = ins;
    std::int64_t params = 0, macs = 0, welems = 0;
    nlohmann::json L = nlohmann::json::array();
    for (auto& l : layers) {
      nlohmann::json o = {{"name", l.name}, {"op", l.op}, {"params", l.params}, {"macs", l.macs}};
      nlohmann::json is = nlohmann::json::array(), os = nlohmann::json::array();
      for (auto& s : l.in_shapes) is.push_back(s);
      for (auto& s : l.out_shapes) os.push_back(s);
      o["inputs"] = is;
      o["outputs"] = os;
      if (l.is_compute) {
        o["N"] = l.N; o["C"] = l.C; o["M"] = l.M; o["P"] = l.P; o["Q"] = l.Q; o["R"] = l.R; o["S"] = l.S;
        o["H"] = l.H; o["W"] = l.W; o["stride"] = l.stride; o["dilation"] = l.dilation; o["groups"] = l.groups;
        o["weight_elems"] = l.weight_elems;
      }
      params += l.params; macs += l.macs; welems += l.weight_elems;
      L.push_back(o);
    }
    j["layers"] = L;
    j["total_params"] = params;
    j["total_macs"] = macs;
    j["weight_elems"] = welems;
    j["weight_bytes"] = weight_bytes(welems, a.formats, &skipped);
    if (!a.json) {
      std::printf("%s: ONNX graph, opset %d, %zu nodes, input", a.model.c_str(), g.opset, g.nodes.size());
      for (auto& in : g.inputs) std::printf(" %s %s", printable(g.value_names[in.id]).c_str(), shape_str(in.shape).c_str());
      std::printf(" (batch %lld below)\n\n", static_cast<long long>(batch));
      std::printf("%-32s %-18s %-20s %-20s %10s %14s\n", "layer", "op", "input", "output", "params", "MACs");
      for (auto& l : layers) {
        std::string in = l.in_shapes.empty() ? "" : shape_str(l.in_shapes[0]);
        std::printf("%-32s %-18s %-20s %-20s %10lld %14lld\n", printable(l.name).c_str(), printable(l.op).c_str(), in.c_str(),
                    fmt_shapes(l.out_shapes).c_str(), static_cast<long long>(l.params), static_cast<long long>(l.macs));
      }
    }
  } else {
    nn::Llama m = packed ? std::move(packed->llama) : nn::load_llama(a.model);
    const auto& c = m.cfg;
    j["kind"] = "llama";
    j["config"] = {{"dim", c.dim}, {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers}, {"n_heads", c.n_heads},
                   {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size}, {"seq_len", c.seq_len},
                   {"shared_classifier", c.shared_classifier}, {"rope", c.rope_half ? "rotate_half" : "interleaved"},
                   {"norm_eps", c.norm_eps}};
    nlohmann::json L = nlohmann::json::array();
    std::int64_t macs = 0, welems = 0;
    auto add = [&](const nn::Linear& l) {
      const std::int64_t n = static_cast<std::int64_t>(l.out) * l.in;
      L.push_back({{"name", l.name}, {"op", "Linear"}, {"inputs", {Shape{1, l.in}}}, {"outputs", {Shape{1, l.out}}},
                   {"params", n}, {"macs", n}, {"weight_elems", n}, {"N", 1}, {"C", l.in}, {"M", l.out}, {"P", 1}, {"Q", 1},
                   {"R", 1}, {"S", 1}, {"H", 1}, {"W", 1}, {"stride", {1, 1}}, {"dilation", {1, 1}}, {"groups", 1}});
      macs += n;
      welems += n;
    };
    for (auto& layer : m.layers)
      for (const nn::Linear* p : {&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.w1, &layer.w2, &layer.w3}) add(*p);
    add(m.cls);
    j["layers"] = L;
    j["total_params"] = m.num_params();
    j["total_macs"] = macs;  // per token, excluding attention scores
    j["weight_elems"] = welems;
    j["weight_bytes"] = weight_bytes(welems, a.formats, &skipped);
    std::string stored;
    if (kind == FileKind::Gguf) {  // how the file stores its tensors (ggml types), besides the float model above
      const gguf::Reader g = gguf::Reader::open(a.model);
      std::map<std::string, int> types;
      for (const auto& t : g.tensors()) ++types[gguf::type_name(t.type)];
      j["gguf"] = {{"version", g.version()}, {"tensors", g.tensors().size()}, {"tensor_types", types}};
      for (const auto& [k, v] : types) stored += (stored.empty() ? "" : ", ") + std::to_string(v) + " " + k;
    }
    if (!a.json) {
      if (!stored.empty()) std::printf("%s: GGUF v%u, tensors stored as %s\n", a.model.c_str(), j["gguf"]["version"].get<unsigned>(), stored.c_str());
      std::printf("%s: LLaMA, dim %d, hidden %d, %d layers, %d heads (%d KV), vocab %d, seq_len %d, %s classifier, %s RoPE\n\n",
                  a.model.c_str(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len,
                  c.shared_classifier ? "shared" : "separate", c.rope_half ? "rotate-half" : "interleaved");
      std::printf("%-32s %-10s %-14s %-14s %12s\n", "layer", "op", "input", "output", "MACs/token");
      for (auto& l : L)
        std::printf("%-32s %-10s %-14s %-14s %12lld\n", l["name"].get<std::string>().c_str(), "Linear",
                    shape_str(l["inputs"][0].get<Shape>()).c_str(), shape_str(l["outputs"][0].get<Shape>()).c_str(),
                    static_cast<long long>(l["macs"].get<std::int64_t>()));
    }
  }
  if (a.json) {
    std::cout << json_output(j, 2) << "\n";
    return;
  }
  std::printf("\ntotal: %lld parameters, %lld MACs, %lld quantizable weight elements\nweight bytes:",
              static_cast<long long>(j["total_params"].get<std::int64_t>()), static_cast<long long>(j["total_macs"].get<std::int64_t>()),
              static_cast<long long>(j["weight_elems"].get<std::int64_t>()));
  for (auto& [k, v] : j["weight_bytes"].items()) std::printf("  %s %lld", k.c_str(), static_cast<long long>(v.get<std::int64_t>()));
  std::printf("\n");
  for (auto& s : skipped) std::fprintf(stderr, "qcast: note: no weight bytes for %s\n", s.c_str());
}

Registrar reg("inspect", [](CLI::App& root) {
  auto a = std::make_shared<Args>();
  auto* sub = root.add_subcommand("inspect", "show a model's layers, shapes, parameters, MACs and weight bytes per format");
  sub->add_option("model", a->model, "ONNX file, llama2.c .bin, Hugging Face LLaMA directory, GGUF (llama), or a qcast quantize output; recognized by content")->required();
  sub->add_option("--base-model", a->base_model, "for a qcast quantize output: the base model, if it moved since quantize wrote the file");
  sub->add_flag("--json", a->json, "print one JSON object (per-layer N C M P Q R S H W stride dilation groups for cost models)");
  cli::add_input_shape_option(sub, a->input_shapes);
  sub->add_option("--batch", a->batch, "batch size for shapes and MACs (ONNX)")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub->add_option("--formats", a->formats, "comma-separated formats for the weight-bytes summary")->capture_default_str();
  sub->callback([a] { run(*a); });
});

}  // namespace
}  // namespace qcast::cli
