// Problem: parsing of Timeloop-style problem YAML and the model-layer JSON, and basic queries.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "hw/yaml_util.hpp"
#include "qcast/error.hpp"
#include "qcast/hw.hpp"

namespace qcast::hw {

void Problem::check_sizes(const std::string& source) const {
  std::int64_t n = 1;
  for (size_t d = 0; d < bounds.size(); ++d) n = detail::mul_checked(n, bounds[d], source + ": the number of computes (product of the bounds)");
  for (auto& ds : data_spaces) {
    std::int64_t size = 1;
    for (auto& axis : ds.projection) {
      std::int64_t e = 1;
      for (auto& t : axis) {
        if (t.coef < 1) throw Error(source + ": data space '" + ds.name + "': coefficients must be >= 1");
        e = detail::add_checked(e, detail::mul_checked(t.coef, bounds[t.dim] - 1, source + ": data space '" + ds.name + "'"),
                                source + ": data space '" + ds.name + "'");
      }
      size = detail::mul_checked(size, e, source + ": the size of data space '" + ds.name + "'");
    }
  }
}

std::string Problem::key() const {
  std::string s;
  for (std::size_t d = 0; d < dims.size(); ++d) s += (d ? " " : "") + dims[d] + "=" + std::to_string(bounds[d]);
  for (const auto& ds : data_spaces) {
    s += " |" + ds.name + ":";
    for (const auto& ax : ds.projection) {
      s += "[";
      for (const auto& t : ax) s += std::to_string(t.dim) + "*" + std::to_string(t.coef) + ",";
      s += "]";
    }
  }
  return s;
}

std::int64_t Problem::computes() const {
  std::int64_t n = 1;
  for (auto b : bounds) n *= b;
  return n;
}

int Problem::dim_index(const std::string& name) const {
  for (size_t i = 0; i < dims.size(); ++i)
    if (dims[i] == name) return static_cast<int>(i);
  return -1;
}

int Problem::data_space_index(const std::string& name) const {
  for (size_t i = 0; i < data_spaces.size(); ++i)
    if (data_spaces[i].name == name) return static_cast<int>(i);
  return -1;
}

bool Problem::relevant(int ds, int dim) const {
  for (auto& axis : data_spaces[ds].projection)
    for (auto& t : axis)
      if (t.dim == dim && t.coef != 0) return true;
  return false;
}

std::int64_t Problem::data_space_size(int ds) const {
  std::int64_t n = 1;
  for (auto& axis : data_spaces[ds].projection) {
    std::int64_t e = 1;
    for (auto& t : axis) e += t.coef * (bounds[t.dim] - 1);
    n *= e;
  }
  return n;
}

Role role_of(const DataSpace& ds) {
  const std::string n = detail::lower(ds.name);
  if (n.find("weight") != std::string::npos || n.find("filter") != std::string::npos ||
      n.find("kernel") != std::string::npos)
    return Role::Weights;
  if (ds.read_write) return Role::Outputs;
  return Role::Inputs;
}

Problem Problem::from_yaml_file(const std::string& path) {
  return from_yaml_text(detail::expand_includes(detail::read_text(path, "problem"), path), path);
}

Problem Problem::from_yaml_text(const std::string& text, const std::string& source) try {
  using detail::as_int;
  using detail::as_str;
  YAML::Node root = detail::load(text, source);
  if (!root.IsMap() || !root["problem"]) throw Error(source + ": missing top-level 'problem:' key");
  YAML::Node prob = root["problem"];
  YAML::Node shape = prob["shape"];
  if (!shape || !shape.IsMap()) throw Error(source + ": missing 'problem: shape:'");
  Problem p;
  if (shape["name"]) p.name = as_str(shape["name"], source, "shape.name");
  YAML::Node dims = shape["dimensions"];
  if (!dims || !dims.IsSequence() || dims.size() == 0)
    throw Error(source + ": 'shape: dimensions' must be a non-empty list of names");
  for (auto d : dims) {
    std::string n = as_str(d, source, "dimensions");
    if (p.dim_index(n) >= 0) throw Error(source + ": dimension '" + n + "' listed twice");
    p.dims.push_back(n);
  }
  // Coefficients (strides, dilations) with defaults, overridable in the instance.
  std::map<std::string, std::int64_t> coef;
  if (YAML::Node cs = shape["coefficients"]) {
    if (!cs.IsSequence()) throw Error(source + ": 'coefficients' must be a list of {name, default}");
    for (auto c : cs) {
      if (!c.IsMap() || !c["name"]) throw Error(source + ": each coefficient needs a 'name'");
      std::string n = as_str(c["name"], source, "coefficients.name");
      coef[n] = c["default"] ? as_int(c["default"], source, "coefficients." + n + ".default") : 1;
      if (coef[n] < 1) throw Error(source + ": coefficient '" + n + "' must be >= 1, got " + std::to_string(coef[n]));
    }
  }
  YAML::Node inst = prob["instance"];
  if (!inst || !inst.IsMap()) throw Error(source + ": missing 'problem: instance:' with the dimension sizes");
  p.bounds.assign(p.dims.size(), 0);
  for (auto kv : inst) {
    std::string k = as_str(kv.first, source, "instance key");
    int d = p.dim_index(k);
    // Timeloop ignores other instance keys (H, W, pads, densities, a misspelt HStride in its own
    // layer files); so does qcast.
    if (d < 0 && !coef.count(k)) continue;
    std::int64_t v = as_int(kv.second, source, "instance." + k);
    if (d >= 0) {
      if (v < 1) throw Error(source + ": instance." + k + " must be >= 1, got " + std::to_string(v));
      p.bounds[d] = v;
    } else {
      if (v < 1) throw Error(source + ": coefficient instance." + k + " must be >= 1, got " + std::to_string(v));
      coef[k] = v;
    }
  }
  for (size_t i = 0; i < p.dims.size(); ++i)
    if (p.bounds[i] == 0) throw Error(source + ": instance gives no size for dimension '" + p.dims[i] + "'");

  YAML::Node dss = shape["data_spaces"];
  if (!dss || !dss.IsSequence() || dss.size() == 0)
    throw Error(source + ": 'shape: data_spaces' must be a non-empty list");
  for (auto d : dss) {
    if (!d.IsMap() || !d["name"]) throw Error(source + ": each data space needs a 'name'");
    DataSpace ds;
    ds.name = as_str(d["name"], source, "data_spaces.name");
    const std::string where = "data space '" + ds.name + "'";
    YAML::Node proj = d["projection"];
    if (!proj || !proj.IsSequence() || proj.size() == 0)
      throw Error(source + ": " + where + " needs a 'projection' list");
    for (auto axis : proj) {
      if (!axis.IsSequence() || axis.size() == 0)
        throw Error(source + ": " + where + ": each projection axis must be a list of terms like [ [R], [P] ]");
      std::vector<Term> terms;
      for (auto term : axis) {
        if (!term.IsSequence() || term.size() < 1 || term.size() > 2)
          throw Error(source + ": " + where + ": a projection term must be [dim] or [dim, coefficient]");
        Term t;
        t.dim = -1;
        t.coef = 1;
        for (auto part : term) {
          std::string s = as_str(part, source, where + " projection term");
          int di = p.dim_index(s);
          if (di >= 0 && t.dim < 0) {
            t.dim = di;
          } else if (coef.count(s)) {
            t.coef = coef[s];
          } else if (!s.empty() && s.size() < 18 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) {
            t.coef = std::stoll(s);
            if (t.coef < 1) throw Error(source + ": " + where + ": a coefficient must be >= 1");
          } else {
            throw Error(source + ": " + where + ": projection names '" + s +
                        "', which is neither a dimension nor a coefficient");
          }
        }
        if (t.dim < 0) throw Error(source + ": " + where + ": a projection term names no dimension");
        terms.push_back(t);
      }
      ds.projection.push_back(terms);
    }
    if (d["read_write"]) {
      try {
        ds.read_write = d["read_write"].as<bool>();
      } catch (const YAML::Exception&) {
        throw Error(source + ": " + where + ": read_write must be true or false");
      }
    }
    if (p.data_space_index(ds.name) >= 0) throw Error(source + ": data space '" + ds.name + "' listed twice");
    p.data_spaces.push_back(ds);
  }
  p.check_sizes(source);
  return p;
} catch (const YAML::Exception& e) {
  throw detail::yaml_error(source, e, "problem");
}

// ---------------------------------------------------------------------------------------------
// Model layers (JSON)
// ---------------------------------------------------------------------------------------------

bool layer_has_macs(const LayerShape& l) {
  return l.op == "conv" || l.op == "gemm" || l.op == "matmul" || l.op == "linear" || l.op == "fc";
}

namespace {
// Derives P/Q from H/W and makes gemm-like layers 1x1; throws naming `where`.
void normalize_layer(LayerShape& l, const std::string& where) {
  if (l.op == "matmul" || l.op == "gemm" || l.op == "linear" || l.op == "fc") {
    l.R = l.S = 1;
    l.H = l.W = 1;
    l.P = l.Q = 1;
  }
  if (layer_has_macs(l)) {
    // Sizes beyond 2^31 are not layers; rejecting them keeps the arithmetic below exact.
    for (std::int64_t v : {l.N, l.C, l.M, l.H, l.W, l.R, l.S, l.P, l.Q, l.stride, l.dilation, l.pad, l.groups})
      if (v > (std::int64_t(1) << 31)) throw Error(where + ": a size or stride above 2^31 (" + std::to_string(v) + ")");
    if (l.P == 0) {
      std::int64_t span = l.dilation * (l.S - 1) + 1;  // width direction: S
      l.P = (l.W + 2 * l.pad - span) / l.stride + 1;
    }
    if (l.Q == 0) {
      std::int64_t span = l.dilation * (l.R - 1) + 1;
      l.Q = (l.H + 2 * l.pad - span) / l.stride + 1;
    }
    if (l.P < 1 || l.Q < 1) throw Error(where + ": the kernel does not fit the input (P or Q < 1)");
    if (l.C % l.groups || l.M % l.groups)
      throw Error(where + ": groups must divide C and M");
  }
}
}  // namespace

std::vector<LayerShape> read_layers_json(const std::string& path) {
  return parse_layers_json(detail::read_text(path, "model"), path);
}

std::vector<LayerShape> parse_layers_json(const std::string& text, const std::string& path) try {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_array())
    throw Error(path + ": expected {\"layers\": [...]} (see docs/cost.md)");
  std::vector<LayerShape> out;
  int idx = 0;
  for (auto& e : j["layers"]) {
    LayerShape l;
    std::string where = path + ": layer " + std::to_string(idx);
    if (!e.is_object()) throw Error(where + " is not an object");
    l.name = e.value("name", "layer" + std::to_string(idx));
    where = path + ": layer '" + l.name + "'";
    if (!e.contains("op") || !e["op"].is_string()) throw Error(where + ": missing \"op\"");
    // Operator names as the graph spells them (inspect writes ONNX's "Conv", "Gemm", "MatMul").
    l.op = detail::lower(e["op"].get<std::string>());
    auto geti = [&](const char* k, std::int64_t& dst) {
      if (!e.contains(k)) return;
      const nlohmann::json* v = &e[k];
      // A [height, width] pair (as inspect writes strides and dilations) must be square here: the layer
      // problem has one stride and one dilation.
      if (v->is_array() && v->size() == 2 && (*v)[0].is_number_integer() && (*v)[0] == (*v)[1]) v = &(*v)[0];
      else if (v->is_array())
        throw Error(where + ": \"" + k + "\" " + v->dump() + " differs between height and width (not supported)");
      if (!v->is_number_integer()) throw Error(where + ": \"" + k + "\" must be an integer");
      dst = v->get<std::int64_t>();
      if (dst < (std::string(k) == "pad" ? 0 : 1))
        throw Error(where + ": \"" + k + "\" must be positive, got " + std::to_string(dst));
    };
    geti("N", l.N);
    geti("C", l.C);
    geti("M", l.M);
    geti("K", l.M);  // alias
    geti("H", l.H);
    geti("W", l.W);
    geti("R", l.R);
    geti("S", l.S);
    geti("P", l.P);
    geti("Q", l.Q);
    geti("stride", l.stride);
    geti("dilation", l.dilation);
    geti("pad", l.pad);
    geti("groups", l.groups);
    normalize_layer(l, where);
    out.push_back(l);
    ++idx;
  }
  return out;
} catch (const nlohmann::json::exception& e) {
  throw Error(path + ": malformed layer list: " + e.what());
}

