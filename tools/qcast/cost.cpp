// qcast cost: energy, cycles and per-level traffic of layers on an accelerator (Timeloop-compatible).
#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>

#include "command.hpp"
#include "cost_skips.hpp"
#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/hw.hpp"
#include "qcast/mapper.hpp"
#include "qcast/nn/recipe.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/sniff.hpp"
#include "qcast/progress.hpp"

namespace {

using namespace qcast::hw;

struct CostArgs {
  std::string arch, ert, table = "horowitz", problem, model, base_model, recipe, weights, acts, accumulator, map, search, save_map,
      constraints, mapper, layer, skips;
  std::vector<std::string> input_shapes;  // --input-shape, one per ONNX graph input
  bool json = false;
  int threads = 1;
  std::uint64_t seed = 1;
  double time_limit = 0;
  std::int64_t samples = 8000;
  int refine = 1000;
};

// Bytes moved at a level: reads + fills + updates of every data space, all utilized instances (at the
// recipe's widths: partial sums at the accumulator's, final outputs at the outputs' format).
double traffic_bytes(const Evaluation& ev, const Problem& p, const Architecture&, const Precision&, int i) {
  double b = 0;
  for (size_t s = 0; s < p.data_spaces.size(); ++s) b += ev.levels[i].ds[s].traffic_bits;
  return b / 8.0 * static_cast<double>(ev.levels[i].utilized_instances);
}

nlohmann::json mac_json(const Precision& prec) {
  const MacCost c = mac_cost(prec.weights, prec.activations, prec.accumulator_format());
  return {{"accumulator", c.accumulator}, {"block", c.block}, {"fixed_point_block", c.fixed_point_block},
          {"multiply_pj", c.multiply}, {"align_pj", c.align}, {"accumulate_pj", c.accumulate},
          {"scale_pj", c.scale}, {"lookup_pj", c.lookup}, {"total_pj", c.total()}};
}

std::string shape_of(const Problem& p) {
  std::string s;
  for (size_t d = 0; d < p.dims.size(); ++d) s += (d ? " " : "") + p.dims[d] + "=" + std::to_string(p.bounds[d]);
  return s;
}

std::string fmt(double v, int prec = 2) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << v;
  return o.str();
}

struct LayerResult {
  std::string name;
  Precision prec;  // the layer's formats (empty: each level's datawidth)
  Problem problem;
  Mapping mapping;
  Evaluation ev;
  SearchResult search;
  bool searched = false;
};

