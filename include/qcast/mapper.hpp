// qcast::hw mapper — searches loop orders, tile factors (temporal and spatial) and bypass choices for
// the mapping of one layer that minimises energy, delay or energy-delay product.
//
// Small spaces are enumerated exhaustively; large ones are sampled at random (capacity-aware) and the
// best samples refined by local search (moving a prime factor between levels, swapping loops, toggling
// a bypass). The work is split into fixed chunks, each with its own seed, so the result depends only
// on the seed and the budget, never on the thread count — unless the time limit stops the search first.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "qcast/hw.hpp"

namespace qcast::hw {

enum class Objective { Energy, Delay, EDP };
/// "energy" | "delay" | "edp"; throws qcast::Error otherwise.
Objective parse_objective(const std::string& s);
/// The number the search minimises (infinity for an invalid evaluation).
double objective_value(const Evaluation& e, Objective o);

/// What qcast takes from a Timeloop mapper YAML (`mapper: {optimization_metrics, num_threads, timeout,
/// victory_condition, algorithm, ...}`): the first optimization metric as the objective; the rest is
/// Timeloop's own search budget, which qcast's mapper does not share (notes say what was ignored).
struct MapperSettings {
  bool has_objective = false;
  Objective objective = Objective::Energy;
  std::vector<std::string> notes;
};
MapperSettings read_mapper_yaml_text(const std::string& text, const std::string& source = "<mapper>");
MapperSettings read_mapper_yaml_file(const std::string& path);

struct SearchOptions {
  Objective objective = Objective::Energy;
  std::uint64_t seed = 1;
  int threads = 1;
  double time_limit_s = 0;            ///< 0 = no limit (the sample budget bounds the work)
  std::int64_t samples = 8000;        ///< random samples in the sampling phase
  std::int64_t exhaustive_limit = 20000;  ///< enumerate when the space has at most this many points
  int refine_starts = 16;             ///< best samples refined by local search
  int refine_steps = 1000;            ///< local-search moves tried per start
  bool search_bypass = true;          ///< also choose keep/bypass per inner level and data space
};

struct SearchResult {
  Mapping mapping;
  Evaluation eval;
  std::int64_t evaluated = 0, valid = 0;
  double seconds = 0;
  bool exhaustive = false, timed_out = false;
};

/// Finds a good valid mapping; throws qcast::Error when no valid mapping was found. The searches of
/// all three objectives share the samples and each refines its own best ones; the result is the best
/// of everything seen under `opt.objective`, so (same seed and budget, no time limit) an EDP search
/// is never worse in EDP than the energy or the delay search. The architecture's level constraints
/// (LevelConstraints) are honoured: keep / bypass, factors of 1, innermost loop orders.
SearchResult search_mapping(const Problem& p, const Architecture& a, const Precision& prec, const SearchOptions& opt);

/// One random mapping: prime factors of each bound dealt to random (temporal or spatial) slots,
/// spatial slots respecting the fanouts, random loop orders, and (when `bypass`) random bypass of
/// inner levels. It may exceed a capacity: check evaluate(...).valid.
Mapping random_mapping(const Problem& p, const Architecture& a, std::mt19937_64& rng, bool bypass = true);

/// The best (by `o`) of the first `n` random valid mappings from `seed` (up to 10000*n tries);
/// sets `found` to how many valid ones were seen.
Evaluation best_of_random(const Problem& p, const Architecture& a, const Precision& prec, std::int64_t n,
                          std::uint64_t seed, Objective o, std::int64_t* found = nullptr);

}  // namespace qcast::hw
