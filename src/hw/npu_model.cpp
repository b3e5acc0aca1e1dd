// A model file as NPU work (include/qcast/npu.hpp, model_work): the layer shapes that `qcast cost --model`
// reads, as matmuls, plus the attention of each LLaMA layer.
#include <algorithm>

#include "qcast/error.hpp"
#include "qcast/hw.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/npu.hpp"
#include "qcast/sniff.hpp"

namespace qcast::hw::npu {

std::vector<LayerWork> model_work(const std::string& path, std::int64_t seq, const std::string& type,
                                  const std::vector<std::vector<std::int64_t>>& input_shapes) {
  if (seq < 1 || seq > (std::int64_t{1} << 24)) throw Error("npu: the sequence length must be in 1..2^24");
  const FileKind kind = sniff_model_file(path);
  std::vector<LayerWork> out;
  if (kind == FileKind::Llama2c || kind == FileKind::HfDir || kind == FileKind::Gguf) {
    if (!input_shapes.empty()) throw Error("input shapes apply to ONNX models (their graph inputs); " + path + " is not one");
    const nn::Llama m = nn::load_llama(path);
    auto linear = [&](const nn::Linear& l) {
      LayerWork w;
      w.name = l.name;
      w.matmul = {seq, l.in, l.out, type, 4};  // seq tokens x in -> out
      out.push_back(w);
    };
    const nn::LlamaConfig& c = m.cfg;
    for (std::size_t i = 0; i < m.layers.size(); ++i) {
      const auto& L = m.layers[i];
      for (const nn::Linear* p : {&L.wq, &L.wk, &L.wv}) linear(*p);
      // The scaled-dot-product attention between the q / k / v and the o projection: causal over seq.
      LayerWork a;
      a.attention = true;
      a.name = "layers." + std::to_string(i) + ".attention.sdpa";
      a.attn = {seq, seq, c.n_heads, c.n_kv_heads, c.head_size(), c.head_size(), true, type};
      out.push_back(a);
      for (const nn::Linear* p : {&L.wo, &L.w1, &L.w2, &L.w3}) linear(*p);
    }
    linear(m.cls);
    return out;
  }
  for (const LayerShape& l : model_layer_shapes(path, 1, input_shapes)) {
    if (!layer_has_macs(l)) continue;
    LayerWork w;
    w.name = l.name;
    const std::int64_t rows = l.N * std::max<std::int64_t>(1, l.P) * std::max<std::int64_t>(1, l.Q);
    if (l.op == "conv") {
      // im2col: one output pixel per row, one group's receptive field as K, the group's channels as N.
      const std::int64_t g = std::max<std::int64_t>(1, l.groups);
      w.matmul = {rows, l.C / g * l.R * l.S, l.M / g, type, 4};
      w.repeat = g;
    } else {
      w.matmul = {rows, l.C, l.M, type, 4};
    }
    out.push_back(w);
  }
  return out;
}

}  // namespace qcast::hw::npu
