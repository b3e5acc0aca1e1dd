// Subcommand registration: each tools/qcast/<name>.cpp defines one static Registrar that adds its
// subcommand to the root CLI11 app. Handlers throw qcast::Error for bad input; main maps it to exit 2.
#pragma once
#include <CLI/CLI.hpp>
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

/// Adds the common `--threads N` flag (default: all cores) to a subcommand, writing into `threads`.
void add_threads_flag(CLI::App* sub, int& threads);

}  // namespace qcast::cli
