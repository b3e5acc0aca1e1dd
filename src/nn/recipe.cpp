#include "qcast/nn/recipe.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/yaml_error.hpp"
#include "qcast/error.hpp"
#include "qcast/file.hpp"
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

void check_accumulator_name(const std::string& given, const std::string& key) {
  // intN / uintN may be wider than an element format allows (int32 accumulators).
  std::string name = given;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string digits;
  if (name.rfind("uint", 0) == 0) digits = name.substr(4);
  else if (name.rfind("int", 0) == 0) digits = name.substr(3);
  if (!digits.empty() && digits.size() <= 2 && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const int n = std::stoi(digits);
    if (n >= 2 && n <= 64) return;
  }
  Element e;
  try {
    e = Format::parse(name).elem();
  } catch (const Error& err) {
    throw Error(key + " '" + name + "': " + err.what());
  }
  if (e.kind != Element::Kind::Float || e.variant == FloatVariant::E8m0 || Format::parse(name).scaling().kind != ScaleKind::None)
    throw Error(key + " '" + name + "' is not an accumulator format (int32, int16, fp32, fp16, bf16, ...)");
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
  check(outputs, "output", false);
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

namespace {
// "FILE:LINE:COLUMN" of a node, as yaml_error writes positions.
std::string at(const YAML::Node& n, const std::string& where) {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return where;
  return where + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}
std::string scalar(const YAML::Node& v, const std::string& where, const std::string& key) {
  if (!v.IsScalar()) throw Error(at(v, where) + ": '" + key + "' must be a single value");
  return v.as<std::string>();
}
// Top-level formats are stored normalised: "" = full precision ("fp32" and "none" read as "").
std::string top_format(const YAML::Node& v, const std::string& where, const std::string& key) {
  if (v.IsNull()) return "";
  const std::string f = scalar(v, where, key);
  return (f == "fp32" || f == "none") ? std::string() : f;
}
std::vector<float> floats(const YAML::Node& v, const std::string& where) {
  if (!v.IsSequence()) throw Error(where + " must be a list of numbers");
  std::vector<float> r;
  for (const auto& x : v) r.push_back(x.as<float>());
  return r;
}
StaticRange parse_range(const YAML::Node& v, const std::string& where) {
  if (!v.IsMap()) throw Error(where + ": a static range is {lo: [...], hi: [...]}");
  StaticRange sr;
  for (const auto& kv : v) {
    const auto k = kv.first.as<std::string>();
    if (k == "lo") sr.lo = floats(kv.second, where + ": lo");
    else if (k == "hi") sr.hi = floats(kv.second, where + ": hi");
    else throw Error(where + ": unknown key '" + k + "' in a static range (lo, hi)");
  }
  if (sr.lo.size() != sr.hi.size() || sr.lo.empty()) throw Error(where + ": lo and hi must be lists of equal, non-zero length");
  for (std::size_t g = 0; g < sr.lo.size(); ++g)
    if (!std::isfinite(sr.lo[g]) || !std::isfinite(sr.hi[g]) || sr.lo[g] > sr.hi[g])
      throw Error(where + ": range " + std::to_string(g) + " is not a finite [lo, hi]");
  return sr;
}
LayerOverride parse_override(const std::string& pat, const YAML::Node& body, const std::string& where) {
  LayerOverride o;
  o.pattern = pat;
  if (!body.IsMap()) throw Error(at(body, where) + ": expected a mapping {weights, activations} for the override of '" + pat + "'");
  const std::string ow = where + " (override '" + pat + "')";
  std::optional<std::string> observer;
  for (const auto& f : body) {
    const auto k = f.first.as<std::string>();
    if (k == "activations" || k == "acts") {
      std::string fmt, obs;
      parse_act_entry(f.second, ow, fmt, obs);
      o.acts = fmt;
      if (!obs.empty()) o.act_observer = obs;
    } else if (k == "act_observer") {
      observer = f.second.IsNull() ? "" : scalar(f.second, ow, k);
    } else if (k == "weights") {
      o.weights = f.second.IsNull() ? "none" : scalar(f.second, ow, k);
    } else if (k != "pattern") {
      throw Error(where + ": unknown key '" + k + "' in the override for '" + pat + "' (weights, activations, act_observer)");
    }
  }
  if (observer) o.act_observer = (*observer == "dynamic" || *observer == "none") ? "" : *observer;
  return o;
}
}  // namespace

Recipe parse_recipe(const std::string& text, const std::string& where) {
  YAML::Node y;
  try {
    y = YAML::Load(text);  // JSON is valid YAML
  } catch (const YAML::Exception& e) {
    throw detail::yaml_error(where, e);
  }
  Recipe r;
  try {
    if (!y.IsMap()) throw Error(where + ": a recipe is a mapping (weights, activations, kv_cache, layers, skip)");
    std::optional<std::string> observer;
    for (const auto& kv : y) {
      const auto key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "weights") r.weights = top_format(v, where, key);
      else if (key == "activations" || key == "acts") {
        std::string obs;
        parse_act_entry(v, where, r.acts, obs);
        if (r.acts == "none" || r.acts == "fp32") r.acts.clear();
        if (!obs.empty()) r.act_observer = obs;
      } else if (key == "act_observer") {
        observer = v.IsNull() ? "" : scalar(v, where, key);
      } else if (key == "kv_cache" || key == "kv") {
        r.kv = top_format(v, where, key);
      } else if (key == "skip") {
        if (v.IsScalar()) r.skip.push_back(v.as<std::string>());
        else if (v.IsSequence()) for (const auto& s : v) r.skip.push_back(scalar(s, where, "skip"));
        else if (!v.IsNull()) throw Error(where + ": 'skip' must be a layer name or a list of them");
      } else if (key == "layers" || key == "overrides") {
        if (v.IsMap()) for (const auto& e : v) r.layers.push_back(parse_override(e.first.as<std::string>(), e.second, where));
        else if (v.IsSequence()) for (const auto& e : v) {
          if (!e.IsMap()) throw Error(at(e, where) + ": expected a mapping {pattern, weights, activations} as an entry of 'layers'");
          if (!e["pattern"]) throw Error(at(e, where) + ": each entry of 'layers' needs a 'pattern'");
          r.layers.push_back(parse_override(scalar(e["pattern"], where, "pattern"), e, where));
        }
        else if (!v.IsNull()) throw Error(where + ": 'layers' must be a mapping or a list");
      } else if (key == "act_ranges") {
        if (!v.IsMap()) throw Error(where + ": 'act_ranges' must map layer names to {lo, hi}");
        for (const auto& e : v) {
          const auto name = e.first.as<std::string>();
          r.act_ranges[name] = parse_range(e.second, where + ": static range of '" + name + "'");
        }
      } else if (key == "outputs") {
        r.outputs = v.IsNull() ? "" : scalar(v, where, key);  // kept as written: fp32 means fp32 here
      } else if (key == "accumulator" || key == "partial_sums") {
        const std::string a = v.IsNull() ? "" : scalar(v, where, key);
        try {
          if (!a.empty()) check_accumulator_name(a, key);
        } catch (const Error& e) {
          throw Error(at(v, where) + ": " + e.what());
        }
        (key == "accumulator" ? r.accumulator : r.partial_sums) = a;
      } else if (key == "name" || key == "description") {
      } else {
        throw Error(where + ": unknown recipe key '" + key +
                    "' (weights, activations, act_observer, kv_cache, layers, skip, act_ranges, outputs, accumulator, partial_sums)");
      }
    }
    if (observer) r.act_observer = (*observer == "dynamic" || *observer == "none") ? "" : *observer;
  } catch (const YAML::Exception& e) {
    throw detail::yaml_error(where, e);
  }
  r.validate(where);
  return r;
}

