// Mapping: Timeloop map YAML in and out, validity checks, loop-nest printing.
#include <algorithm>
#include <sstream>

#include "hw/yaml_util.hpp"
#include "qcast/error.hpp"
#include "qcast/hw.hpp"

namespace qcast::hw {

namespace {

bool single_char_dims(const Problem& p) {
  for (auto& d : p.dims)
    if (d.size() != 1) return false;
  return true;
}

using detail::split_words;

// The product of a dimension's factors over all levels; -1 when it overflows (or a factor is < 1).
std::int64_t factor_product(const Mapping& m, size_t d) {
  std::int64_t prod = 1;
  for (auto& lm : m.levels)
    for (std::int64_t f : {lm.temporal[d], lm.spatial[d]}) {
      if (f < 1 || __builtin_mul_overflow(prod, f, &prod)) return -1;
    }
  return prod;
}

}  // namespace

Mapping Mapping::trivial(const Problem& p, const Architecture& a) {
  Mapping m;
  const size_t D = p.dims.size(), S = p.data_spaces.size();
  for (size_t i = 0; i < a.levels.size(); ++i) {
    LevelMapping lm;
    lm.temporal.assign(D, 1);
    lm.spatial.assign(D, 1);
    lm.spatial_y.assign(D, false);
    for (size_t d = 0; d < D; ++d) lm.permutation.push_back(static_cast<int>(d));
    lm.keep.assign(S, !a.levels[i].implied);  // an implied (container) level holds nothing
    m.levels.push_back(lm);
  }
  return m;
}

Mapping Mapping::from_yaml_file(const std::string& path, const Problem& p, const Architecture& a) {
  return from_yaml_text(detail::expand_includes(detail::read_text(path, "mapping"), path), p, a, path);
}

Mapping Mapping::from_yaml_text(const std::string& text, const Problem& p, const Architecture& a,
                                const std::string& source) try {
  YAML::Node root = detail::load(text, source);
  YAML::Node list = root.IsMap() ? root["mapping"] : root;
  if (!list || !list.IsSequence()) throw Error(source + ": expected 'mapping:' with a list of {target, type, ...}");
  Mapping m = trivial(p, a);
  const size_t D = p.dims.size();
  const int top = static_cast<int>(a.levels.size()) - 1;
  std::vector<bool> top_given(D, false);
  int idx = 0;
  for (auto e : list) {
    std::string where = source + ": mapping entry " + std::to_string(idx++);
    if (!e.IsMap()) throw Error(where + " is not a map");
    if (!e["target"]) throw Error(where + " has no 'target'");
    std::string target = detail::as_str(e["target"], source, "target");
    where = source + ": mapping entry for '" + target + "'";
    std::string type = e["type"] ? detail::as_str(e["type"], source, "type") : "temporal";
    int li = a.level_index(target);
    if (li < 0) {
      if (target == a.arith.name) continue;  // nothing to map at the compute
      throw Error(where + ": no storage level called '" + target + "' in the architecture");
    }
    // The older form: spatial factors on a storage level whose fanout Timeloop v0.4 gives to the implied
    // container level right below it.
    if (type == "spatial" && a.fanout(li) == 1 && li > 0 && a.levels[li - 1].implied) --li;
    LevelMapping& lm = m.levels[li];
    auto is_dim = [&](const std::string& n) { return p.dim_index(n) >= 0; };
    if (type == "temporal" || type == "spatial") {
      auto& f = type == "temporal" ? lm.temporal : lm.spatial;
      if (YAML::Node fn = e["factors"]) {
        std::vector<std::pair<std::string, std::string>> kv;
        auto add_words = [&](const std::string& text) {
          for (auto& w : split_words(text)) {
            std::string dn, v;
            if (!detail::split_factor(w, is_dim, dn, v))
              throw Error(where + ": factor '" + w + "' is not of the form DIM=N (or Timeloop's DIMN)");
            kv.emplace_back(dn, v);
          }
        };
        if (fn.IsScalar()) {
          add_words(fn.as<std::string>());
        } else if (fn.IsSequence()) {
          for (auto x : fn) add_words(detail::as_str(x, source, "factors"));
        } else if (fn.IsMap()) {
          for (auto it : fn) {
            const std::string dim = detail::as_str(it.first, where, "factors: a dimension name");
            if (!it.second.IsScalar())
              throw Error(where + ": factors: the factor of '" + dim + "'" + detail::at_line(it.second.Mark()) +
                          " must be a single number (e.g. {" + dim + ": 3}), found a list or a mapping");
            kv.emplace_back(dim, it.second.as<std::string>());
          }
        } else {
          throw Error(where + ": 'factors' must be a string like \"R=3 P=16\" or a map");
        }
        for (auto& [k, v] : kv) {
          int d = p.dim_index(k);
          if (d < 0) throw Error(where + ": factor names unknown dimension '" + k + "'");
          std::int64_t n;
          try {
            size_t pos;
            n = std::stoll(v, &pos);
            if (pos != v.size()) throw 0;
          } catch (...) {
            throw Error(where + ": factor " + k + "=" + v + " is not an integer");
          }
          if (n < 1) throw Error(where + ": factor " + k + "=" + v + " must be >= 1");
          f[d] = n;
          if (type == "temporal" && li == top) top_given[d] = true;
        }
      }
      // A temporal permutation orders the loops; a spatial one, with `split`, places them: its first `split`
      // dimensions on meshX, the rest on meshY (Timeloop's parser; no split: all on X).
      if (e["permutation"] || type == "spatial") {
        std::vector<std::string> names;
        YAML::Node pn = e["permutation"];
        if (pn.IsSequence()) {
          for (auto x : pn) names.push_back(detail::as_str(x, source, "permutation"));
        } else {
          std::string s = !pn || pn.IsNull() ? "" : detail::as_str(pn, source, "permutation");
          if (single_char_dims(p) && s.find_first_of(" ,") == std::string::npos)
            for (char c : s) names.emplace_back(1, c);
          else
            names = split_words(s);
        }
        std::vector<int> perm;
        for (auto& n : names) {
          int d = p.dim_index(n);
          if (d < 0) throw Error(where + ": permutation names unknown dimension '" + n + "'");
          if (std::find(perm.begin(), perm.end(), d) != perm.end())
            throw Error(where + ": permutation lists '" + n + "' twice");
          perm.push_back(d);
        }
        for (size_t d = 0; d < D; ++d)
          if (std::find(perm.begin(), perm.end(), static_cast<int>(d)) == perm.end()) perm.push_back(static_cast<int>(d));
        if (type == "temporal") {
          lm.permutation = perm;
        } else {
          std::int64_t split = static_cast<std::int64_t>(D);
          if (e["split"]) {
            split = detail::as_int(e["split"], where, "split");
            if (split < 0) throw Error(where + ": 'split' must be >= 0");
          }
          for (size_t k = 0; k < D; ++k) lm.spatial_y[static_cast<size_t>(perm[k])] = static_cast<std::int64_t>(k) >= split;
        }
      }
    } else if (type == "bypass" || type == "dataspace" || type == "datatype") {
      auto names = [&](const char* key) {
        std::vector<int> out;
        if (YAML::Node l = e[key]) {
          if (l.IsNull()) return out;
          if (!l.IsSequence()) throw Error(where + ": '" + key + "' must be a list of data space names");
          for (auto x : l) {
            std::string n = detail::as_str(x, source, key);
            int ds = p.data_space_index(n);
            if (ds < 0) throw Error(where + ": '" + key + "' names unknown data space '" + n + "'");
            out.push_back(ds);
          }
        }
        return out;
      };
      auto keep = names("keep");
      if (a.levels[li].implied && !keep.empty())
        throw Error(where + ": '" + a.levels[li].name + "' is the implied level of a container and cannot keep data");
      for (int ds : keep) lm.keep[ds] = true;
      for (int ds : names("bypass")) lm.keep[ds] = false;
    } else {
      throw Error(where + ": unknown type '" + type + "' (temporal|spatial|bypass|dataspace|datatype)");
    }
  }
  // Dimensions whose factors do not reach the bound: the outermost level takes the remainder
  // when it was not given a factor for them.
  for (size_t d = 0; d < D; ++d) {
    std::int64_t prod = factor_product(m, d);
    if (prod > 0 && prod != p.bounds[d] && !top_given[d] && p.bounds[d] % prod == 0) {
      m.levels[top].temporal[d] *= p.bounds[d] / prod;
    }
  }
  std::string why = m.check(p, a);
  if (!why.empty()) throw Error(source + ": " + why);
  return m;
} catch (const YAML::Exception& e) {
  throw detail::yaml_error(source, e, "mapping");
}

std::string Mapping::check(const Problem& p, const Architecture& a) const {
  if (levels.size() != a.levels.size()) return "mapping has " + std::to_string(levels.size()) + " levels, architecture " +
                                                std::to_string(a.levels.size());
  for (size_t d = 0; d < p.dims.size(); ++d) {
    std::int64_t prod = factor_product(*this, d);
    if (prod < 0)
      return "factors of dimension " + p.dims[d] + " multiply to more than 2^63 (its bound is " + std::to_string(p.bounds[d]) + ")";
    if (prod != p.bounds[d])
      return "factors of dimension " + p.dims[d] + " multiply to " + std::to_string(prod) + ", not its bound " +
             std::to_string(p.bounds[d]) + " (only perfect factorizations are supported)";
  }
  for (size_t i = 0; i < levels.size(); ++i) {
    std::int64_t sx = 1, sy = 1;
    bool over = false;
    const auto& lm = levels[i];
    for (size_t d = 0; d < lm.spatial.size(); ++d) {
      const bool y = d < lm.spatial_y.size() && lm.spatial_y[d];
      over |= __builtin_mul_overflow(y ? sy : sx, lm.spatial[d], y ? &sy : &sx);
    }
    const int li = static_cast<int>(i);
    if (over || sx > a.fanout_x(li) || sy > a.fanout_y(li))
      return "spatial factors at " + a.levels[i].name + " (" +
             (over ? std::string("> 2^63") : std::to_string(sx) + " along meshX, " + std::to_string(sy) + " along meshY") +
             ") exceed its fanout " + std::to_string(a.fanout_x(li)) + " x " + std::to_string(a.fanout_y(li));
  }
  for (size_t i = 0; i < levels.size(); ++i)
    if (a.levels[i].implied && std::any_of(levels[i].keep.begin(), levels[i].keep.end(), [](bool k) { return k; }))
      return a.levels[i].name + " is the implied level of a container and cannot keep data";
  for (size_t ds = 0; ds < p.data_spaces.size(); ++ds)
    if (!levels.back().keep[ds])
      return "the outermost level " + a.levels.back().name + " must keep " + p.data_spaces[ds].name;
  return "";
}

std::string Mapping::to_yaml(const Problem& p, const Architecture& a) const {
  std::ostringstream o;
  const bool single = single_char_dims(p);
  o << "mapping:\n";
  for (int i = static_cast<int>(levels.size()) - 1; i >= 0; --i) {
    const auto& lm = levels[i];
    auto factors = [&](const std::vector<std::int64_t>& f) {
      std::string s;
      for (size_t d = 0; d < p.dims.size(); ++d) s += (s.empty() ? "" : " ") + p.dims[d] + "=" + std::to_string(f[d]);
      return s;
    };
    o << "  - target: " << a.levels[i].name << "\n    type: temporal\n    factors: " << factors(lm.temporal)
      << "\n    permutation: ";
    for (size_t k = 0; k < lm.permutation.size(); ++k) o << (single || k == 0 ? "" : " ") << p.dims[lm.permutation[k]];
    o << "\n";
    bool any_sp = std::any_of(lm.spatial.begin(), lm.spatial.end(), [](auto f) { return f != 1; });
    if (any_sp) {
      // The dimensions on meshX first, then those on meshY: `split` is where Y begins.
      std::vector<int> xs, ys;
      for (size_t d = 0; d < p.dims.size(); ++d) (d < lm.spatial_y.size() && lm.spatial_y[d] ? ys : xs).push_back(static_cast<int>(d));
      o << "  - target: " << a.levels[i].name << "\n    type: spatial\n    factors: " << factors(lm.spatial) << "\n    permutation: ";
      bool first = true;
      for (auto* v : {&xs, &ys})
        for (int d : *v) o << (single || first ? "" : " ") << p.dims[d], first = false;
      o << "\n    split: " << xs.size() << "\n";
    }
    bool any_bypass = std::any_of(lm.keep.begin(), lm.keep.end(), [](bool k) { return !k; });
    if (any_bypass) {
      o << "  - target: " << a.levels[i].name << "\n    type: bypass\n    keep: [";
      bool first = true;
      for (size_t ds = 0; ds < lm.keep.size(); ++ds)
        if (lm.keep[ds]) o << (first ? "" : ", ") << p.data_spaces[ds].name, first = false;
      o << "]\n    bypass: [";
      first = true;
      for (size_t ds = 0; ds < lm.keep.size(); ++ds)
        if (!lm.keep[ds]) o << (first ? "" : ", ") << p.data_spaces[ds].name, first = false;
      o << "]\n";
    }
  }
  return o.str();
}

std::string Mapping::loop_nest(const Problem& p, const Architecture& a) const {
  std::ostringstream o;
  int depth = 0;
  for (int i = static_cast<int>(levels.size()) - 1; i >= 0; --i) {
    const auto& lm = levels[i];
    o << a.levels[i].name << " [";
    for (size_t ds = 0; ds < lm.keep.size(); ++ds)
      if (lm.keep[ds]) o << " " << p.data_spaces[ds].name;
    o << " ]\n";
    for (int k = static_cast<int>(lm.permutation.size()) - 1; k >= 0; --k) {
      int d = lm.permutation[k];
      if (lm.temporal[d] == 1) continue;
      o << "| " << std::string(2 * depth, ' ') << "for " << p.dims[d] << " in [0:" << lm.temporal[d] << ")\n";
      ++depth;
    }
    for (size_t d = 0; d < p.dims.size(); ++d) {
      if (lm.spatial[d] == 1) continue;
      o << "| " << std::string(2 * depth, ' ') << "spatial-for " << p.dims[d] << " in [0:" << lm.spatial[d] << ")\n";
      ++depth;
    }
  }
  o << "| " << std::string(2 * depth, ' ') << "<< Compute >>\n";
  return o.str();
}

}  // namespace qcast::hw
