#include "qcast/ptq/mixed.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/ptq/common.hpp"
#include "qcast/ptq/rtn.hpp"

namespace qcast::ptq {

namespace {

double total_params(const std::vector<LayerSensitivity>& layers) {
  double p = 0;
  for (const auto& l : layers) {
    if (l.options.empty()) throw Error("mixed precision: layer '" + l.name + "' has no format options");
    if (l.params <= 0) throw Error("mixed precision: layer '" + l.name + "' has no parameters");
    p += static_cast<double>(l.params);
  }
  return p;
}

Allocation finish(const std::vector<LayerSensitivity>& layers, const std::vector<std::size_t>& choice, double P,
                  const char* solver) {
  Allocation a;
  a.solver = solver;
  double bits = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& o = layers[i].options[choice[i]];
    a.recipe.emplace_back(layers[i].name, o.format);
    bits += o.bits * static_cast<double>(layers[i].params);
    a.predicted_error += o.error;
  }
  a.avg_bits = bits / P;
  return a;
}

std::size_t cheapest(const LayerSensitivity& l) {
  std::size_t best = 0;
  for (std::size_t k = 1; k < l.options.size(); ++k) {
    const auto &o = l.options[k], &b = l.options[best];
    if (o.bits < b.bits || (o.bits == b.bits && o.error < b.error)) best = k;
  }
  return best;
}

void check_feasible(const std::vector<LayerSensitivity>& layers, double budget, double P) {
  double bits = 0;
  for (const auto& l : layers) bits += l.options[cheapest(l)].bits * static_cast<double>(l.params);
  if (bits > budget * P * (1 + 1e-12))
    throw Error("mixed precision: budget " + std::to_string(budget) + " bits/weight is below the cheapest choice (" +
                std::to_string(bits / P) + ")");
}

}  // namespace

Allocation allocate_greedy(const std::vector<LayerSensitivity>& layers, double budget) {
  const double P = total_params(layers);
  check_feasible(layers, budget, P);
  std::vector<std::size_t> ch(layers.size());
  double used = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    ch[i] = cheapest(layers[i]);
    used += layers[i].options[ch[i]].bits * static_cast<double>(layers[i].params);
  }
  const double cap = budget * P * (1 + 1e-12);
  while (true) {
    double best_ratio = 0;
    std::size_t bl = 0, bk = 0;
    bool found = false;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& cur = layers[i].options[ch[i]];
      for (std::size_t k = 0; k < layers[i].options.size(); ++k) {
        const auto& o = layers[i].options[k];
        const double dbits = (o.bits - cur.bits) * static_cast<double>(layers[i].params);
        const double gain = cur.error - o.error;
        if (gain <= 0 || used + dbits > cap) continue;
        const double ratio = dbits <= 0 ? std::numeric_limits<double>::infinity() : gain / dbits;
        if (!found || ratio > best_ratio) {
          found = true;
          best_ratio = ratio;
          bl = i;
          bk = k;
        }
      }
    }
    if (!found) break;
    used += (layers[bl].options[bk].bits - layers[bl].options[ch[bl]].bits) * static_cast<double>(layers[bl].params);
    ch[bl] = bk;
  }
  return finish(layers, ch, P, "greedy");
}

