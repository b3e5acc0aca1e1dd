// Layer shapes of a model file for the cost model: an ONNX graph's Conv / Gemm / MatMul nodes under the
// graph's own node names (the names recipes, eval and quantize use), a LLaMA model's linear layers (per
// token) under its layer names, or the layer JSON that `qcast inspect --json` writes.
#include <algorithm>
#include <cctype>

#include "hw/yaml_util.hpp"
#include "qcast/error.hpp"
#include "qcast/hw.hpp"
#include "qcast/nn/graph.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/sniff.hpp"

namespace qcast::hw {

namespace {

// One stride / dilation per layer problem: a [h, w] pair must be square.
std::int64_t square(const std::vector<std::int64_t>& v, const std::string& what, const std::string& layer) {
  if (v.empty()) return 1;
  if (std::any_of(v.begin(), v.end(), [&](std::int64_t x) { return x != v[0]; }))
    throw Error("layer '" + layer + "': its " + what + " differs between height and width, which the layer problem cannot express");
  return v[0];
}

}  // namespace

std::vector<LayerShape> model_layer_shapes(const std::string& path, std::int64_t batch,
                                           const std::vector<std::vector<std::int64_t>>& input_shapes) {
  const FileKind kind = sniff_model_file(path);
  if (!input_shapes.empty() && kind != FileKind::Onnx)
    throw Error("input shapes apply to ONNX models (their graph inputs); " + path + " is not one");
  std::vector<LayerShape> out;
  switch (kind) {
    case FileKind::LayersJson: return read_layers_json(path);
    case FileKind::Onnx: {
      const nn::Graph g = nn::load_onnx(path);
      for (const auto& l : input_shapes.empty() ? nn::layer_info(g, batch) : nn::layer_info(g, input_shapes)) {
        LayerShape s;
        s.name = l.name;
        s.op = detail::lower(l.op);
        if (l.is_compute) {
          s.N = l.N, s.C = l.C, s.M = l.M, s.H = l.H, s.W = l.W, s.R = l.R, s.S = l.S, s.P = l.P, s.Q = l.Q;
          s.groups = l.groups;
          s.stride = square(l.stride, "stride", l.name);
          s.dilation = square(l.dilation, "dilation", l.name);
        }
        out.push_back(s);
      }
      return out;
    }
    case FileKind::Llama2c:
    case FileKind::HfDir:
    case FileKind::Gguf: {
      const nn::Llama m = nn::load_llama(path);
      auto add = [&](const nn::Linear& l) {
        LayerShape s;
        s.name = l.name;
        s.op = "linear";
        s.N = batch;
        s.C = l.in;
        s.M = l.out;
        s.P = s.Q = 1;
        out.push_back(s);
      };
      for (const auto& layer : m.layers)
        for (const nn::Linear* p : {&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.w1, &layer.w2, &layer.w3}) add(*p);
      add(m.cls);
      return out;
    }
    default:
      refuse_file(path, kind, "cost --model",
                  "ONNX, llama2.c, HF and GGUF models and the layer JSON of `qcast inspect MODEL --json`");
  }
  return out;
}

}  // namespace qcast::hw
