// Architecture: Timeloop v0.4 arch YAML, Accelergy ERT, built-in energy tables, bit widths.
#include <algorithm>
#include <filesystem>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "hw/yaml_util.hpp"
#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/hw.hpp"

namespace qcast::hw {

using detail::lower;

namespace {

bool is_compute_class(const std::string& cls) {
  std::string c = lower(cls);
  return c.find("mac") != std::string::npos || c.find("compute") != std::string::npos ||
         c.find("alu") != std::string::npos || c.find("multiplier") != std::string::npos;
}

// "PE[0..167]" -> ("PE", 168); "Buffer" -> ("Buffer", 1)
std::pair<std::string, std::int64_t> split_name(const std::string& name, const std::string& source) {
  static const std::regex re(R"(^(.*)\[\s*(\d+)\s*\.\.\s*(\d+)\s*\]$)");
  std::smatch m;
  if (std::regex_match(name, m, re)) {
    std::int64_t a, b;
    try {
      a = std::stoll(m[2]);
      b = std::stoll(m[3]);
    } catch (const std::exception&) {
      throw Error(source + ": instance range in name '" + name + "' is out of range");
    }
    if (b < a || b - a == INT64_MAX) throw Error(source + ": bad instance range in name '" + name + "'");
    return {m[1], b - a + 1};
  }
  return {name, 1};
}

std::string base_name(const std::string& ert_name) {
  // "System_top_level.PE[0..167].RegisterFile[0..167]" -> "RegisterFile"
  std::string n;
  int depth = 0;
  for (char c : ert_name) {
    if (c == '[') ++depth;
    else if (c == ']') --depth;
    else if (depth == 0) n += c;
  }
  auto dot = n.rfind('.');
  return dot == std::string::npos ? n : n.substr(dot + 1);
}

}  // namespace

std::int64_t StorageLevel::block_size() const {
  if (datawidth <= 0 || width <= 0) return 1;
  return std::max<std::int64_t>(1, width / datawidth / std::max<std::int64_t>(1, cluster_size));
}

std::int64_t StorageLevel::size_words() const { return depth > 0 ? depth * block_size() : 0; }

int Architecture::level_index(const std::string& name) const {
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i].name == name) return static_cast<int>(i);
  for (size_t i = 0; i < levels.size(); ++i)
    if (levels[i].implied && levels[i].container == name) return static_cast<int>(i);
  return -1;
}

std::int64_t Architecture::fanout(int i) const {
  std::int64_t below = i == 0 ? arith.instances : levels[i - 1].instances;
  return std::max<std::int64_t>(1, below / std::max<std::int64_t>(1, levels[i].instances));
}

std::int64_t Architecture::fanout_x(int i) const {
  const std::int64_t below = i == 0 ? arith.mesh_x : levels[i - 1].mesh_x, here = std::max<std::int64_t>(1, levels[i].mesh_x);
  // A fanout whose X extent does not divide (instances that are not a mesh) is one-dimensional: all X.
  if (below < here || below % here || fanout(i) % (below / here)) return fanout(i);
  return below / here;
}

std::int64_t Architecture::fanout_y(int i) const { return fanout(i) / fanout_x(i); }

Architecture Architecture::from_yaml_file(const std::string& path) {
  return from_yaml_text(detail::expand_includes(detail::read_text(path, "architecture"), path), path);
}

