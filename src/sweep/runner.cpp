// qcast sweep: running one point (quantize, evaluate against the fp32 baseline, cost on the accelerator).
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/hw.hpp"
#include "qcast/nn/evaluate.hpp"
#include "qcast/ptq/common.hpp"
#include "qcast/ptq/method.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/sweep/sweep.hpp"

namespace qcast::sweep {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// The per-sample outcome of one evaluation: what the paired confidence interval needs.
struct EvalOutcome {
  std::string metric;
  double value = 0;
  std::int64_t samples = 0;
  std::vector<double> per;             ///< classifier: hit (0/1); LM: total NLL per story
  std::vector<std::int64_t> tokens;    ///< LM: predicted tokens per story
};

std::string quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@/._:,=+-") == std::string::npos) return s;
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

}  // namespace

struct Runner::Impl {
  const Spec& spec;
  int threads;
  std::mutex mu;
  std::map<int, EvalOutcome> baselines;                     // by model index
  std::map<int, std::vector<hw::LayerShape>> shapes;        // by model index
  std::map<std::string, hw::Architecture> archs;            // by arch index + formats
  struct Cached {
    hw::Evaluation ev;
    std::vector<std::string> level_names;
  };
  std::map<std::string, Cached> mapper_cache;               // by (shape, formats, arch, objective)
  std::int64_t runs = 0, hits = 0;

  Impl(const Spec& s, int t) : spec(s), threads(t) {}

  nn::Recipe recipe_of(const FormatSpec& f) const {
    nn::Recipe r;
    r.weights = f.weights;
    r.acts = f.acts;
    r.kv = f.kv;
    r.validate("sweep formats");
    return r;
  }

  EvalOutcome evaluate(const ModelSpec& ms, const ptq::Model& m) const {
    EvalOutcome o;
    const nn::DatasetSpec d = nn::parse_dataset_spec(ms.data);
    if (m.is_graph) {
      const nn::ClassifierEval r = nn::evaluate_classifier(m.graph, d, ms.limit, ms.batch, threads, ms.model);
      o.metric = "accuracy";
      o.value = r.accuracy();
      o.samples = r.samples;
      o.per.assign(r.hit.begin(), r.hit.end());
    } else {
      const auto stories = nn::eval_stories(d, ms.limit, ms.model);
      const nn::Tokenizer tok = nn::load_tokenizer_for(ms.model, ms.tokenizer, m.llama.cfg.vocab_size);
      const nn::PerplexityResult r = nn::perplexity(m.llama, tok, stories, threads, &o.per, &o.tokens);
      o.metric = "perplexity";
      o.value = r.perplexity();
      o.samples = r.samples;
    }
    return o;
  }

  const EvalOutcome& baseline(int mi) {
    {
      std::lock_guard<std::mutex> l(mu);
      auto it = baselines.find(mi);
      if (it != baselines.end()) return it->second;
    }
    const ModelSpec& ms = spec.models[static_cast<std::size_t>(mi)];
    ptq::Model m = ptq::load_model(ms.model);
    EvalOutcome o = evaluate(ms, m);
    std::lock_guard<std::mutex> l(mu);
    return baselines.emplace(mi, std::move(o)).first->second;
  }

