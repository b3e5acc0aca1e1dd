// Mixed precision: per-layer format choice under a budget.
//   minimise  sum_l err_l(f_l)   subject to   sum_l cost_l(f_l) <= budget
// with cost_l(f) = bits(f) * params_l for an average bits-per-weight budget (budget = bits * sum_l params_l),
// or the layer's predicted energy / cycles on an accelerator (mixed@energy=, mixed@cycles=).
// err_l(f) is a per-layer sensitivity (output error, or loss change, of layer l quantized with f).
// Two solvers: greedy by marginal gain per bit (from the cheapest choice, repeatedly take the upgrade
// with the largest error decrease per extra bit that still fits), and an exact knapsack DP on the cost
// rounded up to `dp_resolution` units; allocate() returns the better feasible one.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qcast/format.hpp"

namespace qcast::ptq {

struct FormatOption {
  std::string format;  ///< format name
  double bits = 0;     ///< bits per weight including scales (bits_per_weight())
  double error = 0;    ///< predicted loss contribution of the layer in this format
  double cost = 0;     ///< what the budget counts: bits x params, or pJ / cycles on an accelerator
};

struct LayerSensitivity {
  std::string name;
  std::int64_t params = 0;
  std::vector<FormatOption> options;
};

struct Allocation {
  std::vector<std::pair<std::string, std::string>> recipe;  ///< layer -> format, in input order
  double avg_bits = 0;         ///< achieved average bits per weight
  double cost = 0;             ///< the chosen options' total cost
  double predicted_error = 0;  ///< sum of the chosen errors
  std::string solver;          ///< "greedy" or "dp"
  /// {"budget_bits":..,"avg_bits":..,"predicted_error":..,"solver":..,"layers":{"name":"format",..}}
  std::string to_json(double budget_bits) const;
};

/// A total cost as text, for errors ("4.250000 bits/weight", "12.3 uJ").
using CostUnit = std::function<std::string(double)>;

/// The general form: each option's `cost` against a total `budget` of the same unit. Throws qcast::Error
/// when even the cheapest choice of every layer exceeds the budget.
Allocation allocate_cost(const std::vector<LayerSensitivity>& layers, double budget, const CostUnit& unit, int dp_resolution = 4096);
/// Bit budgets (average bits per weight; costs = bits x params, set here). Throws qcast::Error when even
/// the cheapest choice of every layer exceeds the budget.
Allocation allocate(const std::vector<LayerSensitivity>& layers, double budget_bits, int dp_resolution = 4096);
Allocation allocate_greedy(const std::vector<LayerSensitivity>& layers, double budget_bits);
Allocation allocate_dp(const std::vector<LayerSensitivity>& layers, double budget_bits, int dp_resolution = 4096);

/// Sensitivity of one layer W [rows, cols] to each format: output-error proxy tr((W - Q) H (W - Q)^T) of
/// the RTN-quantized weights (H = HessianAccumulator::H() or any input second-moment matrix;
/// nullptr = identity, i.e. weight MSE), with bits from bits_per_weight().
LayerSensitivity layer_sensitivity(const std::string& name, const float* W, std::int64_t rows, std::int64_t cols,
                                   const float* H, const std::vector<std::string>& formats);

}  // namespace qcast::ptq