Problem layer_problem(const LayerShape& shape) {
  if (!layer_has_macs(shape)) throw Error("layer '" + shape.name + "': op '" + shape.op + "' has no MACs");
  LayerShape l = shape;
  normalize_layer(l, "layer '" + l.name + "'");
  // Convention: R, S = kernel height, width; Q, P = output height, width; C, M = in/out channels.
  Problem p;
  p.name = l.name;
  const bool grouped = l.groups > 1;
  p.dims = {"R", "S", "P", "Q", "C", "M", "N"};
  std::int64_t cg = l.C / l.groups, mg = l.M / l.groups;
  p.bounds = {l.R, l.S, l.P, l.Q, cg, mg, l.N};
  if (grouped) {
    p.dims.push_back("G");
    p.bounds.push_back(l.groups);
  }
  const int R = 0, S = 1, P = 2, Q = 3, C = 4, M = 5, N = 6, G = 7;
  DataSpace w{"Weights", {}, false}, in{"Inputs", {}, false}, out{"Outputs", {}, true};
  if (grouped) w.projection.push_back({{G, 1}});
  w.projection.push_back({{M, 1}});
  w.projection.push_back({{C, 1}});
  w.projection.push_back({{R, 1}});
  w.projection.push_back({{S, 1}});
  in.projection.push_back({{N, 1}});
  if (grouped)
    in.projection.push_back({{G, cg}, {C, 1}});
  else
    in.projection.push_back({{C, 1}});
  in.projection.push_back({{Q, l.stride}, {R, l.dilation}});
  in.projection.push_back({{P, l.stride}, {S, l.dilation}});
  out.projection.push_back({{N, 1}});
  if (grouped)
    out.projection.push_back({{G, mg}, {M, 1}});
  else
    out.projection.push_back({{M, 1}});
  out.projection.push_back({{Q, 1}});
  out.projection.push_back({{P, 1}});
  p.data_spaces = {w, in, out};
  p.check_sizes("layer '" + l.name + "'");
  return p;
}

}  // namespace qcast::hw
