// QDQ export: QuantizeResult -> nn::QdqWeight (see include/qcast/ptq/qdq.hpp).
#include "qcast/ptq/qdq.hpp"

#include <cmath>

#include "groups.hpp"
#include "qcast/error.hpp"

namespace qcast::ptq {

namespace {

// The ONNX granularity whose scale index equals qcast's group of every element, or false.
bool match_layout(const detail::WeightGroups& wg, nn::QdqWeight& w) {
  const std::int64_t R = w.rows, C = w.cols, B = wg.layout.block;
  struct Cand { int axis; std::int64_t block; };
  std::vector<Cand> cands = {{-1, 0}, {0, 0}, {1, 0}};
  if (B > 0) { cands.push_back({1, B}); cands.push_back({0, B}); }
  for (const auto& c : cands) {
    auto index = [&](std::int64_t r, std::int64_t k) -> std::int64_t {
      if (c.axis < 0) return 0;
      if (c.block == 0) return c.axis == 0 ? r : k;
      return c.axis == 1 ? r * ((C + B - 1) / B) + k / B : (r / B) * C + k;
    };
    const std::int64_t count = c.axis < 0 ? 1 : c.block == 0 ? (c.axis == 0 ? R : C)
                                               : c.axis == 1 ? R * ((C + B - 1) / B) : ((R + B - 1) / B) * C;
    if (count != wg.num_groups()) continue;
    bool ok = true;
    for (std::int64_t r = 0; r < R && ok; ++r)
      for (std::int64_t k = 0; k < C && ok; ++k) ok = wg.group_of(r, k) == index(r, k);
    if (!ok) continue;
    w.axis = c.axis;
    w.block = c.block;
    return true;
  }
  return false;
}

}  // namespace

std::vector<nn::QdqWeight> qdq_weights(const Model& m, const QuantizeResult& r, std::vector<std::string>& notes) {
  if (!m.is_graph) throw Error(m.path + ": ONNX output (--out *.onnx) is for ONNX models; use .safetensors or .gguf");
  for (const auto& L : r.layers) {
    std::string wf, af;
    r.recipe.formats_for(L.name, wf, af);
    if (!af.empty() && af != "none" && af != "fp32")
      throw Error("--out *.onnx writes quantized weights (QDQ); activation quantization (" + af + " at layer '" + L.name +
                  "') cannot be written: drop --acts / the recipe's activations");
    if (!L.bias.empty())
      throw Error("--out *.onnx: bias correction (+bias) changes biases, which the ONNX output does not write yet; use a method without +bias");
  }
  std::vector<nn::QdqWeight> out;
  for (const auto& L : r.layers) {
    nn::QdqWeight w;
    w.node = L.name;
    w.rows = L.rows;
    w.cols = L.cols;
    const Format& f = L.q.format;
    const Element& e = f.elem();
    const bool plain = L.rotate_block == 0 && L.A.empty();
    const auto kind = f.scaling().kind;
    bool done = false;
    if (plain && e.kind == Element::Kind::Int && e.bits <= 8 && (kind == ScaleKind::Tensor || kind == ScaleKind::Channel || kind == ScaleKind::Block)) {
      const auto wg = detail::WeightGroups::make(f, L.rows, L.cols);
      if (match_layout(wg, w)) {
        w.bits = e.bits;
        w.is_signed = e.is_signed && !f.scaling().asym;
        const float unit = std::ldexp(1.0f, -e.frac_bits);
        w.scales.resize(static_cast<std::size_t>(wg.num_groups()));
        for (std::int64_t g = 0; g < wg.num_groups(); ++g) w.scales[static_cast<std::size_t>(g)] = L.q.group_scale(g) * unit;
        if (f.scaling().asym) w.zeros = L.q.zeros;
        w.codes.resize(L.q.values.size());
        done = true;
        for (std::int64_t rr = 0; rr < L.rows && done; ++rr)
          for (std::int64_t k = 0; k < L.cols; ++k) {
            const std::size_t at = static_cast<std::size_t>(rr * L.cols + k);
            const std::int64_t g = wg.group_of(rr, k);
            const float s = w.scales[static_cast<std::size_t>(g)];
            const std::int32_t z = w.zeros.empty() ? 0 : w.zeros[static_cast<std::size_t>(g)];
            const float v = L.q.values[at];
            const std::int32_t code = s > 0 ? static_cast<std::int32_t>(std::nearbyint(v / s)) + z : z;
            // Exactly what DequantizeLinear computes: (code - zero) * scale in float32.
            if (!std::isfinite(s) || static_cast<float>(code - z) * s != v) { done = false; break; }
            w.codes[at] = code;
          }
        if (!done) { w.codes.clear(); w.scales.clear(); w.zeros.clear(); w.axis = -1; w.block = 0; }
      }
    }
    if (!done) {
      w.values = effective_weights(L);
      notes.push_back("layer '" + L.name + "' (" + f.name() + (plain ? "" : ", rotated / low-rank") +
                      "): no ONNX integer DequantizeLinear form, written as float32 fake-quantized weights");
    }
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace qcast::ptq