Recipe load_recipe(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open recipe");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_recipe(ss.str(), path);
}

std::string recipe_to_json(const Recipe& r, int indent) {
  auto f = [](const std::string& s) { return s.empty() ? std::string("fp32") : s; };
  nlohmann::json j = {{"weights", f(r.weights)}, {"activations", f(r.acts)}, {"kv_cache", f(r.kv)}};
  if (!r.act_observer.empty()) j["act_observer"] = r.act_observer;
  nlohmann::json layers = nlohmann::json::array();
  for (auto& o : r.layers) {
    nlohmann::json e = {{"pattern", o.pattern}};
    if (o.weights) e["weights"] = *o.weights;
    if (o.acts) e["activations"] = *o.acts;
    if (o.acts && !o.act_observer.empty()) e["act_observer"] = o.act_observer;
    layers.push_back(e);
  }
  j["layers"] = layers;
  j["skip"] = r.skip;
  if (!r.outputs.empty()) j["outputs"] = r.outputs;
  if (!r.accumulator.empty()) j["accumulator"] = r.accumulator;
  if (!r.partial_sums.empty()) j["partial_sums"] = r.partial_sums;
  // Calibrated static ranges: a float is exact in JSON's doubles, so a reload quantizes bit for bit alike.
  if (!r.act_ranges.empty()) {
    nlohmann::json ranges = nlohmann::json::object();
    for (auto& [name, rg] : r.act_ranges) ranges[name] = {{"lo", rg.lo}, {"hi", rg.hi}};
    j["act_ranges"] = ranges;
  }
  return j.dump(indent);
}

