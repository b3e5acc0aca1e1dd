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

/// JSON text for --json output and reports: bytes that are not UTF-8 (a tensor or layer name read from a
/// file) become U+FFFD instead of an exception out of nlohmann's dump.
template <class Json>
std::string json_text(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

/// The --json output of a command: json_text with `"schema": 1` added where the command gives no
/// version of its own (every command's JSON data carries one, so readers can tell layouts apart).
template <class Json>
std::string json_output(Json j, int indent) {
  if (j.is_object() && !j.contains("schema")) j["schema"] = 1;
  return json_text(j, indent);
}

/// `s` with every byte that is not part of valid UTF-8, and every control character but newline and tab,
/// written as \xNN: for echoing names and messages that come from files or arguments to a terminal.
std::string printable(const std::string& s);

/// Adds `--input-shape DIMS` (repeatable, one per graph input in order, e.g. 1x3x960x960) to a subcommand,
/// for models whose input dimensions are symbolic; parse_input_shapes reads the collected texts
/// (qcast::Error naming the bad one).
CLI::Option* add_input_shape_option(CLI::App* sub, std::vector<std::string>& texts);
std::vector<std::vector<std::int64_t>> parse_input_shapes(const std::vector<std::string>& texts);

/// Adds the common `--threads N` flag (default: all cores) to a subcommand, writing into `threads`.
void add_threads_flag(CLI::App* sub, int& threads);

}  // namespace qcast::cli