namespace {

std::vector<std::string> name_list(const YAML::Node& n, const std::string& where, const char* key) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) {
    for (auto& w : detail::split_words(n.as<std::string>())) out.push_back(w);
    return out;
  }
  if (!n.IsSequence()) throw Error(where + ": '" + key + "' must be a list of names");
  for (auto x : n) out.push_back(detail::as_str(x, where, key));
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> factor_list(const YAML::Node& n, const std::string& where) {
  std::vector<std::pair<std::string, std::int64_t>> out;
  if (!n) return out;
  std::vector<std::string> words;
  if (n.IsScalar()) {
    words = detail::split_words(n.as<std::string>());
  } else if (n.IsSequence()) {
    for (auto x : n)
      for (auto& w : detail::split_words(detail::as_str(x, where, "factors"))) words.push_back(w);
  } else if (n.IsMap()) {
    for (auto it : n) {
      const std::string dim = detail::as_str(it.first, where, "factors: a dimension name");
      if (!it.second.IsScalar())
        throw Error(where + ": factors: the factor of '" + dim + "'" + detail::at_line(it.second.Mark()) +
                    " must be a single number (e.g. {" + dim + ": 3}), found a list or a mapping");
      words.push_back(dim + "=" + it.second.as<std::string>());
    }
  } else {
    throw Error(where + ": 'factors' must be a string like \"R=1 S=1\" or a list");
  }
  for (auto& w : words) {
    std::string d, v;
    if (!detail::split_factor(w, [](const std::string&) { return false; }, d, v))
      throw Error(where + ": factor '" + w + "' is not of the form DIM=N");
    std::int64_t f;
    try {
      size_t pos;
      f = std::stoll(v, &pos);
      if (pos != v.size()) throw 0;
    } catch (...) {
      throw Error(where + ": factor '" + w + "' is not of the form DIM=N (N an integer)");
    }
    if (f < 0) throw Error(where + ": factor '" + w + "' must be >= 0");
    out.emplace_back(d, f);
  }
  return out;
}

// Merges one constraint of `type` (temporal | spatial | dataspace/bypass/datatype) from node `c` into lc.
void merge_constraint(LevelConstraints& lc, const std::string& type, const YAML::Node& c, const std::string& where,
                      std::vector<std::string>* notes) {
  if (!c.IsMap()) throw Error(where + ": a '" + type + "' constraint must be a map");
  if (type == "temporal" || type == "spatial") {
    bool sp = type == "spatial";
    auto f = factor_list(c["factors"], where);
    auto& dst = sp ? lc.spatial_factors : lc.temporal_factors;
    dst.insert(dst.end(), f.begin(), f.end());
    if (c["permutation"]) (sp ? lc.spatial_permutation : lc.temporal_permutation) = name_list(c["permutation"], where, "permutation");
    if (c["split"]) lc.split = static_cast<int>(detail::as_int(c["split"], where, "split"));
    for (auto it : c) {
      std::string k = it.first.as<std::string>();
      if (k != "factors" && k != "permutation" && k != "split" && k != "type" && k != "target" && notes)
        notes->push_back(where + ": " + type + " constraint '" + k + "' is accepted and not enforced");
    }
  } else if (type == "dataspace" || type == "bypass" || type == "datatype") {
    auto k = name_list(c["keep"], where, "keep");
    auto b = name_list(c["bypass"], where, "bypass");
    lc.keep.insert(lc.keep.end(), k.begin(), k.end());
    lc.bypass.insert(lc.bypass.end(), b.begin(), b.end());
  } else if (notes) {
    notes->push_back(where + ": constraint type '" + type + "' is accepted and not enforced");
  }
}

LevelConstraints node_constraints(const YAML::Node& n, const std::string& where) {
  LevelConstraints lc;
  if (!n) return lc;
  if (!n.IsMap()) throw Error(where + ": 'constraints' must be a map {dataspace, temporal, spatial}");
  for (auto it : n) {
    std::string k = it.first.as<std::string>();
    merge_constraint(lc, k, it.second, where, nullptr);
  }
  return lc;
}

struct ArchBuilder {
  std::string source;
  Architecture a;
  std::vector<StorageLevel> outer_first;
  bool have_compute = false;
  int idx = 0;

  // The X extent of the instances at the current point of the walk (mult / mult_x is the Y extent): Timeloop
  // places spatial loops on meshX or meshY, and each axis has its own fanout.
  std::int64_t mult_x = 1;

