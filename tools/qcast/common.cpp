#include "command.hpp"
#include "common.hpp"
#include "qcast/error.hpp"
#include "qcast/nn/recipe.hpp"

namespace qcast::cli {

QuantOptions QuantFlags::options() const {
  QuantOptions o;
  o.round = parse_round_mode(round);
  if (overflow == "saturate") o.overflow = Overflow::Saturate;
  else if (overflow == "inf") o.overflow = Overflow::Inf;
  else throw Error("unknown --overflow '" + overflow + "' (saturate, inf)");
  o.axis = axis;
  o.seed = seed;
  o.threads = threads;
  return o;
}

void add_quant_flags(CLI::App* sub, QuantFlags& q, bool require_format, std::vector<std::string>* many) {
  const char* help = "number format: a name from `qcast formats` or ELEM@SCALE/b32/... (docs/formats.md)";
  auto* f = many ? sub->add_option("--format,-f", *many, std::string(help) + "; repeat for several")
                 : sub->add_option("--format,-f", q.format, help);
  if (require_format) f->required();
  sub->add_option("--round,-r", q.round, "rounding: even, away, zero, floor, ceil, stochastic")->capture_default_str();
  sub->add_option("--axis", q.axis, "block / channel axis when the format does not name one (default: last)")->capture_default_str();
  add_seed_option(sub, q.seed, "seed of stochastic rounding")->capture_default_str();
  sub->add_option("--overflow", q.overflow, "saturate (clamp to +-max, default) or inf (inf/NaN where representable)")->capture_default_str();
  add_threads_flag(sub, q.threads);
}

bool name_matches(const std::string& pattern, const std::string& name) {
  return pattern.empty() || nn::glob_match(pattern, name);
}

}  // namespace qcast::cli
