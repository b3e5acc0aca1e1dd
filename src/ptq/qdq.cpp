// QDQ export: QuantizeResult -> nn::QdqWeight (see include/qcast/ptq/qdq.hpp).
#include "qcast/ptq/qdq.hpp"

#include <cmath>
#include <optional>

#include "groups.hpp"
#include "qcast/error.hpp"
#include "qcast/kernels/reference.hpp"
#include "qcast/nn/act_quant.hpp"

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

// The layer's activation entry as QuantizeLinear can compute it: a static (calibrated) per-tensor integer
// format of <= 8 bits; nullopt = the layer's input stays in float. qcast::Error for any other activation format.
std::optional<Format> qdq_act_format(const nn::Recipe& r, const std::string& layer) {
  std::string wf, af, observer;
  r.formats_for(layer, wf, af, observer);
  if (af.empty() || af == "none" || af == "fp32") return std::nullopt;
  const std::string at = "--out *.onnx: activations of layer '" + layer + "' (" + af + "): ";
  if (observer.empty())
    throw Error(at + "dynamic activation scales (measured on each input) have no ONNX QDQ form; calibrate static scales "
                "with --act-observer minmax | percentile:P | mse (and --calib), or drop --acts");
  const nn::ActQuant aq = nn::make_act_quant(Format::parse(af), observer, layer);
  const Format& f = aq.format;
  const Element& e = f.elem();
  const auto& s = f.scaling();
  if (e.kind != Element::Kind::Int || e.bits > 8 || s.kind != ScaleKind::Tensor || s.tensor_scale || s.rule == ScaleRule::Ggml ||
      s.rule == ScaleRule::RCeil)
    throw Error(at + "QuantizeLinear takes integer codes of up to 8 bits with one scale per tensor; " + f.name() +
                " is not of that kind (use e.g. int8, int8@fp32/tensor/asym, int4)");
  return f;
}

}  // namespace

void check_qdq_recipe(const Model& m, const nn::Recipe& r) {
  if (!m.is_graph) throw Error(m.path + ": ONNX output (--out *.onnx) is for ONNX models; use .safetensors or .gguf");
  for (const auto& name : m.layer_names()) (void)qdq_act_format(r, name);
}

std::vector<nn::QdqAct> qdq_acts(const Model& m, const nn::Recipe& r) {
  std::vector<nn::QdqAct> out;
  for (const auto& name : m.layer_names()) {
    const auto f = qdq_act_format(r, name);
    if (!f) continue;
    auto it = r.act_ranges.find(name);
    if (it == r.act_ranges.end() || it->second.lo.size() != 1 || it->second.hi.size() != 1)
      throw Error("--out *.onnx: layer '" + name + "' has a static activation format but no calibrated range (give --calib)");
    // The parameters fake_quant_static uses: the format's rule applied to a group holding just {lo, hi}.
    const float v[2] = {it->second.lo[0], it->second.hi[0]};
    const ref::GroupParams p = ref::group_params(*f, v, 2, 1.0f, RoundMode::Even);
    const Element& e = f->elem();
    if (p.nan || p.zero_group || !(p.scale > 0) || p.divisor > 0)
      throw Error("--out *.onnx: layer '" + name + "': the calibrated range [" + std::to_string(v[0]) + ", " + std::to_string(v[1]) +
                  "] gives no positive scale (all-zero or non-finite calibration inputs)");
    nn::QdqAct a;
    a.node = name;
    a.scale = p.scale * std::ldexp(1.0f, -e.frac_bits);
    a.bits = e.bits;
    if (f->scaling().asym) {
      a.is_signed = false;
      a.zero = p.zero;
      a.lo_code = 0;
      a.hi_code = (1 << e.bits) - 1;
    } else {
      const auto qmax = static_cast<std::int32_t>(std::ldexp(e.max_value(), e.frac_bits));
      a.is_signed = e.is_signed;
      a.lo_code = e.is_signed ? -qmax : 0;
      a.hi_code = qmax;
    }
    out.push_back(a);
  }
  return out;
}

std::vector<nn::QdqWeight> qdq_weights(const Model& m, const QuantizeResult& r, std::vector<std::string>& notes) {
  check_qdq_recipe(m, r.recipe);  // an ONNX model, activation formats QuantizeLinear can compute
  for (const auto& L : r.layers) {
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
