#include "qcast/nn/recipe.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "qcast/error.hpp"

namespace qcast::nn {

bool Recipe::empty() const {
  auto fp = [](const std::string& s) { return s.empty() || s == "fp32" || s == "none"; };
  if (!fp(weights) || !fp(acts) || !fp(kv)) return false;
  for (auto& l : layers) if ((l.weights && !fp(*l.weights)) || (l.acts && !fp(*l.acts))) return false;
  return true;
}

void Recipe::formats_for(const std::string& layer, std::string& w, std::string& a) const {
  w = weights;
  a = acts;
  for (const auto& s : skip) if (glob_match(s, layer)) { w.clear(); a.clear(); return; }
  for (const auto& l : layers)
    if (glob_match(l.pattern, layer)) {
      if (l.weights) w = *l.weights;
      if (l.acts) a = *l.acts;
      break;
    }
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

Recipe load_recipe(const std::string& path) {
  YAML::Node y;
  try {
    y = YAML::LoadFile(path);  // JSON is valid YAML
  } catch (const YAML::BadFile&) {
    throw Error(path + ": cannot open recipe");
  } catch (const YAML::Exception& e) {
    throw Error(path + ": " + e.what());
  }
  Recipe r;
  try {
    if (!y.IsMap()) throw Error(path + ": a recipe is a mapping (weights, activations, kv_cache, layers, skip)");
    for (const auto& kv : y) {
      const auto key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "weights") r.weights = v.IsNull() ? "" : v.as<std::string>();
      else if (key == "activations" || key == "acts") r.acts = v.IsNull() ? "" : v.as<std::string>();
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
            const std::string val = f.second.IsNull() ? "none" : f.second.as<std::string>();
            if (k2 == "weights") o.weights = val;
            else if (k2 == "activations" || k2 == "acts") o.acts = val;
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
    throw Error(path + ": " + e.what());
  }
  // Validate format names early (clear message naming the recipe).
  auto check = [&](const std::string& f) {
    try { parse_optional_format(f); } catch (const Error& e) { throw Error(path + ": " + e.what()); }
  };
  check(r.weights); check(r.acts); check(r.kv);
  for (auto& l : r.layers) { if (l.weights) check(*l.weights); if (l.acts) check(*l.acts); }
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
    std::string w, a;
    r.formats_for(n.name, w, a);
    if (g.is_const(n.inputs[1])) n.quant.weight = parse_optional_format(w);
    n.quant.act = parse_optional_format(a);
  }
  g.quantize_weights(threads);
  return unmatched_warning(r, quantizable_layers(g));
}

}  // namespace qcast::nn