  /// Delta against the baseline on the same samples and the half-width of its 95 % interval (normal
  /// approximation of the paired differences; perplexity: ratio estimator of the per-token NLL change,
  /// carried to perplexity by the delta method).
  static void compare(const EvalOutcome& q, const EvalOutcome& b, PointResult& r) {
    r.metric = q.metric;
    r.value = q.value;
    r.baseline = b.value;
    r.delta = q.value - b.value;
    r.samples = q.samples;
    const std::size_t n = q.per.size();
    if (n != b.per.size() || n < 2) {
      r.ci95 = 0;
      return;
    }
    if (q.metric == "accuracy") {
      double mean = 0;
      for (std::size_t i = 0; i < n; ++i) mean += q.per[i] - b.per[i];
      mean /= static_cast<double>(n);
      double ss = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double d = q.per[i] - b.per[i] - mean;
        ss += d * d;
      }
      r.ci95 = 1.959963984540054 * std::sqrt(ss / static_cast<double>(n - 1) / static_cast<double>(n));
    } else {
      double T = 0, D = 0;
      for (std::size_t i = 0; i < n; ++i) {
        T += static_cast<double>(q.tokens[i]);
        D += q.per[i] - b.per[i];
      }
      if (T <= 0) return;
      const double mean = D / T;
      double ss = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double e = q.per[i] - b.per[i] - mean * static_cast<double>(q.tokens[i]);
        ss += e * e;
      }
      const double se = std::sqrt(static_cast<double>(n) / static_cast<double>(n - 1) * ss) / T;
      r.ci95 = 1.959963984540054 * se * q.value;
    }
  }

  const std::vector<hw::LayerShape>& layers_of(int mi) {
    std::lock_guard<std::mutex> l(mu);
    auto it = shapes.find(mi);
    if (it != shapes.end()) return it->second;
    return shapes.emplace(mi, hw::model_layer_shapes(spec.models[static_cast<std::size_t>(mi)].model)).first->second;
  }

  const hw::Architecture& arch_of(int ai, const std::string& w, const std::string& a) {
    const std::string key = std::to_string(ai) + "|" + w + "|" + a;
    std::lock_guard<std::mutex> l(mu);
    auto it = archs.find(key);
    if (it != archs.end()) return it->second;
    const ArchSpec& as = spec.archs[static_cast<std::size_t>(ai)];
    hw::Architecture arch = hw::Architecture::from_yaml_file(as.arch);
    arch.apply_builtin(as.table, hw::bits_per_element(w), hw::bits_per_element(a));
    if (!as.ert.empty()) arch.apply_ert_file(as.ert);
    if (!as.constraints.empty()) arch.apply_constraints_file(as.constraints);
    return archs.emplace(key, std::move(arch)).first->second;
  }

  /// Energy, cycles and the per-layer / per-level breakdown of one inference (batch 1) on the arch.
  void cost(const Point& p, const nn::Recipe& recipe, PointResult& r) {
    const auto& layers = layers_of(p.model);
    const hw::Objective obj = hw::parse_objective(spec.objective);
    std::map<std::string, double> level_sum;
    std::vector<std::string> level_order;
    for (const auto& l : layers) {
      if (!hw::layer_has_macs(l)) continue;
      // The layer's formats as qcast cost reads the same recipe (overrides, skips, accumulator).
      const hw::Precision prec = hw::Precision::for_layer(recipe, l.name);
      const std::string &w = prec.weights, &a = prec.activations;
      const hw::Architecture& arch = arch_of(p.arch, w, a);
      const hw::Problem prob = hw::layer_problem(l);
      const std::string key = prob.key() + "|" + prec.key() + "|" + std::to_string(p.arch) + "|" + spec.objective;
      Cached c;
      bool found = false;
      {
        std::lock_guard<std::mutex> lk(mu);
        auto it = mapper_cache.find(key);
        if (it != mapper_cache.end()) {
          c = it->second;
          found = true;
          ++hits;
        }
      }
      if (!found) {
        hw::SearchOptions so;
        so.objective = obj;
        so.seed = spec.mapper.seed;
        so.threads = threads;
        so.samples = spec.mapper.samples;
        so.refine_steps = spec.mapper.refine;
        const hw::SearchResult sr = hw::search_mapping(prob, arch, prec, so);
        if (!sr.eval.valid) throw Error("layer " + l.name + ": no valid mapping found on " + spec.archs[static_cast<std::size_t>(p.arch)].name);
        c.ev = sr.eval;
        for (const auto& lv : arch.levels) c.level_names.push_back(lv.name);
        c.level_names.push_back(arch.arith.name);
        std::lock_guard<std::mutex> lk(mu);
        mapper_cache.emplace(key, c);
        ++runs;
      }
      LayerCost lc;
      lc.name = l.name;
      std::string shape;
      for (std::size_t d = 0; d < prob.dims.size(); ++d) shape += (d ? " " : "") + prob.dims[d] + "=" + std::to_string(prob.bounds[d]);
      lc.shape = shape;
      lc.weights = w;
      lc.acts = a;
      lc.computes = c.ev.computes;
      lc.cycles = c.ev.cycles;
      lc.energy_pj = c.ev.energy_pj;
      const int L = static_cast<int>(c.ev.levels.size());
      for (int i = L - 1; i >= 0; --i) lc.levels.push_back({c.level_names[static_cast<std::size_t>(i)], c.ev.levels[static_cast<std::size_t>(i)].energy_pj});
      lc.levels.push_back({c.level_names.back(), c.ev.mac_energy_pj});
      for (const auto& le : lc.levels) {
        if (!level_sum.count(le.name)) level_order.push_back(le.name);
        level_sum[le.name] += le.energy_pj;
      }
      r.energy_pj += lc.energy_pj;
      r.cycles += lc.cycles;
      r.computes += lc.computes;
      r.layers.push_back(std::move(lc));
    }
    if (r.layers.empty()) throw Error(spec.models[static_cast<std::size_t>(p.model)].model + ": no layer with MACs to cost");
    for (const auto& n : level_order) r.levels.push_back({n, level_sum[n]});
    r.edp = r.energy_pj * static_cast<double>(r.cycles);
  }

  // quantize's flags for a hardware budget (mixed@energy= / mixed@cycles=): the point's accelerator and mapper.
  std::string hardware_flags(const Point& p) const {
    const ptq::Method pm = ptq::parse_method(p.method);
    if (pm.name() != "mixed" || pm.budget == ptq::Method::Budget::Bits) return "";
    const ArchSpec& as = spec.archs[static_cast<std::size_t>(p.arch)];
    std::string f = " --arch " + quote(as.arch) + " --table " + as.table + " --cost-samples " + std::to_string(spec.mapper.samples) +
                    " --cost-refine " + std::to_string(spec.mapper.refine);
    if (!as.ert.empty()) f += " --ert " + quote(as.ert);
    if (!as.constraints.empty()) f += " --constraints " + quote(as.constraints);
    return f;
  }

  std::string command(const Point& p) const {
    const ModelSpec& ms = spec.models[static_cast<std::size_t>(p.model)];
    const FormatSpec& f = spec.formats[static_cast<std::size_t>(p.format)];
    const ArchSpec& as = spec.archs[static_cast<std::size_t>(p.arch)];
    std::string fl;
    if (!f.weights.empty()) fl += " --weights " + quote(f.weights);
    if (!f.acts.empty()) fl += " --acts " + quote(f.acts);
    if (!f.kv.empty()) fl += " --kv " + quote(f.kv);
    std::string tok = ms.tokenizer.empty() ? "" : " --tokenizer " + quote(ms.tokenizer);
    std::string lim = ms.limit > 0 ? " --limit " + std::to_string(ms.limit) : "";
    std::string c;
    if (p.method == "none") c = "qcast eval " + quote(ms.model) + " --data " + quote(ms.data) + fl + lim + tok;
    else
      c = "qcast quantize " + quote(ms.model) + fl + " --method " + quote(p.method) + hardware_flags(p) + " --calib " + quote(ms.calib.data) +
          " --calib-samples " + std::to_string(ms.calib.samples) + " --calib-offset " + std::to_string(ms.calib.offset) +
          " --calib-tokens " + std::to_string(ms.calib.tokens) + tok + " --out q.safetensors && qcast eval q.safetensors --data " +
          quote(ms.data) + lim + tok;
    // cost takes quantize's output with its recipe, or the model with eval's weight / activation flags (the
    // KV cache is not costed: the layer problems are the linear layers).
    std::string cost_model = " --model q.safetensors";
    if (p.method == "none") {
      cost_model = " --model " + quote(ms.model);
      if (!f.weights.empty()) cost_model += " --weights " + quote(f.weights);
      if (!f.acts.empty()) cost_model += " --acts " + quote(f.acts);
    }
    c += " && qcast cost --arch " + quote(as.arch) + (as.ert.empty() ? " --table " + as.table : " --ert " + quote(as.ert)) +
         (as.constraints.empty() ? "" : " --constraints " + quote(as.constraints)) + cost_model + " --search " + spec.objective +
         " --samples " + std::to_string(spec.mapper.samples) + " --refine " + std::to_string(spec.mapper.refine) + " --seed " +
         std::to_string(spec.mapper.seed);
    return c;
  }

  PointResult run(const Point& p) {
    PointResult r;
    const auto t0 = Clock::now();
    try {
      const ModelSpec& ms = spec.models[static_cast<std::size_t>(p.model)];
      const FormatSpec& f = spec.formats[static_cast<std::size_t>(p.format)];
      r.command = command(p);
      const nn::Recipe recipe = recipe_of(f);
      const EvalOutcome& base = baseline(p.model);
      auto t = Clock::now();
      ptq::Model m = ptq::load_model(ms.model);
      std::vector<std::pair<double, double>> bits;  // (elements, bits per element) per weight layer
      nn::Recipe applied = recipe;
      if (p.method == "none") {
        (void)m.apply_recipe(recipe, threads);
      } else {
        ptq::QuantizeOptions o;
        o.method = p.method;
        o.recipe = recipe;
        o.calib.spec = ms.calib.data;
        o.calib.tokenizer = ms.tokenizer;
        o.calib.samples = ms.calib.samples;
        o.calib.offset = ms.calib.offset;
        o.calib.max_tokens = ms.calib.tokens;
        // Quantization runs on one thread: its BLAS calls (calibration forward passes, GPTQ's Hessian
        // updates) give thread-count-dependent sums with OpenBLAS on more than one thread, and in a
        // long-lived process the LLaMA forward's one-time switch to a single BLAS thread does not cover
        // them (a one-shot `qcast quantize` happens to get it mid-way). Evaluation and the mapper use
        // --threads (both are thread-count independent).
        o.threads = 1;
        o.progress = false;
        // mixed@energy= / mixed@cycles= price the layers on this point's accelerator, as the sweep costs it.
        const ArchSpec& as = spec.archs[static_cast<std::size_t>(p.arch)];
        o.hardware = {as.arch, as.table, as.ert, as.constraints, spec.mapper.samples, spec.mapper.refine, spec.mapper.seed};
        const ptq::QuantizeResult q = ptq::quantize_model(m, o);
        applied = q.recipe;
        for (const auto& L : q.layers) r.layer_errors.emplace_back(L.name, L.rel_error);
        for (const auto& L : q.layers)
          bits.emplace_back(static_cast<double>(L.rows) * static_cast<double>(L.cols), ptq::bits_per_weight(L.q.format, L.rows, L.cols));
      }
      r.quant_s = since(t);
      t = Clock::now();
      compare(evaluate(ms, m), base, r);
      r.eval_s = since(t);
      t = Clock::now();
      cost(p, applied, r);
      r.cost_s = since(t);
      // Bits per weight and bytes of the weight layers (the layers the cost model counts): quantized layers
      // at their format's exact bits (scales and ragged last groups included), others at 32.
      double wsum = 0, bsum = 0;
      if (!bits.empty())
        for (auto [n, b] : bits) {
          wsum += n;
          bsum += n * b;
        }
      else
        for (const auto& l : layers_of(p.model)) {
          if (!hw::layer_has_macs(l)) continue;
          const hw::Problem prob = hw::layer_problem(l);
          const int wi = prob.data_space_index("Weights");
          const double n = static_cast<double>(prob.data_space_size(wi < 0 ? 0 : wi));
          wsum += n;
          bsum += 32 * n;
        }
      r.bits_per_weight = wsum > 0 ? bsum / wsum : 0;
      r.model_bytes = bsum / 8;
      r.ok = true;
    } catch (const std::bad_alloc&) {
      r = PointResult{};
      r.error = "out of memory";
    } catch (const std::exception& e) {
      const std::string cmd = r.command;
      r = PointResult{};
      r.command = cmd;
      r.error = e.what();
    }
    r.total_s = since(t0);
    return r;
  }
};