  // Walks `nodes` with `mult` instances of everything above (mult_x of them along X); returns the
  // multiplicity below (and leaves mult_x at its X extent).
  std::int64_t walk(const YAML::Node& nodes, std::int64_t mult, int depth) {
    using detail::as_int;
    if (depth > 64) throw Error(source + ": nodes nested more than 64 deep");
    for (auto n : nodes) {
      std::string where = source + ": node " + std::to_string(idx++);
      if (!n.IsMap()) throw Error(where + " is not a map");
      std::string tag = n.Tag();
      if (tag == "!Nothing") continue;  // an empty branch of a !Parallel group
      if (tag == "!Parallel") {
        YAML::Node sub = n["nodes"];
        if (!sub || !sub.IsSequence()) throw Error(where + ": a !Parallel group needs 'nodes: [...]'");
        // The members sit side by side: each gets the multiplicity of the group; Timeloop's flattened
        // architecture orders them as consecutive levels in their listed order.
        std::int64_t below = mult;
        const std::int64_t group_x = mult_x;
        std::int64_t below_x = mult_x;
        for (auto m : sub) {
          if (m.Tag() == "!Nothing") continue;
          YAML::Node one(YAML::NodeType::Sequence);
          one.push_back(m);
          mult_x = group_x;
          below = walk(one, mult, depth + 1);
          below_x = mult_x;
        }
        mult = below;
        mult_x = below_x;
        continue;
      }
      if (!n["name"]) throw Error(where + " has no 'name' (tag '" + tag + "')");
      // Plain variables, not a structured binding: lambdas below capture `name` (clang 14, the fuzz build, cannot capture bindings).
      const auto name_and_range = split_name(detail::as_str(n["name"], source, "name"), source);
      const std::string& name = name_and_range.first;
      const std::int64_t range = name_and_range.second;
      where = source + ": node '" + name + "'";
      bool container;
      if (tag == "!Container" || tag == "!Hierarchical")
        container = true;
      else if (tag == "!Component")
        container = false;
      else if (tag.empty() || tag == "?" || tag == "!")
        container = !n["class"];
      else
        throw Error(where + ": unknown tag '" + tag + "' (expected !Container, !Component, !Parallel or !Nothing)");
      YAML::Node attrs = n["attributes"];
      if (attrs && !attrs.IsMap()) throw Error(where + ": 'attributes' must be a map");
      std::int64_t f = range, fx = range;  // instances this node multiplies by, and along X
      auto mesh = [&](YAML::Node s) -> std::int64_t {
        std::int64_t x = s["meshX"] ? as_int(s["meshX"], source, name + ".meshX") : 1;
        std::int64_t y = s["meshY"] ? as_int(s["meshY"], source, name + ".meshY") : 1;
        if (x < 1 || y < 1) throw Error(where + ": meshX/meshY must be >= 1");
        fx = detail::mul_checked(fx, x, where + ": meshX");
        return detail::mul_checked(x, y, where + ": meshX x meshY");
      };
      if (YAML::Node sp = n["spatial"]) {
        if (!sp.IsMap()) throw Error(where + ": 'spatial' must be a map {meshX, meshY}");
        f = detail::mul_checked(f, mesh(sp), where + ": instances");
      } else if (attrs && (attrs["meshX"] || attrs["meshY"]) && !attrs["instances"]) {
        f = detail::mul_checked(f, mesh(attrs), where + ": instances");
      }
      if (attrs && attrs["instances"]) {
        std::int64_t total = as_int(attrs["instances"], source, name + ".instances");
        if (total < mult || total % mult)
          throw Error(where + ": instances (" + std::to_string(total) + ") must be a multiple of the enclosing " +
                      std::to_string(mult));
        f = total / mult;
        // `meshX` beside `instances` is the absolute X extent (Eyeriss: 168 instances, meshX 14: 14 x 12);
        // without it (or when it does not divide) the instances line up along X.
        fx = f;
        if (attrs["meshX"]) {
          const std::int64_t ax = as_int(attrs["meshX"], source, name + ".meshX");
          if (ax >= mult_x && ax % mult_x == 0 && f % (ax / mult_x) == 0) fx = ax / mult_x;
        }
      }
      LevelConstraints lc = node_constraints(n["constraints"], where);
      if (container) {
        // Timeloop adds a storage-less level for the fanout of a container below some storage.
        if (f > 1 && !outer_first.empty() && !have_compute) {
          StorageLevel s;
          s.name = "inter_" + name + "_spatial";
          s.cls = "dummy_storage";
          s.implied = true;
          s.container = name;
          s.instances = mult;
          s.mesh_x = mult_x;
          s.width = s.datawidth = 1;
          s.energy.source = "none";
          s.constraints = lc;
          outer_first.push_back(s);
        }
        mult = detail::mul_checked(mult, f, where + ": instances");
        mult_x = detail::mul_checked(mult_x, fx, where + ": instances");
        continue;
      }
      mult = detail::mul_checked(mult, f, where + ": instances");
      mult_x = detail::mul_checked(mult_x, fx, where + ": instances");
      if (have_compute) throw Error(where + ": nothing may follow the compute component");
      std::string cls = n["class"] ? detail::as_str(n["class"], source, name + ".class") : "";
      if (cls.empty()) throw Error(where + ": a component needs a 'class'");
      auto geti = [&](std::initializer_list<const char*> keys, std::int64_t dflt) {
        if (!attrs) return dflt;
        for (auto k : keys)
          if (attrs[k]) {
            std::int64_t v = as_int(attrs[k], source, name + "." + k);
            if (v < 1) throw Error(where + ": attribute '" + k + "' must be >= 1");
            return v;
          }
        return dflt;
      };
      auto getd = [&](std::initializer_list<const char*> keys) {
        if (!attrs) return 0.0;
        for (auto k : keys)
          if (attrs[k]) {
            double v = detail::as_double(attrs[k], source, name + "." + k);
            if (!(v >= 0) || !std::isfinite(v)) throw Error(where + ": attribute '" + k + "' must be a finite number >= 0");
            return v;
          }
        return 0.0;
      };
      if (is_compute_class(cls)) {
        a.arith.name = name;
        a.arith.cls = cls;
        a.arith.instances = mult;
        a.arith.mesh_x = mult_x;
        a.arith.datawidth = geti({"datawidth", "width"}, 0);
        have_compute = true;
        continue;
      }
      StorageLevel s;
      s.name = name;
      s.cls = cls;
      s.instances = mult;
      s.mesh_x = mult_x;
      s.depth = geti({"depth", "entries"}, 0);
      s.datawidth = geti({"datawidth", "word-bits", "word_bits"}, 0);
      s.width = geti({"width"}, 0);
      s.cluster_size = geti({"cluster_size", "cluster-size"}, 1);
      std::int64_t bs = geti({"block_size", "block-size"}, 0);
      if (s.datawidth == 0 && s.width == 0) throw Error(where + ": a storage component needs 'width' and/or 'datawidth'");
      if (s.datawidth == 0) s.datawidth = bs ? s.width / bs : s.width;
      if (s.width == 0) s.width = detail::mul_checked(s.datawidth, bs ? bs : 1, where + ": width");
      if (s.datawidth <= 0) throw Error(where + ": datawidth must be >= 1");
      if (s.depth == 0 && lower(cls).find("dram") == std::string::npos && attrs && attrs["depth"])
        throw Error(where + ": depth must be >= 1");
      if (s.depth > 0) {
        // The capacity in words and bits must be representable (a depth that overflows is not a large buffer).
        detail::mul_checked(detail::mul_checked(s.depth, s.block_size(), where + ": capacity (depth x block size)"),
                            s.datawidth, where + ": capacity in bits");
        detail::mul_checked(s.depth, s.width, where + ": capacity in bits (depth x width)");
      }
      s.read_bandwidth = getd({"read_bandwidth", "read-bandwidth"});
      s.write_bandwidth = getd({"write_bandwidth", "write-bandwidth"});
      s.constraints = lc;
      outer_first.push_back(s);
    }
    return mult;
  }
};

}  // namespace

