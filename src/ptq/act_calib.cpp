// Observers and the calibration pass for static activation scales. See include/qcast/ptq/act_calib.hpp.
#include "qcast/ptq/act_calib.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qcast/error.hpp"
#include "qcast/progress.hpp"

namespace qcast::ptq {

// ---------------------------------------------------------------------------------------------
// ActHistogram

void ActHistogram::grow(double amax) {
  if (pos_.empty()) { pos_.assign(kBins, 0); neg_.assign(kBins, 0); }
  if (!(amax > 0)) return;
  if (range_ == 0) { range_ = amax; return; }
  // Doubling R maps bins 2j, 2j+1 onto bin j exactly, so earlier counts stay correct.
  while (range_ < amax) {
    for (auto* h : {&pos_, &neg_}) {
      for (int j = 0; j < kBins / 2; ++j) (*h)[j] = (*h)[2 * j] + (*h)[2 * j + 1];
      std::fill(h->begin() + kBins / 2, h->end(), 0);
    }
    range_ *= 2;
  }
}

void ActHistogram::add(const float* x, std::size_t n) {
  double amax = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) amax = std::max(amax, static_cast<double>(std::fabs(x[i])));
  grow(amax);
  const double inv = range_ > 0 ? kBins / range_ : 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) continue;
    if (count_ == 0) min_ = max_ = v;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
    ++count_;
    const int j = std::min(kBins - 1, static_cast<int>(std::fabs(v) * inv));
    (v < 0 ? neg_ : pos_)[static_cast<std::size_t>(j)]++;
  }
}

namespace {

// Squared fake-quant error of the histogram (bin centres weighted by counts) under the fixed range [lo, hi].
double histogram_sse(const Format& f, const std::vector<float>& centres, const std::vector<double>& weights, float lo, float hi) {
  std::vector<float> q(centres.size());
  StaticRange r{{lo}, {hi}};
  fake_quant_static(f, r, centres.data(), q.data(), {static_cast<std::int64_t>(centres.size())});
  double e = 0;
  for (std::size_t i = 0; i < centres.size(); ++i) {
    const double d = static_cast<double>(q[i]) - centres[i];
    e += weights[i] * d * d;
  }
  return e;
}

}  // namespace

void ActHistogram::range_for(const nn::ObserverSpec& obs, const Format& f, float& lo, float& hi) const {
  const bool asym = f.scaling().asym;
  const float amax = std::max(std::fabs(min_), std::fabs(max_));
  lo = asym ? min_ : -amax;
  hi = asym ? max_ : amax;
  if (count_ == 0 || obs.kind == nn::ObserverSpec::Kind::MinMax) return;
  const double w = bin_width();
  if (obs.kind == nn::ObserverSpec::Kind::Percentile) {
    // Rank of the P-th percentile among the counted values (1-based, at least 1).
    const auto rank = [&](double p) {
      return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_))));
    };
    if (!asym) {  // upper edge of the |x| bin that holds the rank-th smallest |x|
      const std::uint64_t k = rank(obs.percentile);
      std::uint64_t cum = 0;
      for (int j = 0; j < kBins; ++j) {
        cum += pos_[j] + neg_[j];
        if (cum >= k) { hi = std::min(amax, static_cast<float>((j + 1) * w)); break; }
      }
      lo = -hi;
      return;
    }
    // Asymmetric: walk the signed bins from the top for the upper cut and from the bottom for the lower.
    const std::uint64_t above = count_ - rank(obs.percentile);  // values allowed above hi
    std::uint64_t cum = 0;
    for (int j = kBins - 1; j >= 0; --j) {
      cum += pos_[j];
      if (cum > above) { hi = std::min(max_, static_cast<float>((j + 1) * w)); break; }
      if (j == 0) hi = 0;  // the cut falls among the negative values
    }
    cum = 0;
    for (int j = kBins - 1; j >= 0; --j) {
      cum += neg_[j];
      if (cum > above) { lo = std::max(min_, static_cast<float>(-(j + 1) * w)); break; }
      if (j == 0) lo = 0;
    }
    return;
  }
  // mse: bin centres of the non-empty bins (signed), clipped to the observed extremes.
  std::vector<float> centres;
  std::vector<double> weights;
  for (int j = kBins - 1; j >= 0; --j)
    if (neg_[j]) { centres.push_back(std::max(min_, static_cast<float>(-(j + 0.5) * w))); weights.push_back(static_cast<double>(neg_[j])); }
  for (int j = 0; j < kBins; ++j)
    if (pos_[j]) { centres.push_back(std::min(max_, static_cast<float>((j + 0.5) * w))); weights.push_back(static_cast<double>(pos_[j])); }
  Scaling per_tensor = f.scaling();  // one range for the whole group: quantize the centres with a per-tensor view
  per_tensor.kind = ScaleKind::Tensor;
  const Format tf = f.with_scaling(per_tensor);
  const float lo0 = lo, hi0 = hi;
  double best = histogram_sse(tf, centres, weights, lo0, hi0);
  for (int k = 1; k < 200; ++k) {
    const float a = static_cast<float>(1.0 - k / 200.0);
    const double e = histogram_sse(tf, centres, weights, lo0 * a, hi0 * a);
    if (e < best) { best = e; lo = lo0 * a; hi = hi0 * a; }
  }
}

// ---------------------------------------------------------------------------------------------
// ActObserver

