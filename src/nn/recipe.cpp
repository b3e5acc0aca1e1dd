#include "qcast/nn/recipe.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "io/yaml_error.hpp"
#include "qcast/error.hpp"
#include "qcast/nn/act_quant.hpp"

namespace qcast::nn {

bool Recipe::empty() const {
  auto fp = [](const std::string& s) { return s.empty() || s == "fp32" || s == "none"; };
  if (!fp(weights) || !fp(acts) || !fp(kv)) return false;
  for (auto& l : layers) if ((l.weights && !fp(*l.weights)) || (l.acts && !fp(*l.acts))) return false;
  return true;
}

void Recipe::formats_for(const std::string& layer, std::string& w, std::string& a) const {
  std::string obs;
  formats_for(layer, w, a, obs);
}

void Recipe::formats_for(const std::string& layer, std::string& w, std::string& a, std::string& obs) const {
  w = weights;
  a = acts;
  obs = act_observer;
  for (const auto& s : skip) if (glob_match(s, layer)) { w.clear(); a.clear(); obs.clear(); return; }
  for (const auto& l : layers)
    if (glob_match(l.pattern, layer)) {
      if (l.weights) w = *l.weights;
      if (l.acts) { a = *l.acts; obs = l.act_observer; }
      break;
    }
  if (!parse_optional_format(a)) obs.clear();  // full precision: nothing to observe
}

bool Recipe::has_static_acts() const {
  if (!act_observer.empty() && parse_optional_format(acts)) return true;
  for (const auto& l : layers) if (l.acts && !l.act_observer.empty() && parse_optional_format(*l.acts)) return true;
  return false;
}

std::vector<std::string> Recipe::unmatched(const std::vector<std::string>& names) const {
  std::vector<std::string> r;
  auto check = [&](const std::string& p) {
    if (std::none_of(names.begin(), names.end(), [&](const std::string& n) { return glob_match(p, n); })) r.push_back(p);
  };
  for (auto& l : layers) check(l.pattern);
  for (auto& s : skip) check(s);
  return r;
}

std::string unmatched_warning(const Recipe& r, const std::vector<std::string>& names) {
  auto um = r.unmatched(names);
  if (um.empty()) return "";
  std::string s = "warning: recipe pattern(s) match no layer:";
  for (auto& p : um) s += " '" + p + "'";
  s += "; layers are:";
  for (auto& n : names) s += " " + n;
  return s;
}

bool glob_match(const std::string& p, const std::string& n) {
  std::size_t pi = 0, ni = 0, star = std::string::npos, mark = 0;
  auto set_match = [&](std::size_t& i, char ch) -> bool {  // i at '['; advances past ']'
    std::size_t j = i + 1;
    bool neg = j < p.size() && (p[j] == '!' || p[j] == '^');
    if (neg) ++j;
    bool ok = false;
    std::size_t start = j;
    while (j < p.size() && (p[j] != ']' || j == start)) {
      if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') { ok |= ch >= p[j] && ch <= p[j + 2]; j += 3; }
      else { ok |= ch == p[j]; ++j; }
    }
    if (j >= p.size()) { ok = ch == '['; i = i + 1; return ok; }  // unterminated: literal '['
    i = j + 1;
    return ok != neg;
  };
  while (ni < n.size()) {
    if (pi < p.size() && p[pi] == '*') { star = pi++; mark = ni; continue; }
    if (pi < p.size() && p[pi] == '?') { ++pi; ++ni; continue; }
    if (pi < p.size() && p[pi] == '[') {
      std::size_t q = pi;
      if (set_match(q, n[ni])) { pi = q; ++ni; continue; }
    } else if (pi < p.size() && p[pi] == n[ni]) { ++pi; ++ni; continue; }
    if (star == std::string::npos) return false;
    pi = star + 1;
    ni = ++mark;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::optional<Format> parse_optional_format(const std::string& name) {
  if (name.empty() || name == "fp32" || name == "none") return std::nullopt;
  return Format::parse(name);
}

void require_scale(const Format& f, const std::string& role) {
  if (f.scaling().kind != ScaleKind::None || f.elem().kind == Element::Kind::Float) return;
  const std::string n = f.name();
  const bool ints = f.elem().kind == Element::Kind::Int;
  throw Error(role + " format '" + n + "' has no scale: " +
              (ints ? "its codes are the integers themselves (|x| < 0.5 rounds to 0, nothing beyond " +
                          std::to_string(static_cast<long long>(f.elem().max_value())) + " is kept)"
                    : "its codebook values are used as they are") +
              "; give it one, e.g. " + n + "/g32 (an fp32 scale per 32 inputs), " + n + "@fp16/g128 or " + n +
              "@fp32/ch0 (per output channel)");
}

void Recipe::validate(const std::string& where) const {
  auto check = [&](const std::string& f, const std::string& role, bool needs_scale) {
    try {
      auto fmt = parse_optional_format(f);
      if (fmt && needs_scale) require_scale(*fmt, role);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  };
  check(weights, "weight", true);
  check(acts, "activation", act_observer.empty());  // a static observer supplies a per-tensor scale
  check(kv, "KV-cache", true);
  for (auto& l : layers) {
    if (l.weights) check(*l.weights, "weight (override '" + l.pattern + "')", true);
    if (l.acts) check(*l.acts, "activation (override '" + l.pattern + "')", l.act_observer.empty());
  }
  // A static observer on a format that cannot take a fixed scale (mxfp4, ...) is an error up front.
  auto check_static = [&](const std::string& f, const std::string& obs, const std::string& what) {
    if (obs.empty()) return;
    auto fmt = parse_optional_format(f);
    if (!fmt) throw Error(where + ": " + what + ": an activation observer needs an activation format");
    try { make_act_quant(*fmt, obs, ""); } catch (const Error& e) { throw Error(where + ": " + what + ": " + e.what()); }
  };
  check_static(acts, act_observer, "activations");
  for (auto& l : layers) if (l.acts) check_static(*l.acts, l.act_observer, "override '" + l.pattern + "'");
}

namespace {
// An activation entry: a format name (dynamic), or {format: F, observer: minmax | percentile:P | mse | dynamic}.
void parse_act_entry(const YAML::Node& v, const std::string& where, std::string& fmt, std::string& observer) {
  observer.clear();
  if (v.IsNull()) { fmt = "none"; return; }
  if (v.IsScalar()) { fmt = v.as<std::string>(); return; }
  if (!v.IsMap()) throw Error(where + ": activations must be a format name or {format: F, observer: O}");
  fmt.clear();
  for (const auto& kv : v) {
    const auto k = kv.first.as<std::string>();
    if (k == "format") fmt = kv.second.IsNull() ? "none" : kv.second.as<std::string>();
    else if (k == "observer") observer = kv.second.IsNull() ? "" : kv.second.as<std::string>();
    else throw Error(where + ": unknown key '" + k + "' in activations (format, observer)");
  }
  if (fmt.empty()) throw Error(where + ": activations {format: F, observer: O} needs a 'format'");
  if (observer == "dynamic" || observer == "none") observer.clear();
  if (!observer.empty()) {
    try { parse_observer(observer); } catch (const Error& e) { throw Error(where + ": " + e.what()); }
  }
}
}  // namespace

Recipe load_recipe(const std::string& path) {
  YAML::Node y;
  try {
    y = YAML::LoadFile(path);  // JSON is valid YAML
  } catch (const YAML::BadFile&) {
    throw Error(path + ": cannot open recipe");
  } catch (const YAML::Exception& e) {
    throw detail::yaml_error(path, e);
  }
  Recipe r;
  try {
    if (!y.IsMap()) throw Error(path + ": a recipe is a mapping (weights, activations, kv_cache, layers, skip)");
    for (const auto& kv : y) {
      const auto key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "weights") r.weights = v.IsNull() ? "" : v.as<std::string>();
      else if (key == "activations" || key == "acts") {
        parse_act_entry(v, path, r.acts, r.act_observer);
        if (r.acts == "none") r.acts.clear();
      }
      else if (key == "kv_cache" || key == "kv") r.kv = v.IsNull() ? "" : v.as<std::string>();
      else if (key == "skip") {
        if (v.IsScalar()) r.skip.push_back(v.as<std::string>());
        else for (const auto& s : v) r.skip.push_back(s.as<std::string>());
      } else if (key == "layers" || key == "overrides") {
        auto add = [&](const std::string& pat, const YAML::Node& body) {
          LayerOverride o;
          o.pattern = pat;
          if (!body.IsMap()) throw Error(path + ": override for '" + pat + "' must be a mapping");
          for (const auto& f : body) {
            const auto k2 = f.first.as<std::string>();
            if (k2 == "activations" || k2 == "acts") {
              std::string fmt;
              parse_act_entry(f.second, path + " (override '" + pat + "')", fmt, o.act_observer);
              o.acts = fmt;
              continue;
            }
            const std::string val = f.second.IsNull() ? "none" : f.second.as<std::string>();
            if (k2 == "weights") o.weights = val;
            else if (k2 == "pattern") {}
            else throw Error(path + ": unknown key '" + k2 + "' in the override for '" + pat + "'");
          }
          r.layers.push_back(o);
        };
        if (v.IsMap()) for (const auto& e : v) add(e.first.as<std::string>(), e.second);
        else if (v.IsSequence()) for (const auto& e : v) {
          if (!e["pattern"]) throw Error(path + ": each entry of 'layers' needs a 'pattern'");
          add(e["pattern"].as<std::string>(), e);
        }
        else throw Error(path + ": 'layers' must be a mapping or a list");
      } else if (key == "name" || key == "description") {
      } else {
        throw Error(path + ": unknown recipe key '" + key + "' (weights, activations, kv_cache, layers, skip)");
      }
    }
  } catch (const YAML::Exception& e) {
    throw detail::yaml_error(path, e);
  }
  r.validate(path);
  return r;
}

}  // namespace qcast::nn

#include "qcast/nn/graph.hpp"

namespace qcast::nn {

static bool quantizable(const Graph& g, const Node& n) {
  return (n.op == "Conv" || n.op == "Gemm" || n.op == "MatMul") && n.inputs.size() >= 2 && n.inputs[1] >= 0;
}

std::vector<std::string> quantizable_layers(const Graph& g) {
  std::vector<std::string> r;
  for (const Node& n : g.nodes) if (quantizable(g, n)) r.push_back(n.name);
  return r;
}

std::string apply_recipe(Graph& g, const Recipe& r, int threads) {
  if (!r.kv.empty() && r.kv != "fp32" && r.kv != "none") throw Error("a KV-cache format applies to language models only; " + g.source + " is a graph model");
  for (Node& n : g.nodes) {
    n.quant = NodeQuant{};
    if (!quantizable(g, n)) continue;
    std::string w, a, obs;
    r.formats_for(n.name, w, a, obs);
    if (g.is_const(n.inputs[1])) n.quant.weight = parse_optional_format(w);
    if (auto af = parse_optional_format(a)) {
      n.quant.act = make_act_quant(*af, obs, n.name);
      if (auto it = r.act_ranges.find(n.name); it != r.act_ranges.end() && n.quant.act->is_static()) n.quant.act->range = it->second;
    }
  }
  g.quantize_weights(threads);
  return unmatched_warning(r, quantizable_layers(g));
}

}  // namespace qcast::nn
