// Subcommand registration: each tools/qcast/<name>.cpp defines one static Registrar that adds its
// subcommand to the root CLI11 app. Handlers throw qcast::Error for bad input; main maps it to exit 2.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace qcast::cli {

using Setup = std::function<void(CLI::App& root)>;

struct Registrar {
  Registrar(std::string name, Setup setup);
};

/// All registered setups, sorted by name (so `qcast --help` lists subcommands alphabetically).
std::vector<std::pair<std::string, Setup>>& registry();

/// A finite number (CLI11's own Range lets "nan" through, and "inf" is a number to it) in [lo, hi].
CLI::Validator finite_range(double lo, double hi);

/// A seed: a decimal unsigned 64-bit integer. CLI11's conversion saturates larger values to 2^64-1 and
/// wraps "-1" to it, silently; this refuses them.
CLI::Validator seed_check();

/// Adds `--seed` (an unsigned 64-bit integer, checked by seed_check) to a subcommand.
CLI::Option* add_seed_option(CLI::App* sub, std::uint64_t& seed, const std::string& description);

/// Adds the common `--threads N` flag (default: all cores) to a subcommand, writing into `threads`.
void add_threads_flag(CLI::App* sub, int& threads);

}  // namespace qcast::cli
