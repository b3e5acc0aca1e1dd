// qcast reuse: re-use distances, histograms and miss-ratio curves of a loop nest (or a symbolic
// trace), before and after interchange / tiling.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "command.hpp"
#include "qcast/error.hpp"
#include "qcast/reuse.hpp"

namespace {

using namespace qcast::hw;

struct ReuseArgs {
  std::string nest, trace;
  std::vector<std::string> set, interchange, tile, element;
  bool json = false;
};

std::string dist_str(std::int64_t d) { return d == kInfiniteDistance ? "inf" : std::to_string(d); }

nlohmann::json profile_json(const ReuseProfile& p) {
  nlohmann::json h = nlohmann::json::object();
  for (auto& [d, n] : p.counts) h[std::to_string(d)] = n;
  h["inf"] = p.cold;
  nlohmann::json mrc = nlohmann::json::array();
  for (auto& [s, r] : p.miss_ratio_curve()) mrc.push_back({{"cache_elements", s}, {"miss_ratio", r}});
  return {{"accesses", p.total}, {"cold", p.cold}, {"histogram", h}, {"miss_ratio_curve", mrc}};
}

void print_profile(std::ostream& o, const std::string& indent, const ReuseProfile& p) {
  o << indent << "histogram (distance: accesses):";
  for (auto& [b, n] : p.log2_bins()) o << "  " << b << ": " << n;
  o << "\n" << indent << "miss ratio (fully associative LRU, cache elements: ratio):";
  for (auto& [s, r] : p.miss_ratio_curve()) o << "  " << s << ": " << std::fixed << std::setprecision(3) << r;
  o << std::defaultfloat << "\n";
}

// "A[0][1]" -> ("A", {0, 1})
std::pair<std::string, std::vector<std::int64_t>> parse_element(const std::string& s) {
  static const std::regex re(R"(^\s*([A-Za-z_]\w*)((\s*\[\s*-?\d+\s*\])+)\s*$)");
  std::smatch m;
  if (!std::regex_match(s, m, re)) throw qcast::Error("--element '" + s + "' is not of the form A[0] or B[1][2]");
  std::vector<std::int64_t> idx;
  std::string rest = m[2];
  static const std::regex num(R"(-?\d+)");
  for (auto it = std::sregex_iterator(rest.begin(), rest.end(), num); it != std::sregex_iterator(); ++it)
    idx.push_back(std::stoll(it->str()));
  return {m[1], idx};
}

nlohmann::json analyse(const LoopNest& n, const std::vector<std::string>& elements, std::ostream* text, const std::string& title) {
  std::vector<std::uint64_t> all;
  std::vector<int> who;
  n.trace([&](int b, std::uint64_t a) {
    all.push_back(a);
    who.push_back(b);
  });
  nlohmann::json j;
  j["nest"] = n.to_string();
  j["accesses"] = all.size();
  if (text) {
    *text << "== " << title << "\n";
    std::istringstream s(n.to_string());
    for (std::string line; std::getline(s, line);) *text << "   " << line << "\n";
    *text << "   accesses: " << all.size() << "\n";
  }
  nlohmann::json arrays = nlohmann::json::object();
  for (auto& arr : n.arrays()) {
    std::vector<std::uint64_t> t;
    for (size_t k = 0; k < all.size(); ++k)
      if (n.body[who[k]].array == arr) t.push_back(all[k]);
    auto d = reuse_distances(t);
    auto p = profile(d);
    nlohmann::json aj = profile_json(p);
    if (text) {
      *text << "   array " << arr << " (its own trace): " << p.total << " accesses, " << p.cold << " cold\n";
      print_profile(*text, "     ", p);
    }
    for (auto& e : elements) {
      auto [name, idx] = parse_element(e);
      if (name != arr) continue;
      std::uint64_t addr = n.address(name, idx);
      std::vector<std::int64_t> ds;
      for (size_t k = 0; k < t.size(); ++k)
        if (t[k] == addr) ds.push_back(d[k]);
      nlohmann::json dj = nlohmann::json::array();
      for (auto x : ds) dj.push_back(x == kInfiniteDistance ? nlohmann::json("inf") : nlohmann::json(x));
      aj["elements"][e] = dj;
      if (text) {
        *text << "     re-use distances of " << e << ":";
        size_t shown = 0;
        for (auto x : ds) {
          if (++shown > 12) {
            *text << " ... (" << ds.size() << " accesses)";
            break;
          }
          *text << " " << dist_str(x);
        }
        *text << "\n";
      }
    }
    arrays[arr] = aj;
  }
  j["arrays"] = arrays;
  auto p = profile(reuse_distances(all));
  j["combined"] = profile_json(p);
  if (text) {
    *text << "   all arrays (one cache): " << p.total << " accesses, " << p.cold << " cold\n";
    print_profile(*text, "     ", p);
  }
  return j;
}

void run_reuse(const ReuseArgs& a) {
  if (!a.trace.empty()) {
    if (!a.nest.empty()) throw qcast::Error("give a loop nest or --trace, not both");
    std::istringstream s(a.trace);
    std::vector<std::string> syms;
    std::map<std::string, std::uint64_t> ids;
    std::vector<std::uint64_t> t;
    for (std::string w; s >> w;) {
      syms.push_back(w);
      t.push_back(ids.emplace(w, ids.size()).first->second);
    }
    if (t.empty()) throw qcast::Error("--trace is empty");
    auto d = reuse_distances(t);
    auto p = profile(d);
    if (a.json) {
      nlohmann::json dj = nlohmann::json::array();
      for (auto x : d) dj.push_back(x == kInfiniteDistance ? nlohmann::json("inf") : nlohmann::json(x));
      nlohmann::json j = profile_json(p);
      j["trace"] = syms;
      j["distances"] = dj;
      std::cout << qcast::cli::json_output(j, 2) << "\n";
      return;
    }
    std::cout << "access    ";
    for (auto& w : syms) std::cout << std::setw(4) << w;
    std::cout << "\ndistance  ";
    for (auto x : d) std::cout << std::setw(4) << dist_str(x);
    std::cout << "\n";
    print_profile(std::cout, "", p);
    return;
  }
  if (a.nest.empty()) throw qcast::Error("give a loop nest, e.g. 'for j<N; for i<M: B[j][i] += A[i]', or --trace");
  std::map<std::string, std::int64_t> params;
  for (auto& s : a.set) {
    std::istringstream ss(s);
    for (std::string kv; std::getline(ss, kv, ',');) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) throw qcast::Error("--set '" + kv + "' is not NAME=VALUE");
      try {
        params[kv.substr(0, eq)] = std::stoll(kv.substr(eq + 1));
      } catch (...) {
        throw qcast::Error("--set '" + kv + "': value is not an integer");
      }
    }
  }
  LoopNest before = LoopNest::parse(a.nest, params);
  LoopNest after = before;
  bool changed = false;
  for (auto& x : a.interchange) {
    auto c = x.find(',');
    if (c == std::string::npos) throw qcast::Error("--interchange '" + x + "' is not A,B");
    after = after.interchange(x.substr(0, c), x.substr(c + 1));
    changed = true;
  }
  for (auto& x : a.tile) {
    auto c = x.find(':');
    if (c == std::string::npos) throw qcast::Error("--tile '" + x + "' is not VAR:SIZE");
    std::int64_t t;
    try {
      t = std::stoll(x.substr(c + 1));
    } catch (...) {
      throw qcast::Error("--tile '" + x + "': size is not an integer");
    }
    after = after.tile(x.substr(0, c), t);
    changed = true;
  }
  std::vector<std::string> elements = a.element;
  if (elements.empty())  // default: element 0 of every array
    for (auto& arr : before.arrays()) {
      std::string e = arr;
      for (auto& acc : before.body)
        if (acc.array == arr) {
          for (size_t k = 0; k < acc.index.size(); ++k) e += "[0]";
          break;
        }
      elements.push_back(e);
    }
  for (auto& e : elements) {
    auto [name, idx] = parse_element(e);
    before.address(name, idx);  // throws for an unknown array or a wrong rank
  }
  if (a.json) {
    nlohmann::json j;
    j["before"] = analyse(before, elements, nullptr, "");
    if (changed) j["after"] = analyse(after, elements, nullptr, "");
    std::cout << qcast::cli::json_output(j, 2) << "\n";
    return;
  }
  analyse(before, elements, &std::cout, changed ? "before" : "loop nest");
  if (changed) analyse(after, elements, &std::cout, "after");
}

qcast::cli::Registrar reg("reuse", [](CLI::App& root) {
  auto* sub = root.add_subcommand("reuse", "re-use distances, histograms and miss-ratio curves of a loop nest, before/after interchange or tiling");
  auto a = std::make_shared<ReuseArgs>();
  sub->add_option("nest", a->nest, "loop nest, e.g. 'for j<N; for i<M: B[j][i] += A[i]'");
  sub->add_option("--set", a->set, "parameter values, e.g. N=8,M=16");
  sub->add_option("--interchange", a->interchange, "swap two loops, e.g. i,j (repeatable)");
  sub->add_option("--tile", a->tile, "tile a loop, e.g. i:4 (the tile loop i_t goes outermost; repeatable)");
  sub->add_option("--element", a->element, "report the re-use distances of this element, e.g. A[0] (default: element 0 of each array)");
  sub->add_option("--trace", a->trace, "analyse a symbolic trace instead, e.g. 'A B C A B B A C D B'");
  sub->add_flag("--json", a->json, "print JSON");
  sub->callback([a] { run_reuse(*a); });
});

}  // namespace