nlohmann::json layer_json(const LayerResult& r, const Architecture& a) {
  const Problem& p = r.problem;
  const Precision& prec = r.prec;
  nlohmann::json j;
  j["name"] = r.name;
  if (!prec.empty())
    j["precision"] = {{"weights", prec.weights}, {"activations", prec.activations}, {"weight_bits", prec.bits(Role::Weights)},
                      {"activation_bits", prec.bits(Role::Inputs)}, {"mac", mac_json(prec)}};
  nlohmann::json shape = nlohmann::json::object();
  for (size_t d = 0; d < p.dims.size(); ++d) shape[p.dims[d]] = p.bounds[d];
  j["shape"] = shape;
  j["computes"] = r.ev.computes;
  j["cycles"] = r.ev.cycles;
  j["energy_pj"] = r.ev.energy_pj;
  j["pj_per_compute"] = r.ev.energy_pj / static_cast<double>(r.ev.computes);
  j["utilization"] = r.ev.utilization;
  nlohmann::json levels = nlohmann::json::array();
  for (int i = static_cast<int>(a.levels.size()) - 1; i >= 0; --i) {
    nlohmann::json l;
    l["name"] = a.levels[i].name;
    if (a.levels[i].implied) l["implied"] = true;
    l["energy_pj"] = r.ev.levels[i].energy_pj;
    l["fj_per_compute"] = r.ev.levels[i].energy_pj * 1000.0 / static_cast<double>(r.ev.computes);
    l["utilized_instances"] = r.ev.levels[i].utilized_instances;
    l["traffic_bytes"] = traffic_bytes(r.ev, p, a, prec, i);
    nlohmann::json dss = nlohmann::json::object();
    for (size_t s = 0; s < p.data_spaces.size(); ++s) {
      if (!r.mapping.levels[i].keep[s]) continue;
      const auto& st = r.ev.levels[i].ds[s];
      dss[p.data_spaces[s].name] = {{"reads", st.reads},
                                    {"fills", st.fills},
                                    {"updates", st.updates},
                                    {"utilized_capacity", st.utilized_capacity},
                                    {"energy_pj", st.energy_pj}};
    }
    l["data_spaces"] = dss;
    levels.push_back(l);
  }
  levels.push_back({{"name", a.arith.name},
                    {"energy_pj", r.ev.mac_energy_pj},
                    {"fj_per_compute", r.ev.mac_energy_pj * 1000.0 / static_cast<double>(r.ev.computes)},
                    {"utilized_instances", r.ev.mac_instances_used},
                    {"traffic_bytes", 0},
                    {"data_spaces", nlohmann::json::object()}});
  j["levels"] = levels;
  j["mapping"] = r.mapping.to_yaml(p, a);
  j["loop_nest"] = r.mapping.loop_nest(p, a);
  if (r.searched)
    j["search"] = {{"evaluated", r.search.evaluated}, {"valid", r.search.valid}, {"seconds", r.search.seconds},
                   {"exhaustive", r.search.exhaustive}, {"timed_out", r.search.timed_out}};
  return j;
}

// "weights W, activations A, accumulator X, pJ per MAC Y".
std::string formats_line(const Precision& prec) {
  const MacCost c = mac_cost(prec.weights, prec.activations, prec.accumulator_format());
  return "weights " + prec.weights + ", activations " + prec.activations + ", accumulator " + c.accumulator + ", pJ per MAC " +
         fmt(c.total(), 4);
}

void print_layer(std::ostream& o, const LayerResult& r, const Architecture& a) {
  const Problem& p = r.problem;
  const Precision& prec = r.prec;
  const auto& ev = r.ev;
  const double C = static_cast<double>(ev.computes);
  o << "== " << r.name << "  [" << shape_of(p) << "]\n";
  if (!prec.empty()) o << "   formats: " << formats_line(prec) << "\n";
  o << "   computes " << ev.computes << ", cycles " << ev.cycles << ", utilization " << fmt(100 * ev.utilization, 1)
    << "%, energy " << fmt(ev.energy_pj) << " pJ (" << fmt(ev.energy_pj / C, 3) << " pJ/compute)";
  if (r.searched)
    o << "\n   search: " << r.search.evaluated << " mappings evaluated (" << r.search.valid << " valid) in "
      << fmt(r.search.seconds, 3) << " s" << (r.search.exhaustive ? ", exhaustive" : "")
      << (r.search.timed_out ? ", stopped by the time limit" : "");
  o << "\n";
  o << "   " << std::left << std::setw(16) << "level" << std::right << std::setw(14) << "energy pJ" << std::setw(12)
    << "fJ/compute" << std::setw(14) << "traffic B";
  for (auto& ds : p.data_spaces) o << "  " << std::setw(26) << (ds.name + " r/f/u");
  o << "\n";
  for (int i = static_cast<int>(a.levels.size()) - 1; i >= 0; --i) {
    o << "   " << std::left << std::setw(16) << a.levels[i].name << std::right << std::setw(14) << fmt(ev.levels[i].energy_pj)
      << std::setw(12) << fmt(ev.levels[i].energy_pj * 1000 / C) << std::setw(14) << fmt(traffic_bytes(ev, p, a, prec, i), 0);
    for (size_t s = 0; s < p.data_spaces.size(); ++s) {
      const auto& st = ev.levels[i].ds[s];
      std::string cell = r.mapping.levels[i].keep[s]
                             ? std::to_string(st.reads) + "/" + std::to_string(st.fills) + "/" + std::to_string(st.updates)
                             : "bypass";
      o << "  " << std::setw(26) << cell;
    }
    o << "\n";
  }
  o << "   " << std::left << std::setw(16) << a.arith.name << std::right << std::setw(14) << fmt(ev.mac_energy_pj)
    << std::setw(12) << fmt(ev.mac_energy_pj * 1000 / C) << "\n";
  o << "   mapping:\n";
  std::istringstream nest(r.mapping.loop_nest(p, a));
  for (std::string line; std::getline(nest, line);) o << "     " << line << "\n";
}