Runner::Runner(const Spec& spec, int threads) : impl_(std::make_unique<Impl>(spec, threads)) {}
Runner::~Runner() = default;
PointResult Runner::run(const Point& p) { return impl_->run(p); }
std::int64_t Runner::mapper_runs() const { return impl_->runs; }
std::int64_t Runner::mapper_hits() const { return impl_->hits; }

std::string PointResult::to_json() const {
  nlohmann::json j;
  j["ok"] = ok;
  if (!ok) j["error"] = error;
  j["metric"] = {{"name", metric}, {"value", value}, {"baseline", baseline}, {"delta", delta}, {"ci95", ci95}, {"samples", samples}};
  j["bits_per_weight"] = bits_per_weight;
  j["model_bytes"] = model_bytes;
  j["energy_pj"] = energy_pj;
  j["cycles"] = cycles;
  j["computes"] = computes;
  j["edp"] = edp;
  auto lv = [](const std::vector<LevelEnergy>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& l : v) a.push_back({{"name", l.name}, {"energy_pj", l.energy_pj}});
    return a;
  };
  j["levels"] = lv(levels);
  nlohmann::json ls = nlohmann::json::array();
  for (const auto& l : layers)
    ls.push_back({{"name", l.name}, {"shape", l.shape}, {"weights", l.weights}, {"acts", l.acts}, {"computes", l.computes},
                  {"cycles", l.cycles}, {"energy_pj", l.energy_pj}, {"levels", lv(l.levels)}});
  j["layers"] = ls;
  nlohmann::json le = nlohmann::json::array();
  for (const auto& [n, e] : layer_errors) le.push_back({{"name", n}, {"rel_error", e}});
  j["layer_errors"] = le;
  j["command"] = command;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {
/// A number of the result JSON: nlohmann writes NaN and infinities as null (a diverged perplexity).
double num(const nlohmann::json& j) { return j.is_null() ? std::nan("") : j.get<double>(); }
}  // namespace