Architecture Architecture::from_yaml_text(const std::string& text, const std::string& source) try {
  YAML::Node root = detail::load(text, source);
  if (!root.IsMap() || !root["architecture"]) throw Error(source + ": missing top-level 'architecture:' key");
  YAML::Node nodes = root["architecture"]["nodes"];
  if (!nodes || !nodes.IsSequence() || nodes.size() == 0)
    throw Error(source + ": 'architecture: nodes:' must be a non-empty list (Timeloop v0.4 format)");
  ArchBuilder b;
  b.source = source;
  b.walk(nodes, 1, 0);
  Architecture a = std::move(b.a);
  auto& outer_first = b.outer_first;
  if (!b.have_compute) throw Error(source + ": no compute component (a class like intmac/fpmac/mac) in the nodes");
  // An implied level directly above the compute or a container fanout with no storage below it
  // carries no storage: keep it (Timeloop does) only when a storage level follows.
  if (outer_first.empty() || std::all_of(outer_first.begin(), outer_first.end(), [](auto& s) { return s.implied; }))
    throw Error(source + ": no storage component above the compute");
  for (auto it = outer_first.rbegin(); it != outer_first.rend(); ++it) a.levels.push_back(*it);
  if (a.arith.instances % a.levels[0].instances)
    throw Error(source + ": instances of '" + a.arith.name + "' are not a multiple of '" + a.levels[0].name + "'");
  for (size_t i = 0; i + 1 < a.levels.size(); ++i)
    if (a.levels[i].instances % a.levels[i + 1].instances)
      throw Error(source + ": instances of '" + a.levels[i].name + "' are not a multiple of '" + a.levels[i + 1].name + "'");
  for (auto& s : a.levels)
    if (s.instances % s.cluster_size)
      throw Error(source + ": cluster_size of '" + s.name + "' (" + std::to_string(s.cluster_size) +
                  ") does not divide its instances (" + std::to_string(s.instances) + ")");
  // Default energies: the Horowitz table at the compute's width.
  double bits = a.arith.datawidth ? static_cast<double>(a.arith.datawidth) : 8.0;
  a.apply_builtin("horowitz", bits, bits);
  return a;
} catch (const YAML::Exception& e) {
  throw detail::yaml_error(source, e, "architecture");
}

