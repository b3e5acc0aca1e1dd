#include "qcast/nn/model.hpp"

#include <algorithm>
#include <cstring>

#include "qcast/error.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/sniff.hpp"

namespace qcast::nn {

std::vector<Linear*> linears(Llama& m) {
  std::vector<Linear*> r;
  for (auto& L : m.layers)
    for (Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w3, &L.w2}) r.push_back(p);  // execution order
  r.push_back(&m.cls);
  return r;
}

std::vector<const Linear*> linears(const Llama& m) {
  std::vector<const Linear*> r;
  for (Linear* p : linears(const_cast<Llama&>(m))) r.push_back(p);
  return r;
}

std::vector<LayerRef> Model::layers() const {
  const Model& m = *this;
  std::vector<LayerRef> r;
  if (m.is_graph) {
    const auto names = quantizable_layers(m.graph);
    int group = -1, last_input = -2;
    for (std::size_t k = 0; k < m.graph.nodes.size(); ++k) {
      const Node& n = m.graph.nodes[k];
      if (std::find(names.begin(), names.end(), n.name) == names.end()) continue;
      LayerRef L;
      L.name = n.name;
      L.node = k;
      L.wid = n.inputs[1];
      const Value& w = m.graph.constants.at(L.wid);
      L.wshape = w.shape;
      if (n.op == "Conv" && w.shape.size() == 4) {
        L.rows = w.shape[0];
        L.cols = w.shape[1] * w.shape[2] * w.shape[3];
      } else if (n.op == "Gemm" && w.shape.size() == 2) {
        L.transpose = n.get_i("transB", 0) == 0;
        L.rows = L.transpose ? w.shape[1] : w.shape[0];
        L.cols = L.transpose ? w.shape[0] : w.shape[1];
      } else if (n.op == "MatMul" && w.shape.size() == 2) {
        L.transpose = true;
        L.rows = w.shape[1];
        L.cols = w.shape[0];
      } else {
        throw Error(m.path + ": layer '" + n.name + "' (" + n.op + ", weight " + shape_str(w.shape) +
                    ") is not supported by qcast quantize (Conv, Gemm and 2-D MatMul weights are); skip it in the recipe");
      }
      if (n.inputs[0] != last_input) ++group;
      last_input = n.inputs[0];
      L.group = group;
      r.push_back(L);
    }
  } else {
    auto lins = linears(m.llama);
    int group = -1;
    for (std::size_t k = 0; k < lins.size(); ++k) {
      LayerRef L;
      L.name = lins[k]->name;
      L.rows = lins[k]->out;
      L.cols = lins[k]->in;
      L.lin = static_cast<int>(k);
      const std::string& nm = L.name;
      auto ends = [&](const char* s) { return nm.size() >= std::strlen(s) && nm.compare(nm.size() - std::strlen(s), std::string::npos, s) == 0; };
      const bool joins = ends(".wk") || ends(".wv") || ends(".w3");  // same input as wq / w1
      if (!joins) ++group;
      L.group = group;
      r.push_back(L);
    }
  }
  return r;
}

/// The fp32 weights of a layer as [rows, cols].
std::vector<float> Model::weights(const LayerRef& L) const {
  const Model& m = *this;
  std::vector<float> W(static_cast<std::size_t>(L.rows * L.cols));
  if (m.is_graph) {
    const auto& g = m.graph;
    const Value& v = g.fp32_weights.count(L.wid) ? g.fp32_weights.at(L.wid) : g.constants.at(L.wid);
    if (!L.transpose) std::copy(v.fp(), v.fp() + W.size(), W.begin());
    else
      for (std::int64_t i = 0; i < L.cols; ++i)
        for (std::int64_t o = 0; o < L.rows; ++o) W[o * L.cols + i] = v.fp()[i * L.rows + o];
  } else {
    const Linear& lin = *linears(m.llama)[L.lin];
    const auto& src = lin.w_fp32.empty() ? lin.w : lin.w_fp32;
    W = src;
  }
  return W;
}

const StoredBlocks* Model::stored_blocks(const LayerRef& L) const {
  if (is_graph) return nullptr;
  return linears(llama)[L.lin]->stored.get();
}

void Model::set_weights(const LayerRef& L, std::vector<float> W) {
  Model& m = *this;
  if (m.is_graph) {
    Value v = Value::floats(L.wshape);
    if (!L.transpose) std::copy(W.begin(), W.end(), v.mfp());
    else
      for (std::int64_t i = 0; i < L.cols; ++i)
        for (std::int64_t o = 0; o < L.rows; ++o) v.mfp()[i * L.rows + o] = W[o * L.cols + i];
    m.graph.constants[L.wid] = v;
  } else {
    Linear& lin = *linears(m.llama)[L.lin];
    if (lin.w_fp32.empty()) lin.w_fp32 = std::move(lin.w);
    lin.w = std::move(W);
  }
}

/// Graph layers with a constant bias input of `rows` elements (LLaMA linears have none).
bool Model::has_bias(const LayerRef& L) const {
  const Model& m = *this;
  if (!m.is_graph) return false;
  const Node& n = m.graph.nodes[L.node];
  if (n.inputs.size() < 3 || n.inputs[2] < 0 || !m.graph.is_const(n.inputs[2])) return false;
  const Value& b = m.graph.constants.at(n.inputs[2]);
  return !b.is_int && b.numel() == L.rows;
}

std::vector<float> Model::bias(const LayerRef& L) const {
  const Model& m = *this;
  const Value& b = m.graph.constants.at(m.graph.nodes[L.node].inputs[2]);
  return std::vector<float>(b.fp(), b.fp() + b.numel());
}

void Model::set_bias(const LayerRef& L, const std::vector<float>& b) {
  Model& m = *this;
  const int id = m.graph.nodes[L.node].inputs[2];
  Value v = Value::floats(m.graph.constants.at(id).shape);
  if (static_cast<std::size_t>(v.numel()) != b.size())
    throw Error("layer '" + L.name + "': bias of " + std::to_string(v.numel()) + " values, got " + std::to_string(b.size()));
  std::copy(b.begin(), b.end(), v.mfp());
  m.graph.constants[id] = v;
}

std::string Model::apply_recipe(const Recipe& r, int threads) {
  return is_graph ? nn::apply_recipe(graph, r, threads) : llama.apply_recipe(r, threads);
}

std::vector<std::string> Model::layer_names() const {
  std::vector<std::string> r;
  for (auto& L : layers()) r.push_back(L.name);
  return r;
}

Model load_model(const std::string& path) {
  Model m;
  m.path = path;
  const FileKind k = sniff_model_file(path);
  if (k != FileKind::Onnx && k != FileKind::Llama2c && k != FileKind::HfDir && k != FileKind::Gguf)
    refuse_file(path, k, "model loading", "ONNX models, llama2.c checkpoints, HF LLaMA directories and GGUF files");
  m.is_graph = k == FileKind::Onnx;
  if (m.is_graph) m.graph = load_onnx(path);
  else m.llama = load_llama(path);
  return m;
}

}  // namespace qcast::nn