Allocation allocate_dp(const std::vector<LayerSensitivity>& layers, double budget, int resolution) {
  const double P = total_params(layers);
  check_feasible(layers, budget, P);
  const double cap = budget * P;
  const std::size_t L = layers.size();
  // Integer costs: a layer's storage in bits is an integer; divide by the gcd of all costs. If that DP
  // would be too large, costs are rounded up to units of cap / resolution (every solution stays feasible).
  std::vector<std::vector<long long>> cost(L);
  long long g = 0;
  for (std::size_t i = 0; i < L; ++i)
    for (const auto& o : layers[i].options) {
      const long long c = std::llround(o.bits * static_cast<double>(layers[i].params));
      cost[i].push_back(c);
      g = std::gcd(g, c);
    }
  long long C = g > 0 ? static_cast<long long>(std::floor(cap * (1 + 1e-12) / static_cast<double>(g))) : 0;
  if (g > 0 && C <= (1ll << 24) / static_cast<long long>(std::max<std::size_t>(L, 1))) {
    for (auto& cs : cost)
      for (auto& c : cs) c /= g;
  } else {
    const double unit = cap / std::max(1, resolution);
    C = std::max(1, resolution);
    for (std::size_t i = 0; i < L; ++i)
      for (std::size_t k = 0; k < cost[i].size(); ++k)
        cost[i][k] = static_cast<long long>(std::ceil(layers[i].options[k].bits * static_cast<double>(layers[i].params) / unit - 1e-9));
  }
  const double inf = std::numeric_limits<double>::infinity();
  const std::size_t W = static_cast<std::size_t>(C) + 1;
  std::vector<double> prev(W, inf), cur(W);
  std::vector<std::vector<int>> pick(L, std::vector<int>(W, -1));
  prev[0] = 0;
  for (std::size_t i = 0; i < L; ++i) {
    std::fill(cur.begin(), cur.end(), inf);
    for (std::size_t c = 0; c < W; ++c) {
      if (prev[c] == inf) continue;
      for (std::size_t k = 0; k < layers[i].options.size(); ++k) {
        const std::size_t nc = c + static_cast<std::size_t>(cost[i][k]);
        if (nc >= W) continue;
        const double e = prev[c] + layers[i].options[k].error;
        if (e < cur[nc]) {
          cur[nc] = e;
          pick[i][nc] = static_cast<int>(k);
        }
      }
    }
    std::swap(prev, cur);
  }
  long long bc = -1;
  for (std::size_t c = 0; c < W; ++c)
    if (prev[c] < inf && (bc < 0 || prev[c] < prev[static_cast<std::size_t>(bc)])) bc = static_cast<long long>(c);
  if (bc < 0) return allocate_greedy(layers, budget);  // rounding made every choice infeasible
  std::vector<std::size_t> ch(L);
  for (std::size_t i = L; i-- > 0;) {
    const int k = pick[i][static_cast<std::size_t>(bc)];
    ch[i] = static_cast<std::size_t>(k);
    bc -= cost[i][static_cast<std::size_t>(k)];
  }
  return finish(layers, ch, P, "dp");
}

Allocation allocate(const std::vector<LayerSensitivity>& layers, double budget, int resolution) {
  Allocation g = allocate_greedy(layers, budget);
  Allocation d = allocate_dp(layers, budget, resolution);
  return d.predicted_error < g.predicted_error ? d : g;
}

std::string Allocation::to_json(double budget) const {
  nlohmann::ordered_json j;
  j["budget_bits"] = budget;
  j["avg_bits"] = avg_bits;
  j["predicted_error"] = predicted_error;
  j["solver"] = solver;
  nlohmann::ordered_json l = nlohmann::ordered_json::object();
  for (const auto& [name, fmt] : recipe) l[name] = fmt;
  j["layers"] = l;
  return j.dump(2);
}

LayerSensitivity layer_sensitivity(const std::string& name, const float* W, std::int64_t rows, std::int64_t cols,
                                   const float* H, const std::vector<std::string>& formats) {
  LayerSensitivity s;
  s.name = name;
  s.params = rows * cols;
  for (const auto& fn : formats) {
    const Format f = Format::parse(fn);
    const auto q = rtn(f, W, rows, cols);
    FormatOption o;
    o.format = fn;
    o.bits = bits_per_weight(f, rows, cols);
    if (H) {
      o.error = hessian_error(W, q.values.data(), rows, cols, H);
    } else {
      double e = 0;
      for (std::int64_t i = 0; i < rows * cols; ++i) e += (static_cast<double>(W[i]) - q.values[i]) * (W[i] - q.values[i]);
      o.error = e;
    }
    s.options.push_back(o);
  }
  return s;
}

}  // namespace qcast::ptq