std::vector<std::string> Architecture::apply_constraints_file(const std::string& path) {
  return apply_constraints_text(detail::expand_includes(detail::read_text(path, "constraints"), path), path);
}

std::vector<std::string> Architecture::apply_constraints_text(const std::string& text, const std::string& source) try {
  YAML::Node root = detail::load(text, source);
  YAML::Node list;
  if (root.IsMap()) {
    for (const char* k : {"mapspace_constraints", "constraints", "mapspace", "architecture_constraints"})
      if (root[k]) {
        list = root[k];
        break;
      }
    if (list && list.IsMap()) {
      if (list["targets"]) list = list["targets"];
      else if (list["constraints"]) list = list["constraints"];
    }
  } else {
    list = root;
  }
  if (!list || !list.IsSequence())
    throw Error(source + ": expected 'constraints: {targets: [...]}' or 'mapspace_constraints: [...]' (Timeloop constraints)");
  std::vector<std::string> notes;
  int idx = 0;
  for (auto t : list) {
    std::string where = source + ": constraint " + std::to_string(idx++);
    if (!t.IsMap() || !t["target"]) throw Error(where + " needs a 'target'");
    std::string target = detail::as_str(t["target"], source, "target");
    std::string type = t["type"] ? detail::as_str(t["type"], source, "type") : "temporal";
    int li = level_index(target);
    if (li < 0) {
      if (target == arith.name) {
        notes.push_back(where + ": constraint on the compute '" + target + "' ignored");
        continue;
      }
      throw Error(where + ": no storage level called '" + target + "' in the architecture");
    }
    // A spatial constraint on a storage level means its fanout: the implied level below when there is one.
    if (type == "spatial" && fanout(li) == 1 && li > 0 && levels[li - 1].implied) --li;
    merge_constraint(levels[li].constraints, type, t, where, &notes);
  }
  return notes;
} catch (const YAML::Exception& e) {
  throw detail::yaml_error(source, e, "mapspace constraints");
}

void Architecture::apply_ert_file(const std::string& path) { apply_ert_text(detail::read_text(path, "ERT"), path); }