std::string recipe_to_yaml(const Recipe& r) {
  // The JSON form's content, written block-style; floats with 9 significant digits (exact for float32).
  const nlohmann::json j = nlohmann::json::parse(recipe_to_json(r));
  YAML::Emitter out;
  out.SetFloatPrecision(9);
  out.SetDoublePrecision(9);
  out << YAML::BeginMap;
  for (const char* k : {"weights", "activations", "act_observer", "kv_cache", "outputs", "accumulator", "partial_sums"})
    if (j.contains(k)) out << YAML::Key << k << YAML::Value << YAML::DoubleQuoted << j[k].get<std::string>();
  out << YAML::Key << "layers" << YAML::Value << YAML::BeginSeq;
  for (const auto& e : j["layers"]) {
    out << YAML::BeginMap;
    for (auto it = e.begin(); it != e.end(); ++it) out << YAML::Key << it.key() << YAML::Value << YAML::DoubleQuoted << it->get<std::string>();
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "skip" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& s : r.skip) out << YAML::DoubleQuoted << s;
  out << YAML::EndSeq;
  if (!r.act_ranges.empty()) {
    out << YAML::Key << "act_ranges" << YAML::Value << YAML::BeginMap;
    for (const auto& [name, rg] : r.act_ranges) {
      out << YAML::Key << YAML::DoubleQuoted << name << YAML::Value << YAML::Flow << YAML::BeginMap;
      out << YAML::Key << "lo" << YAML::Value << YAML::Flow << rg.lo;
      out << YAML::Key << "hi" << YAML::Value << YAML::Flow << rg.hi;
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void save_recipe(const std::string& path, const Recipe& r) {
  const bool json = path.ends_with(".json");
  const std::string text = json ? recipe_to_json(r, 2) + "\n" : recipe_to_yaml(r);
  write_file_atomic(path, [&](int fd) { write_all(fd, text.data(), text.size(), path); });
}

}  // namespace qcast::nn

#include "qcast/nn/graph.hpp"

namespace qcast::nn {

static bool quantizable(const Graph& g, const Node& n) {
  return (n.op == "Conv" || n.op == "Gemm" || n.op == "MatMul") && n.inputs.size() >= 2 && n.inputs[1] >= 0;
}

std::vector<std::string> quantizable_layers(const Graph& g) {
  std::vector<std::string> r;
  for (const Node& n : g.nodes) {
    if (quantizable(g, n)) r.push_back(n.name);
    for (const auto& [_, a] : n.attrs)  // the layers of control-flow bodies (If's branches, Loop's body)
      if (a.kind == Attr::Kind::Graph && a.g)
        for (auto& name : quantizable_layers(*a.g)) r.push_back(std::move(name));
  }
  return r;
}

static void apply_to_nodes(Graph& g, const Recipe& r, int threads) {
  for (Node& n : g.nodes) {
    // A control-flow body is shared by every copy of the graph (Attr::g): the recipe goes to a copy of it.
    for (auto& [_, a] : n.attrs)
      if (a.kind == Attr::Kind::Graph && a.g) {
        auto body = std::make_shared<Graph>(*a.g);
        apply_to_nodes(*body, r, threads);
        a.g = std::move(body);
      }
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
}

std::string apply_recipe(Graph& g, const Recipe& r, int threads) {
  if (!r.kv.empty() && r.kv != "fp32" && r.kv != "none") throw Error("a KV-cache format applies to language models only; " + g.source + " is a graph model");
  apply_to_nodes(g, r, threads);
  return unmatched_warning(r, quantizable_layers(g));
}

}  // namespace qcast::nn