// Layers by energy, largest first (ties: model order): where the joules of a model go.
std::vector<std::size_t> by_energy(const std::vector<LayerResult>& results) {
  std::vector<std::size_t> idx(results.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return results[a].ev.energy_pj > results[b].ev.energy_pj; });
  return idx;
}

nlohmann::json ranking_json(const std::vector<LayerResult>& results, double energy, std::int64_t cycles) {
  nlohmann::json r = nlohmann::json::array();
  for (std::size_t i : by_energy(results)) {
    const auto& ev = results[i].ev;
    r.push_back({{"layer", results[i].name}, {"energy_pj", ev.energy_pj}, {"energy_share", energy > 0 ? ev.energy_pj / energy : 0.0},
                 {"cycles", ev.cycles}, {"cycles_share", cycles > 0 ? static_cast<double>(ev.cycles) / static_cast<double>(cycles) : 0.0}});
  }
  return r;
}

void print_ranking(std::ostream& o, const std::vector<LayerResult>& results, double energy, std::int64_t cycles) {
  o << "   layers by energy:\n   " << std::left << std::setw(36) << "layer" << std::right << std::setw(16) << "energy pJ" << std::setw(9)
    << "share" << std::setw(14) << "cycles" << std::setw(9) << "share" << "\n";
  for (std::size_t i : by_energy(results)) {
    const auto& ev = results[i].ev;
    o << "   " << std::left << std::setw(36) << qcast::cli::printable(results[i].name) << std::right << std::setw(16) << fmt(ev.energy_pj)
      << std::setw(8) << fmt(energy > 0 ? 100 * ev.energy_pj / energy : 0, 1) << "%" << std::setw(14) << ev.cycles << std::setw(8)
      << fmt(cycles > 0 ? 100.0 * static_cast<double>(ev.cycles) / static_cast<double>(cycles) : 0, 1) << "%\n";
  }
}