void Architecture::apply_ert_text(const std::string& text, const std::string& source) try {
  YAML::Node root = detail::load(text, source);
  if (!root.IsMap() || !root["ERT"] || !root["ERT"]["tables"] || !root["ERT"]["tables"].IsSequence())
    throw Error(source + ": expected 'ERT: tables: [...]' (Accelergy energy reference table)");
  std::map<std::string, std::map<std::string, double>> tables;
  for (auto t : root["ERT"]["tables"]) {
    if (!t.IsMap() || !t["name"] || !t["actions"] || !t["actions"].IsSequence())
      throw Error(source + ": each ERT table needs 'name' and 'actions'");
    std::string n = base_name(detail::as_str(t["name"], source, "ERT table name"));
    auto& acts = tables[n];
    for (auto ac : t["actions"]) {
      if (!ac.IsMap() || !ac["name"] || !ac["energy"]) throw Error(source + ": ERT table '" + n + "': each action needs 'name' and 'energy'");
      std::string an = detail::as_str(ac["name"], source, "action name");
      double e = detail::as_double(ac["energy"], source, n + "." + an + ".energy");
      // Several argument sets for one action: keep the largest (a conservative choice).
      if (!acts.count(an) || e > acts[an]) acts[an] = e;
    }
  }
  auto get = [&](const std::map<std::string, double>& m, std::initializer_list<const char*> keys, double dflt) {
    for (auto k : keys) {
      auto it = m.find(k);
      if (it != m.end()) return it->second;
    }
    return dflt;
  };
  for (auto& s : levels) {
    if (s.implied) continue;  // Timeloop's dummy storage has no ERT entry and costs nothing
    auto it = tables.find(s.name);
    if (it == tables.end()) throw Error(source + ": no ERT table for storage component '" + s.name + "'");
    double rd = get(it->second, {"read", "random_read"}, -1);
    if (rd < 0) throw Error(source + ": ERT table '" + s.name + "' has no 'read' action");
    s.energy.read = rd;
    s.energy.write = get(it->second, {"write", "random_write", "fill"}, rd);
    s.energy.update = get(it->second, {"update", "write", "random_write"}, s.energy.write);
    s.energy.leak = get(it->second, {"leak"}, 0);
    s.energy.source = "ERT";
  }
  auto it = tables.find(arith.name);
  if (it == tables.end()) throw Error(source + ": no ERT table for compute component '" + arith.name + "'");
  double c = get(it->second, {"compute", "mac_random", "multiply_accumulate", "mac"}, -1);
  if (c < 0) throw Error(source + ": ERT table '" + arith.name + "' has no 'compute' action");
  arith.energy.compute = c;
  arith.energy.source = "ERT";
} catch (const YAML::Exception& e) {
  throw detail::yaml_error(source, e, "ERT");
}

double mac_energy_pj(double wbits, double abits, bool floating) {
  // Horowitz, ISSCC 2014 (45 nm): int8 add 0.03 pJ, int8 mult 0.2 pJ, int32 add 0.1, int32 mult 3.1;
  // fp32 add 0.9 pJ, fp32 mult 3.7 pJ. Multiplier ~ product of operand widths, adder ~ width.
  if (floating) {
    double mult = 3.7 * (wbits * abits) / (32.0 * 32.0);
    double add = 0.9 * std::max(wbits, abits) / 32.0;
    return mult + add;
  }
  double mult = 0.2 * (wbits * abits) / 64.0;
  double add = 0.03 * std::max(wbits, abits) / 8.0;
  return mult + add;
}

void Architecture::apply_builtin(const std::string& table, double weight_bits, double input_bits) {
  const std::string t = lower(table);
  if (t != "horowitz" && t != "eyeriss") throw Error("unknown energy table '" + table + "' (horowitz|eyeriss)");
  // Per-bit storage energies (pJ/bit).
  const double mac16 = mac_energy_pj(16, 16, false);
  for (auto& s : levels) {
    if (s.energy.source == "ERT" || s.implied) continue;
    std::string c = lower(s.cls);
    bool dram = c.find("dram") != std::string::npos;
    bool rf = c.find("reg") != std::string::npos;
    bool array = c.find("array") != std::string::npos || c.find("noc") != std::string::npos;
    double per_bit;
    if (t == "horowitz") {
      // 32-bit SRAM read (8 KB) 5 pJ, 32-bit DRAM read 640 pJ; a register file 1/6 of an SRAM
      // access (the Eyeriss RF:buffer ratio).
      per_bit = dram ? 640.0 / 32 : rf ? 5.0 / 32 / 6 : 5.0 / 32;
    } else {
      // Eyeriss normalized costs, relative to a 16-bit MAC: RF 1, PE array 2, buffer 6, DRAM 200.
      double ratio = dram ? 200 : rf ? 1 : array ? 2 : 6;
      per_bit = ratio * mac16 / 16.0;
    }
    s.energy.read = s.energy.write = s.energy.update = per_bit * static_cast<double>(s.width);
    s.energy.leak = 0;
    s.energy.source = t;
  }
  if (arith.energy.source != "ERT") {
    arith.energy.compute = mac_energy_pj(weight_bits, input_bits, false);
    arith.energy.source = t;
  }
}

