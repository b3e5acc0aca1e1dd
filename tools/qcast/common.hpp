// Small helpers shared by the CLI subcommands (flag parsing that maps to library types).
#pragma once
#include <string>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast::cli {

/// Options shared by cast / encode / stats: format, rounding, axis, seed, overflow, threads.
struct QuantFlags {
  std::string format;
  std::string round = "even";
  std::string overflow = "saturate";
  int axis = -1;
  std::uint64_t seed = 0;
  int threads = 1;
  QuantOptions options() const;
};

/// Registers --format/-f (bound to q.format, or, with `many`, repeatable into *many), --round, --axis,
/// --seed, --overflow and --threads.
void add_quant_flags(CLI::App* sub, QuantFlags& q, bool require_format = true, std::vector<std::string>* many = nullptr);

/// Shell-style glob match of a tensor name (nn::glob_match, as recipes match layers); an empty pattern matches everything.
bool name_matches(const std::string& pattern, const std::string& name);

}  // namespace qcast::cli