void ActObserver::observe(const float* x, const Shape& shape, int axis) {
  const std::int64_t n = shape_numel(shape);
  if (format_.scaling().kind != ScaleKind::Channel) {  // per-tensor, or the tensor scale of nvfp4
    if (groups_.empty()) groups_.resize(1);
    groups_[0].add(x, static_cast<std::size_t>(n));
    return;
  }
  const int nd = static_cast<int>(shape.size());
  int a = format_.scaling().axis_explicit ? format_.scaling().axis : axis;
  if (a < 0) a += nd;
  if (a < 0 || a >= nd) throw Error("activation format " + format_.name() + ": channel axis out of range for an input of shape " + shape_str(shape));
  std::int64_t outer = 1, inner = 1;
  for (int i = 0; i < a; ++i) outer *= shape[i];
  for (int i = a + 1; i < nd; ++i) inner *= shape[i];
  const std::int64_t len = shape[a];
  if (groups_.empty()) groups_.resize(static_cast<std::size_t>(len));
  if (static_cast<std::int64_t>(groups_.size()) != len)
    throw Error("activation format " + format_.name() + ": an input of shape " + shape_str(shape) + " has " + std::to_string(len) +
                " channels, earlier calibration inputs had " + std::to_string(groups_.size()));
  std::vector<float> buf(static_cast<std::size_t>(outer * inner));
  for (std::int64_t c = 0; c < len; ++c) {
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t i = 0; i < inner; ++i) buf[static_cast<std::size_t>(o * inner + i)] = x[(o * len + c) * inner + i];
    groups_[static_cast<std::size_t>(c)].add(buf.data(), buf.size());
  }
}

StaticRange ActObserver::range(const nn::ObserverSpec& obs) const {
  if (obs.kind == nn::ObserverSpec::Kind::Mse && format_.scaling().tensor_scale)
    throw Error("the mse observer needs a per-tensor or per-channel format; " + format_.name() +
                " keeps dynamic block scales under its static fp32 scale (use minmax or percentile)");
  StaticRange r;
  for (const auto& h : groups_) {
    float lo = 0, hi = 0;
    h.range_for(obs, format_, lo, hi);
    r.lo.push_back(lo);
    r.hi.push_back(hi);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Calibration pass

std::map<std::string, StaticRange> calibrate_activations(Model& m, const CalibOptions& o, int threads, bool progress) {
  // The static points, their observers, and the activation quantization switched off while observing.
  struct Point {
    std::string layer;
    nn::ActQuant saved;
    ActObserver obs;
  };
  std::vector<Point> points;
  std::map<std::size_t, std::size_t> by_node;              // graph node index -> point
  std::map<const nn::Linear*, std::size_t> by_lin;          // llama linear -> point
  std::vector<std::pair<std::optional<nn::ActQuant>*, nn::ActQuant>> disabled;  // restored afterwards
  auto take = [&](std::optional<nn::ActQuant>& act, const std::string& name) -> long {
    if (!act) return -1;
    disabled.emplace_back(&act, *act);
    const bool st = act->is_static();
    if (st) points.push_back({name, *act, ActObserver(act->format)});
    act.reset();
    return st ? static_cast<long>(points.size() - 1) : -1;
  };
  if (m.is_graph) {
    for (std::size_t k = 0; k < m.graph.nodes.size(); ++k)
      if (long p = take(m.graph.nodes[k].quant.act, m.graph.nodes[k].name); p >= 0) by_node[k] = static_cast<std::size_t>(p);
  } else {
    for (auto& L : m.llama.layers)
      for (nn::Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3})
        if (long i = take(p->act, p->name); i >= 0) by_lin[p] = static_cast<std::size_t>(i);
    if (long i = take(m.llama.cls.act, m.llama.cls.name); i >= 0) by_lin[&m.llama.cls] = static_cast<std::size_t>(i);
  }
  auto restore = [&] { for (auto& [slot, a] : disabled) *slot = a; };
  if (points.empty()) {
    restore();
    throw Error(m.path + ": no layer has a static activation format to calibrate (--acts F --act-observer O)");
  }
  nn::NodeObserver gobs = [&](std::size_t idx, const nn::Node& n, const std::vector<const nn::Value*>& ins) {
    auto it = by_node.find(idx);
    if (it == by_node.end() || ins.empty() || !ins[0] || ins[0]->is_int) return;
    const nn::Value& x = *ins[0];
    int axis = 1;  // as the operators quantize their input (ops.cpp)
    if (n.op == "Gemm") axis = n.get_i("transA", 0) ? 0 : 1;
    if (n.op == "MatMul") axis = static_cast<int>(x.shape.size()) - 1;
    points[it->second].obs.observe(x.fp(), x.shape, axis);
  };
  nn::LinearObserver lobs = [&](const nn::Linear& L, const float* x, int T) {
    auto it = by_lin.find(&L);
    if (it != by_lin.end()) points[it->second].obs.observe(x, {T, L.in}, 1);
  };
  std::map<std::string, StaticRange> ranges;
  try {
    std::int64_t total = m.is_graph ? (o.samples + o.batch - 1) / o.batch : o.samples;
    Progress bar("calibrate", total, progress);
    run_calibration(m, o, threads, gobs, lobs, [&] { bar.advance(1); });
    bar.finish();
    for (auto& p : points) {
      if (p.obs.groups().empty()) throw Error(m.path + ": layer '" + p.layer + "' saw no calibration input");
      ranges[p.layer] = p.obs.range(nn::parse_observer(p.saved.observer));
    }
  } catch (...) {
    restore();
    throw;
  }
  restore();
  // Attach the ranges.
  if (m.is_graph) {
    for (auto& n : m.graph.nodes)
      if (n.quant.act && ranges.count(n.name)) n.quant.act->range = ranges.at(n.name);
  } else {
    auto set = [&](nn::Linear& L) { if (L.act && ranges.count(L.name)) L.act->range = ranges.at(L.name); };
    for (auto& L : m.llama.layers)
      for (nn::Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) set(*p);
    set(m.llama.cls);
  }
  return ranges;
}

}  // namespace qcast::ptq