// ---------------------------------------------------------------------------------------------
// Bits per element
// ---------------------------------------------------------------------------------------------

double bits_per_element(const std::string& format) {
  // Every name is the format table's (its storage bits where a value occupies more than its element:
  // tf32 in 32); fp64 is a storage width with no qcast element.
  const std::string f = lower(format);
  if (f == "fp64" || f == "float64") return 64;
  try {
    if (const NamedFormat* row = find_named_format(f); row && row->storage_bits) return row->storage_bits;
    return Format::parse(f).bits_per_element();
  } catch (const Error& e) {
    throw Error("unknown number format '" + format + "': " + e.what());
  }
}

bool is_float_format(const std::string& format) {
  // Integer elements (int8, mxint8, int4@fp16/g32) use integer multipliers; minifloats and codebooks
  // (a lookup, then a float multiply) use float ones.
  const std::string f = lower(format);
  if (f == "fp64" || f == "float64") return true;
  return Format::parse(f).elem().kind != Element::Kind::Int;
}

double Precision::bits(Role r) const {
  const std::string& f = r == Role::Weights ? weights : r == Role::Inputs ? activations : (outputs.empty() ? activations : outputs);
  return bits_per_element(f.empty() ? (weights.empty() ? activations : weights) : f);
}

std::string Precision::accumulator_format() const {
  if (!accumulator.empty()) return accumulator;
  if (empty()) return "fp32";
  return default_accumulator(weights.empty() ? activations : weights, activations.empty() ? weights : activations);
}

std::string Precision::key() const {
  return weights + "|" + activations + "|" + outputs + "|" + accumulator + "|" + partial_sums;
}

double Precision::psum_bits() const { return accumulator_bits(partial_sums.empty() ? accumulator_format() : partial_sums); }

nn::Recipe cost_recipe(const std::string& spec) {
  // A format string (int4@fp16/g32) also holds '/': it is a file only where one exists or the name says so.
  std::error_code ec;
  const bool is_file = std::filesystem::is_regular_file(spec, ec) ||
                       spec.ends_with(".json") || spec.ends_with(".yaml") || spec.ends_with(".yml");
  if (is_file) return nn::load_recipe(spec);
  bits_per_element(spec);  // validates (a plain int8 is fine here: the arithmetic is what is costed)
  nn::Recipe r;
  r.weights = r.acts = spec;
  return r;
}

Precision Precision::for_layer(const nn::Recipe& r, const std::string& layer) {
  Precision p;
  r.formats_for(layer, p.weights, p.activations);
  auto full = [](std::string& f) { if (f.empty() || f == "none") f = "fp32"; };
  full(p.weights);
  full(p.activations);
  p.outputs = r.outputs == "none" ? "fp32" : r.outputs;
  p.accumulator = r.accumulator;
  p.partial_sums = r.partial_sums;
  for (const std::string* f : {&p.weights, &p.activations}) bits_per_element(*f);  // a name the cost model knows
  if (!p.outputs.empty()) bits_per_element(p.outputs);
  if (!p.accumulator.empty()) accumulator_bits(p.accumulator);
  if (!p.partial_sums.empty()) accumulator_bits(p.partial_sums);
  mac_cost(p.weights, p.activations, p.accumulator);  // validates the pair and the accumulator
  return p;
}

Precision Precision::from_recipe(const std::string& spec, const std::string& layer) {
  return for_layer(cost_recipe(spec), layer);
}

}  // namespace qcast::hw