PointResult PointResult::from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  PointResult r;
  r.ok = j.at("ok").get<bool>();
  if (!r.ok) r.error = j.at("error").get<std::string>();
  const auto& m = j.at("metric");
  r.metric = m.at("name").get<std::string>();
  r.value = num(m.at("value"));
  r.baseline = num(m.at("baseline"));
  r.delta = num(m.at("delta"));
  r.ci95 = num(m.at("ci95"));
  r.samples = m.at("samples").get<std::int64_t>();
  r.bits_per_weight = num(j.at("bits_per_weight"));
  r.model_bytes = num(j.at("model_bytes"));
  r.energy_pj = num(j.at("energy_pj"));
  r.cycles = j.at("cycles").get<std::int64_t>();
  r.computes = j.at("computes").get<std::int64_t>();
  r.edp = num(j.at("edp"));
  auto lv = [](const nlohmann::json& a) {
    std::vector<LevelEnergy> v;
    for (const auto& l : a) v.push_back({l.at("name").get<std::string>(), num(l.at("energy_pj"))});
    return v;
  };
  r.levels = lv(j.at("levels"));
  for (const auto& l : j.at("layers")) {
    LayerCost c;
    c.name = l.at("name").get<std::string>();
    c.shape = l.at("shape").get<std::string>();
    c.weights = l.at("weights").get<std::string>();
    c.acts = l.at("acts").get<std::string>();
    c.computes = l.at("computes").get<std::int64_t>();
    c.cycles = l.at("cycles").get<std::int64_t>();
    c.energy_pj = num(l.at("energy_pj"));
    c.levels = lv(l.at("levels"));
    r.layers.push_back(std::move(c));
  }
  for (const auto& e : j.at("layer_errors")) r.layer_errors.emplace_back(e.at("name").get<std::string>(), num(e.at("rel_error")));
  r.command = j.at("command").get<std::string>();
  return r;
}

std::string version() {
#ifdef QCAST_VERSION
  return QCAST_VERSION;
#else
  return "unknown";
#endif
}

}  // namespace qcast::sweep
