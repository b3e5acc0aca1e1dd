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
    a.cost += o.cost;
    a.predicted_error += o.error;
  }
  a.avg_bits = bits / P;
  return a;
}

std::size_t cheapest(const LayerSensitivity& l) {
  std::size_t best = 0;
  for (std::size_t k = 1; k < l.options.size(); ++k) {
    const auto &o = l.options[k], &b = l.options[best];
    if (o.cost < b.cost || (o.cost == b.cost && o.error < b.error)) best = k;
  }
  return best;
}

void check_feasible(const std::vector<LayerSensitivity>& layers, double budget, const CostUnit& unit) {
  double c = 0;
  for (const auto& l : layers) c += l.options[cheapest(l)].cost;
  if (c > budget * (1 + 1e-12))
    throw Error("mixed precision: budget " + unit(budget) + " is below the cheapest choice (" + unit(c) + ")");
}

// Each option's cost: its storage, bits x params (the bit budget).
std::vector<LayerSensitivity> with_bit_costs(std::vector<LayerSensitivity> layers) {
  for (auto& l : layers)
    for (auto& o : l.options) o.cost = o.bits * static_cast<double>(l.params);
  return layers;
}

CostUnit bits_unit(double P) {
  return [P](double total) { return std::to_string(total / P) + " bits/weight"; };
}

Allocation greedy(const std::vector<LayerSensitivity>& layers, double budget, const CostUnit& unit) {
  const double P = total_params(layers);
  check_feasible(layers, budget, unit);
  std::vector<std::size_t> ch(layers.size());
  double used = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    ch[i] = cheapest(layers[i]);
    used += layers[i].options[ch[i]].cost;
  }
  const double cap = budget * (1 + 1e-12);
  while (true) {
    double best_ratio = 0;
    std::size_t bl = 0, bk = 0;
    bool found = false;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& cur = layers[i].options[ch[i]];
      for (std::size_t k = 0; k < layers[i].options.size(); ++k) {
        const auto& o = layers[i].options[k];
        const double dcost = o.cost - cur.cost;
        const double gain = cur.error - o.error;
        if (gain <= 0 || used + dcost > cap) continue;
        const double ratio = dcost <= 0 ? std::numeric_limits<double>::infinity() : gain / dcost;
        if (!found || ratio > best_ratio) {
          found = true;
          best_ratio = ratio;
          bl = i;
          bk = k;
        }
      }
    }
    if (!found) break;
    used += layers[bl].options[bk].cost - layers[bl].options[ch[bl]].cost;
    ch[bl] = bk;
  }
  return finish(layers, ch, P, "greedy");
}

Allocation knapsack(const std::vector<LayerSensitivity>& layers, double budget, int resolution, const CostUnit& unit) {
  const double P = total_params(layers);
  check_feasible(layers, budget, unit);
  const double cap = budget;
  const std::size_t L = layers.size();
  // Integer costs: a layer's storage in bits is an integer (energies in pJ are rounded to 1 pJ); divide by
  // the gcd of all costs. If that DP would be too large, costs are rounded up to units of cap / resolution
  // (every solution stays feasible).
  std::vector<std::vector<long long>> cost(L);
  long long g = 0;
  for (std::size_t i = 0; i < L; ++i)
    for (const auto& o : layers[i].options) {
      const long long c = std::llround(o.cost);
      cost[i].push_back(c);
      g = std::gcd(g, c);
    }
  long long C = g > 0 ? static_cast<long long>(std::floor(cap * (1 + 1e-12) / static_cast<double>(g))) : 0;
  if (g > 0 && C <= (1ll << 24) / static_cast<long long>(std::max<std::size_t>(L, 1))) {
    for (auto& cs : cost)
      for (auto& c : cs) c /= g;
  } else {
    const double step = cap / std::max(1, resolution);
    C = std::max(1, resolution);
    for (std::size_t i = 0; i < L; ++i)
      for (std::size_t k = 0; k < cost[i].size(); ++k)
        cost[i][k] = static_cast<long long>(std::ceil(layers[i].options[k].cost / step - 1e-9));
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
  if (bc < 0) return greedy(layers, budget, unit);  // rounding made every choice infeasible
  std::vector<std::size_t> ch(L);
  for (std::size_t i = L; i-- > 0;) {
    const int k = pick[i][static_cast<std::size_t>(bc)];
    ch[i] = static_cast<std::size_t>(k);
    bc -= cost[i][static_cast<std::size_t>(k)];
  }
  return finish(layers, ch, P, "dp");
}

}  // namespace

Allocation allocate_greedy(const std::vector<LayerSensitivity>& layers, double budget) {
  const double P = total_params(layers);
  return greedy(with_bit_costs(layers), budget * P, bits_unit(P));
}

Allocation allocate_dp(const std::vector<LayerSensitivity>& layers, double budget, int resolution) {
  const double P = total_params(layers);
  return knapsack(with_bit_costs(layers), budget * P, resolution, bits_unit(P));
}

Allocation allocate(const std::vector<LayerSensitivity>& layers, double budget, int resolution) {
  const double P = total_params(layers);
  return allocate_cost(with_bit_costs(layers), budget * P, bits_unit(P), resolution);
}

Allocation allocate_cost(const std::vector<LayerSensitivity>& layers, double budget, const CostUnit& unit, int resolution) {
  Allocation g = greedy(layers, budget, unit);
  Allocation d = knapsack(layers, budget, resolution, unit);
  return d.predicted_error < g.predicted_error ? d : g;
}

std::string Allocation::to_json(double budget) const {
  nlohmann::ordered_json j;
  j["budget_bits"] = budget;
  j["avg_bits"] = avg_bits;
  j["cost"] = cost;
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
    o.cost = o.bits * static_cast<double>(s.params);
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