void run_cost(const CostArgs& args) {
  if (args.problem.empty() == args.model.empty()) throw qcast::Error("give exactly one of --problem and --model");
  if (!args.map.empty() && !args.search.empty()) throw qcast::Error("give at most one of --map and --search");
  if (!args.map.empty() && !args.model.empty()) throw qcast::Error("--map applies to a single --problem, not a --model");
  if (!args.layer.empty() && args.model.empty()) throw qcast::Error("--layer picks layers of a --model");
  if (!args.input_shapes.empty() && args.model.empty()) throw qcast::Error("--input-shape applies to the layers of an ONNX --model");
  const auto input_shapes = qcast::cli::parse_input_shapes(args.input_shapes);  // checked before any work
  if (!args.save_map.empty() && args.problem.empty())
    throw qcast::Error("--save-map applies to a single --problem (a model's mappings are in its --json output)");
  if (!args.base_model.empty() && args.model.empty()) throw qcast::Error("--base-model applies to a --model that qcast quantize wrote");
  if (!args.skips.empty() && (args.model.empty() || !args.layer.empty()))
    throw qcast::Error("--skips reports the skip connections of a whole --model (without --layer)");
  const SkipMode skip_mode = args.skips.empty() ? SkipMode::Keep : parse_skip_mode(args.skips);
  Architecture arch = Architecture::from_yaml_file(args.arch);
  // The recipe, read as eval reads it: a quantize output's own (the formats each layer got, mixed
  // choices included), else --recipe (a format name or a recipe file) with --weights / --acts over its
  // top level. None at all: each level's datawidth (Timeloop's behaviour).
  std::optional<qcast::nn::Recipe> recipe;
  std::string model = args.model;
  if (!model.empty() && qcast::sniff_model_file(model) == qcast::FileKind::QcastQuantized) {
    if (!args.recipe.empty() || !args.weights.empty() || !args.acts.empty())
      throw qcast::Error(model + " is a quantized model with its own recipe; --recipe/--weights/--acts do not apply "
                         "(cost its base model with them to try other formats)");
    const qcast::ptq::QuantizedFileInfo info = qcast::ptq::read_quantized_info(model, args.base_model);
    model = info.base_model;
    recipe = info.recipe;
  } else {
    if (!args.base_model.empty()) throw qcast::Error("--base-model applies to a --model that qcast quantize wrote");
    if (!args.recipe.empty()) recipe = cost_recipe(args.recipe);
    for (auto [flag, value, field] : {std::tuple{"--weights", &args.weights, &qcast::nn::Recipe::weights},
                                      std::tuple{"--acts", &args.acts, &qcast::nn::Recipe::acts}}) {
      if (value->empty()) continue;
      try {
        bits_per_element(*value);
      } catch (const qcast::Error& e) {
        throw qcast::Error(std::string(flag) + ": " + e.what());
      }
      if (!recipe) recipe.emplace();
      (*recipe).*field = *value;
    }
  }
  if (!args.accumulator.empty()) {
    if (!recipe) throw qcast::Error("--accumulator needs number formats (--recipe, --weights / --acts): the MAC model works on them");
    qcast::nn::check_accumulator_name(args.accumulator, "--accumulator");
    recipe->accumulator = args.accumulator;
  }
  auto precision_of = [&](const std::string& layer) { return recipe ? Precision::for_layer(*recipe, layer) : Precision{}; };
  const Precision prec = precision_of("");  // the recipe's top level
  {
    double wb = prec.empty() ? (arch.arith.datawidth ? arch.arith.datawidth : 8) : prec.bits(Role::Weights);
    double ab = prec.empty() ? wb : prec.bits(Role::Inputs);
    arch.apply_builtin(args.table, wb, ab);
  }
  if (!args.ert.empty()) arch.apply_ert_file(args.ert);
  std::vector<std::string> notes;
  if (!args.constraints.empty())
    for (auto& n : arch.apply_constraints_file(args.constraints)) notes.push_back(n);
  MapperSettings ms;
  if (!args.mapper.empty()) ms = read_mapper_yaml_file(args.mapper);
  for (auto& n : ms.notes) notes.push_back(n);
  if (!args.map.empty() && (!args.mapper.empty() || !args.constraints.empty()))
    notes.push_back("--mapper / --constraints apply to the search; the --map mapping is evaluated as given");
  for (auto& n : notes) std::cerr << "note: " << n << "\n";

  if (!args.skips.empty() && qcast::sniff_model_file(model) != qcast::FileKind::Onnx)  // before any mapping
    throw qcast::Error("--skips needs an ONNX model (its graph shows where residual tensors fork and join): " + model);
  std::vector<std::pair<std::string, Problem>> problems;
  std::vector<std::string> skipped;
  std::vector<LayerShape> model_layers;
  if (!args.problem.empty()) {
    Problem p = Problem::from_yaml_file(args.problem);
    problems.emplace_back(p.name.empty() ? "problem" : p.name, p);
  } else {
    std::vector<std::string> names;
    model_layers = model_layer_shapes(model, 1, input_shapes);
    for (auto& l : model_layers) {
      names.push_back(l.name);
      if (!args.layer.empty() && !qcast::nn::glob_match(args.layer, l.name)) continue;
      if (!layer_has_macs(l)) {
        skipped.push_back(l.name + " (" + l.op + ")");
        continue;
      }
      problems.emplace_back(l.name, layer_problem(l));
    }
    if (problems.empty() && !args.layer.empty()) {
      std::string list;
      for (auto& n : names) list += " " + n;
      throw qcast::Error("--layer '" + args.layer + "' matches no layer with MACs of " + args.model + "; its layers are:" + list);
    }
    if (problems.empty()) throw qcast::Error(args.model + ": no layer with MACs (conv, gemm, matmul)");
  }
  SearchOptions so;
  so.objective = !args.search.empty() ? parse_objective(args.search) : ms.has_objective ? ms.objective : Objective::Energy;
  so.seed = args.seed;
  so.threads = args.threads;
  so.time_limit_s = args.time_limit;
  so.samples = args.samples;
  so.refine_steps = args.refine;

  std::vector<LayerResult> results;
  qcast::Progress progress("mapping layers", static_cast<std::int64_t>(problems.size()), args.map.empty() && problems.size() > 1);
  for (auto& [name, p] : problems) {
    LayerResult r;
    r.name = name;
    r.prec = precision_of(name);
    r.problem = p;
    if (!args.map.empty()) {
      r.mapping = Mapping::from_yaml_file(args.map, p, arch);
      r.ev = evaluate(p, arch, r.mapping, r.prec);
      if (!r.ev.valid) throw qcast::Error(args.map + ": invalid mapping: " + r.ev.reason);
    } else {
      r.search = search_mapping(p, arch, r.prec, so);
      r.mapping = r.search.mapping;
      r.ev = r.search.eval;
      r.searched = true;
    }
    results.push_back(std::move(r));
    progress.advance();
  }
  progress.finish();

  if (!args.save_map.empty()) {
    const std::string y = results[0].mapping.to_yaml(results[0].problem, arch);
    qcast::write_file_atomic(args.save_map, [&](int fd) { qcast::write_all(fd, y.data(), y.size(), args.save_map); });
  }

  // Totals.
  const int L = static_cast<int>(arch.levels.size());
  std::int64_t computes = 0, cycles = 0;
  double energy = 0, mac = 0;
  std::vector<double> lvl_e(L, 0), lvl_t(L, 0);
  for (auto& r : results) {
    computes += r.ev.computes;
    cycles += r.ev.cycles;
    energy += r.ev.energy_pj;
    mac += r.ev.mac_energy_pj;
    for (int i = 0; i < L; ++i) {
      lvl_e[i] += r.ev.levels[i].energy_pj;
      lvl_t[i] += traffic_bytes(r.ev, r.problem, arch, r.prec, i);
    }
  }
  // Skip connections priced on this architecture (before any output, so a non-ONNX model fails cleanly).
  nlohmann::json skip_json;
  if (!args.skips.empty())
    skip_json = qcast::cli::skip_report(model, skip_mode, arch, model_layers, recipe ? &*recipe : nullptr, lvl_t[L - 1], input_shapes);
  if (args.json) {
    nlohmann::json j;
    j["schema"] = 1;
    j["architecture"] = args.arch;
    j["recipe"] = prec.empty() ? nlohmann::json(nullptr)
                               : nlohmann::json{{"weights", prec.weights}, {"activations", prec.activations},
                                                {"weight_bits", prec.bits(Role::Weights)}, {"activation_bits", prec.bits(Role::Inputs)},
                                                {"output_bits", prec.bits(Role::Outputs)}, {"partial_sum_bits", prec.psum_bits()},
                                                {"mac", mac_json(prec)}};
    nlohmann::json layers = nlohmann::json::array();
    for (auto& r : results) layers.push_back(layer_json(r, arch));
    j["layers"] = layers;
    nlohmann::json tl = nlohmann::json::array();
    for (int i = L - 1; i >= 0; --i)
      tl.push_back({{"name", arch.levels[i].name}, {"energy_pj", lvl_e[i]}, {"traffic_bytes", lvl_t[i]}});
    tl.push_back({{"name", arch.arith.name}, {"energy_pj", mac}, {"traffic_bytes", 0}});
    j["total"] = {{"computes", computes}, {"cycles", cycles}, {"energy_pj", energy}, {"levels", tl}};
    j["skipped"] = skipped;
    j["ranking"] = ranking_json(results, energy, cycles);
    if (!skip_json.is_null()) j["skip_connections"] = skip_json;
    std::cout << qcast::cli::json_text(j, 2) << "\n";
    return;
  }
  for (auto& r : results) print_layer(std::cout, r, arch);
  // One line of formats where every layer has the same; else how many layers have each.
  std::vector<std::pair<std::string, int>> mixes;
  for (auto& r : results) {
    const std::string k = r.prec.weights + "/" + r.prec.activations;
    auto it = std::find_if(mixes.begin(), mixes.end(), [&](auto& m) { return m.first == k; });
    if (it == mixes.end()) mixes.emplace_back(k, 1);
    else ++it->second;
  }
  const bool uniform = mixes.size() == 1;
  std::cout << "== total (" << results.size() << " layer" << (results.size() == 1 ? "" : "s");
  if (!prec.empty() && uniform) std::cout << ", weights " << results[0].prec.weights << " activations " << results[0].prec.activations;
  if (!prec.empty() && !uniform) {
    std::cout << ", per-layer formats (weights/activations):";
    for (auto& [k, n] : mixes) std::cout << " " << k << " x" << n;
  }
  std::cout << ")\n";
  if (!prec.empty() && uniform) {
    const Precision& lp = results[0].prec;
    const MacCost c = mac_cost(lp.weights, lp.activations, lp.accumulator_format());
    std::cout << "   MAC model: accumulator " << c.accumulator << ", partial sums " << fmt(lp.psum_bits(), 3)
              << " bits; pJ per MAC " << fmt(c.total(), 4) << " = multiply " << fmt(c.multiply, 4) << " + align "
              << fmt(c.align, 4) << " + accumulate " << fmt(c.accumulate, 4) << " + scale " << fmt(c.scale, 4)
              << " + lookup " << fmt(c.lookup, 4);
    if (c.block) std::cout << " (block sums of " << c.block << (c.fixed_point_block ? ", fixed point" : "") << ")";
    if (arch.arith.energy.source == "ERT") std::cout << "; scaled to the ERT's int" << (arch.arith.datawidth ? arch.arith.datawidth : 8) << " MAC";
    std::cout << "\n";
  }
  std::cout << "   computes " << computes << ", cycles " << cycles << ", energy " << fmt(energy) << " pJ ("
            << fmt(energy / 1e6, 4) << " uJ, " << fmt(energy / static_cast<double>(computes), 3) << " pJ/compute)\n";
  std::cout << "   " << std::left << std::setw(16) << "level" << std::right << std::setw(16) << "energy pJ" << std::setw(18)
            << "traffic bytes" << "\n";
  for (int i = L - 1; i >= 0; --i)
    std::cout << "   " << std::left << std::setw(16) << arch.levels[i].name << std::right << std::setw(16) << fmt(lvl_e[i])
              << std::setw(18) << fmt(lvl_t[i], 0) << "\n";
  std::cout << "   " << std::left << std::setw(16) << arch.arith.name << std::right << std::setw(16) << fmt(mac) << "\n";
  if (results.size() > 1) print_ranking(std::cout, results, energy, cycles);
  if (!skipped.empty()) {
    std::cout << "   skipped (no MACs):";
    for (auto& s : skipped) std::cout << " " << s;
    std::cout << "\n";
  }
  if (!skip_json.is_null()) qcast::cli::print_skip_report(std::cout, skip_json);
}

