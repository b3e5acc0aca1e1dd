// qcast sweep: the spec (docs/sweep.md), the grid and the Pareto fronts.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/sweep/sweep.hpp"

namespace qcast::sweep {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& msg) { throw Error(source + ": " + msg); }

void check_keys(const YAML::Node& n, const std::string& where, const std::string& source, std::initializer_list<const char*> allowed) {
  if (!n.IsMap()) fail(source, where + " must be a mapping");
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string k = it->first.as<std::string>();
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      fail(source, "unknown key '" + k + "' in " + where + " (expected " + list + ")");
    }
  }
}

std::string str(const YAML::Node& n, const std::string& where, const std::string& source) {
  if (!n.IsScalar()) fail(source, where + " must be a string");
  return n.as<std::string>();
}

std::int64_t integer(const YAML::Node& n, const std::string& where, const std::string& source, std::int64_t lo, std::int64_t hi) {
  std::int64_t v = 0;
  if (!n.IsScalar()) fail(source, where + " must be an integer");
  try {
    v = n.as<std::int64_t>();
  } catch (const YAML::Exception&) {
    fail(source, where + ": '" + n.as<std::string>() + "' is not an integer");
  }
  if (v < lo || v > hi) fail(source, where + ": " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

CalibSpec calib_of(const YAML::Node& n, CalibSpec c, const std::string& where, const std::string& source) {
  check_keys(n, where, source, {"data", "samples", "offset", "tokens"});
  if (n["data"]) c.data = str(n["data"], where + ".data", source);
  if (n["samples"]) c.samples = integer(n["samples"], where + ".samples", source, 1, std::int64_t(1) << 40);
  if (n["offset"]) {
    c.offset = integer(n["offset"], where + ".offset", source, 0, std::int64_t(1) << 40);
    c.has_offset = true;
  }
  if (n["tokens"]) c.tokens = static_cast<int>(integer(n["tokens"], where + ".tokens", source, 2, 1 << 20));
  return c;
}

std::vector<YAML::Node> list(const YAML::Node& n, const std::string& where, const std::string& source) {
  if (!n.IsSequence() || n.size() == 0) fail(source, where + " must be a non-empty list");
  std::vector<YAML::Node> v;
  for (const auto& e : n) v.push_back(e);
  return v;
}

}  // namespace

Spec Spec::parse(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(source, std::string("not valid YAML: ") + e.what());
  }
  if (!root.IsMap()) fail(source, "a sweep spec is a mapping with models, formats, methods, archs (docs/sweep.md)");
  check_keys(root, "the spec", source, {"models", "formats", "methods", "calib", "archs", "objective", "mapper"});
  for (const char* k : {"models", "formats", "methods", "archs"})
    if (!root[k]) fail(source, std::string("missing '") + k + "'");
  Spec s;
  s.text = text;
  CalibSpec calib;
  if (root["calib"]) calib = calib_of(root["calib"], calib, "calib", source);
  int i = 0;
  for (const auto& m : list(root["models"], "models", source)) {
    const std::string w = "models[" + std::to_string(i++) + "]";
    if (m.IsScalar()) fail(source, w + " must be a mapping {model, data, limit, tokenizer, batch, calib, name}");
    check_keys(m, w, source, {"model", "data", "limit", "tokenizer", "batch", "calib", "name"});
    ModelSpec ms;
    if (!m["model"] || !m["data"]) fail(source, w + " needs 'model' and 'data'");
    ms.model = str(m["model"], w + ".model", source);
    ms.data = str(m["data"], w + ".data", source);
    if (m["tokenizer"]) ms.tokenizer = str(m["tokenizer"], w + ".tokenizer", source);
    if (m["limit"]) ms.limit = integer(m["limit"], w + ".limit", source, 1, std::int64_t(1) << 40);
    if (m["batch"]) ms.batch = integer(m["batch"], w + ".batch", source, 1, 1 << 16);
    ms.name = m["name"] ? str(m["name"], w + ".name", source) : std::filesystem::path(ms.model).filename().string();
    ms.calib = m["calib"] ? calib_of(m["calib"], calib, w + ".calib", source) : calib;
    if (ms.calib.data.empty()) ms.calib.data = ms.data;
    if (!ms.calib.has_offset) ms.calib.offset = ms.calib.data == ms.data ? ms.limit : 0;
    s.models.push_back(ms);
  }
  i = 0;
  for (const auto& f : list(root["formats"], "formats", source)) {
    const std::string w = "formats[" + std::to_string(i++) + "]";
    FormatSpec fs;
    if (f.IsScalar()) fs.weights = f.as<std::string>();  // shorthand: a weight format
    else {
      check_keys(f, w, source, {"weights", "acts", "kv"});
      if (f["weights"]) fs.weights = str(f["weights"], w + ".weights", source);
      if (f["acts"]) fs.acts = str(f["acts"], w + ".acts", source);
      if (f["kv"]) fs.kv = str(f["kv"], w + ".kv", source);
    }
    for (std::string* x : {&fs.weights, &fs.acts, &fs.kv})
      if (*x == "fp32" || *x == "none") x->clear();
    // Names are not checked here: an invalid format fails its points alone (recorded in the store).
    s.formats.push_back(fs);
  }
  for (const auto& m : list(root["methods"], "methods", source)) s.methods.push_back(str(m, "methods[]", source));
  i = 0;
  for (const auto& a : list(root["archs"], "archs", source)) {
    const std::string w = "archs[" + std::to_string(i++) + "]";
    ArchSpec as;
    if (a.IsScalar()) as.arch = a.as<std::string>();
    else {
      check_keys(a, w, source, {"arch", "ert", "table", "constraints", "name"});
      if (!a["arch"]) fail(source, w + " needs 'arch'");
      as.arch = str(a["arch"], w + ".arch", source);
      if (a["ert"]) as.ert = str(a["ert"], w + ".ert", source);
      if (a["table"]) as.table = str(a["table"], w + ".table", source);
      if (a["constraints"]) as.constraints = str(a["constraints"], w + ".constraints", source);
      if (a["name"]) as.name = str(a["name"], w + ".name", source);
    }
    if (as.table != "horowitz" && as.table != "eyeriss") fail(source, w + ".table: '" + as.table + "' (expected horowitz or eyeriss)");
    if (as.name.empty()) as.name = std::filesystem::path(as.arch).stem().string();
    s.archs.push_back(as);
  }
  if (root["objective"]) {
    s.objective = str(root["objective"], "objective", source);
    try {
      hw::parse_objective(s.objective);
    } catch (const Error& e) {
      fail(source, std::string("objective: ") + e.what());
    }
  }
  if (root["mapper"]) {
    const auto& m = root["mapper"];
    check_keys(m, "mapper", source, {"samples", "refine", "seed"});
    if (m["samples"]) s.mapper.samples = integer(m["samples"], "mapper.samples", source, 1, 100000000);
    if (m["refine"]) s.mapper.refine = static_cast<int>(integer(m["refine"], "mapper.refine", source, 0, 100000000));
    if (m["seed"]) s.mapper.seed = static_cast<std::uint64_t>(integer(m["seed"], "mapper.seed", source, 0, INT64_MAX));
  }
  std::set<std::string> names;
  for (auto& m : s.models)
    if (!names.insert(m.name).second) fail(source, "two models are named '" + m.name + "' (give each a distinct 'name')");
  names.clear();
  for (auto& a : s.archs)
    if (!names.insert(a.name).second) fail(source, "two architectures are named '" + a.name + "' (give each a distinct 'name')");
  return s;
}

Spec Spec::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read sweep spec '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path);
}

std::string Point::key(const Spec& s) const {
  const FormatSpec& f = s.formats[static_cast<std::size_t>(format)];
  return s.models[static_cast<std::size_t>(model)].name + "|" + fmt_name(f.weights) + "|" + fmt_name(f.acts) + "|" + fmt_name(f.kv) +
         "|" + method + "|" + s.archs[static_cast<std::size_t>(arch)].name;
}

std::vector<Point> expand(const Spec& s) {
  std::vector<Point> v;
  std::set<std::string> seen;
  for (int m = 0; m < static_cast<int>(s.models.size()); ++m)
    for (int f = 0; f < static_cast<int>(s.formats.size()); ++f) {
      std::vector<std::string> methods = s.formats[static_cast<std::size_t>(f)].weights.empty() ? std::vector<std::string>{"none"} : s.methods;
      for (const auto& meth : methods)
        for (int a = 0; a < static_cast<int>(s.archs.size()); ++a) {
          Point p;
          p.model = m;
          p.format = f;
          p.arch = a;
          p.method = meth;
          if (!seen.insert(p.key(s)).second) continue;  // a format or method listed twice
          p.index = static_cast<int>(v.size());
          v.push_back(p);
        }
    }
  return v;
}

std::vector<int> pareto(const Spec& spec, const std::vector<Point>& points, const std::vector<PointResult>& results) {
  std::vector<int> front;
  const int n = static_cast<int>(points.size());
  for (int i = 0; i < n; ++i) {
    const auto& ri = results[static_cast<std::size_t>(i)];
    if (!ri.ok) continue;
    const bool higher = ri.metric == "accuracy";
    bool dominated = false;
    for (int j = 0; j < n && !dominated; ++j) {
      const auto& rj = results[static_cast<std::size_t>(j)];
      if (j == i || !rj.ok || points[static_cast<std::size_t>(j)].model != points[static_cast<std::size_t>(i)].model ||
          points[static_cast<std::size_t>(j)].arch != points[static_cast<std::size_t>(i)].arch)
        continue;
      const bool m_ge = higher ? rj.value >= ri.value : rj.value <= ri.value;
      const bool m_gt = higher ? rj.value > ri.value : rj.value < ri.value;
      dominated = m_ge && rj.energy_pj <= ri.energy_pj && (m_gt || rj.energy_pj < ri.energy_pj);
    }
    if (!dominated) front.push_back(i);
  }
  (void)spec;
  return front;
}

}  // namespace qcast::sweep