qcast::cli::Registrar reg("cost", [](CLI::App& root) {
  auto* sub = root.add_subcommand("cost", "energy, cycles and per-level traffic of layers on an accelerator (Timeloop-compatible)");
  auto args = std::make_shared<CostArgs>();
  sub->add_option("--arch", args->arch, "architecture YAML (Timeloop v0.4 nodes)")->required()->check(CLI::ExistingFile);
  sub->add_option("--ert", args->ert, "Accelergy energy reference table (ERT) YAML; default: built-in table")->check(CLI::ExistingFile);
  sub->add_option("--table", args->table, "built-in energy table when no ERT: horowitz|eyeriss")->capture_default_str();
  sub->add_option("--problem", args->problem, "problem YAML (one layer, Timeloop format)")->check(CLI::ExistingFile);
  sub->add_option("--model", args->model,
                  "a model (ONNX, llama2.c, HF directory, GGUF, a qcast quantize output; recognised by content) or the layer JSON of "
                  "`qcast inspect --json`")
      ->check(CLI::ExistingPath);
  sub->add_option("--skips", args->skips,
                  "ONNX --model: report its skip connections as buffers (Tailor): keep | remove | shorten (what-if: every skip removed, or "
                  "each spanning only its branch's last layer); per skip the held tensor, a layer-pipelined design's FIFO, and "
                  "whether a layer-by-layer PE array's on-chip buffer holds it or it spills to DRAM (docs/cost.md)");
  qcast::cli::add_input_shape_option(sub, args->input_shapes);
  sub->add_option("--layer", args->layer, "with --model: only the layers whose names match this glob (names as inspect / eval / recipes use them)");
  sub->add_option("--base-model", args->base_model, "for a qcast quantize output: the base model, if it moved since quantize wrote the file");
  sub->add_option("--recipe", args->recipe,
                  "number formats: a name for both operands (int8, mxfp4, int4@fp16/g32, ...) or the recipe file eval and quantize take "
                  "(per-layer overrides and skips apply per layer; plus outputs, accumulator, partial_sums); a quantize output has its own");
  sub->add_option("--weights", args->weights, "weight format of every layer (over the recipe's top level, as in eval)");
  sub->add_option("--acts", args->acts, "activation format of every layer (over the recipe's top level, as in eval)");
  sub->add_option("--accumulator", args->accumulator,
                  "the MAC's accumulator (fp32, fp16, bf16, int32, int16, ...; default int32 for plain int formats, else fp32); overrides the recipe's");
  sub->add_option("--map", args->map, "mapping YAML (Timeloop format) for --problem")->check(CLI::ExistingFile);
  sub->add_option("--constraints", args->constraints, "Timeloop mapspace-constraints YAML for the search (added to the architecture's own)")
      ->check(CLI::ExistingFile);
  sub->add_option("--mapper", args->mapper, "Timeloop mapper YAML: its first optimization metric is the objective unless --search is given")
      ->check(CLI::ExistingFile);
  sub->add_option("--search", args->search, "search a mapping minimising energy|delay|edp (default when no --map: energy)");
  sub->add_option("--save-map", args->save_map, "write the (searched) mapping of --problem as map YAML, reusable with --map");
  qcast::cli::add_seed_option(sub, args->seed, "mapper seed")->capture_default_str();
  sub->add_option("--samples", args->samples, "mapper random samples per layer")->capture_default_str()->check(CLI::Range(1, 100000000));
  sub->add_option("--refine", args->refine, "mapper local-search moves per start")->capture_default_str()->check(CLI::Range(0, 100000000));
  sub->add_option("--time-limit", args->time_limit, "mapper time limit per layer in seconds (0 = none)")->check(qcast::cli::finite_range(0, 1e7))->capture_default_str();
  sub->add_flag("--json", args->json, "print JSON");
  qcast::cli::add_threads_flag(sub, args->threads);
  sub->callback([args] { run_cost(*args); });
});

}  // namespace
