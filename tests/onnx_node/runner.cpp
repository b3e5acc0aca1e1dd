// ONNX backend node conformance: runs ONNX's own node test cases (generated at test time by
// generate.py into the build tree) through qcast's importer and executor and compares every output with
// ONNX's reference within the backend test's tolerance (rtol 1e-3, atol 1e-7).
//
// Usage: onnx_node_runner DATA_DIR SKIP_LIST.md [NAME_SUBSTRING] [-v]
// A case whose graph uses an operator outside qcast's table is counted "unsupported" per operator. Every
// other case must pass or be listed, with its reason, in the skip table of SKIP_LIST.md (docs/models.md,
// between the `onnx-node-skips` markers); a listed case that passes, or a list entry that matches no case,
// is a failure too, so the list stays exact. Prints a per-operator table. Exit 0 all good, 1 failures,
// 77 (CTest's skip) when DATA_DIR is absent (python3-onnx not installed).
#include <fnmatch.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/nn/graph.hpp"
#include "qcast/nn/onnx.hpp"

namespace fs = std::filesystem;
using namespace qcast;
using namespace qcast::nn;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot read " + p.string());
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

struct SkipEntry {
  std::string pattern, reason;
  int matched = 0;
};

// Rows "| `pattern` | reason |" between <!-- onnx-node-skips begin --> and <!-- onnx-node-skips end -->.
std::vector<SkipEntry> read_skips(const std::string& md_path) {
  std::istringstream in(slurp(md_path));
  std::vector<SkipEntry> r;
  bool on = false;
  for (std::string line; std::getline(in, line);) {
    if (line.find("<!-- onnx-node-skips begin -->") != std::string::npos) { on = true; continue; }
    if (line.find("<!-- onnx-node-skips end -->") != std::string::npos) break;
    if (!on || line.rfind("| `", 0) != 0) continue;
    const auto e = line.find('`', 3);
    const auto bar = line.find('|', e);
    if (e == std::string::npos || bar == std::string::npos) throw Error(md_path + ": malformed skip row: " + line);
    SkipEntry s{line.substr(3, e - 3), line.substr(bar + 1), 0};
    while (!s.reason.empty() && (s.reason.back() == '|' || s.reason.back() == ' ')) s.reason.pop_back();
    while (!s.reason.empty() && s.reason.front() == ' ') s.reason.erase(0, 1);
    if (s.reason.empty()) throw Error(md_path + ": skip row without a reason: " + line);
    r.push_back(s);
  }
  if (!on) throw Error(md_path + ": no onnx-node-skips table");
  return r;
}

std::string squash(const std::string& s) {
  std::string r;
  for (char ch : s) if (ch != '_') r += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return r;
}

// The operator a case tests, from its name: the longest operator name (among those of its own graph,
// then among every operator of every case and qcast's table) that the name starts with; failing that, the
// longest of its own graph's operators the name contains; else its first node's. An "_expanded" case (the
// operator's function body: test_softmax_axis_0_expanded holds ReduceMax, Exp, ...) counts for the
// operator it expands.
std::string case_op(const std::string& name, const std::set<std::string>& ops, const std::set<std::string>& all_ops,
                    const std::string& first) {
  std::string s = squash(name.substr(5));
  const bool expanded = s.size() > 8 && s.compare(s.size() - 8, 8, "expanded") == 0;
  if (expanded) s.resize(s.size() - 8);
  auto longest = [&](const std::set<std::string>& cand, bool prefix) {
    std::string best;
    for (const auto& o : cand) {
      const std::string q = squash(o);
      const auto at = s.find(q);
      if (at != std::string::npos && (!prefix || at == 0) && q.size() > squash(best).size()) best = o;
    }
    return best;
  };
  std::string b;
  if (!expanded) b = longest(ops, true);
  if (b.empty()) b = longest(all_ops, true);
  if (b.empty() && !expanded) b = longest(ops, false);
  return b.empty() ? first : b;
}

bool close(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= 1e-7 + 1e-3 * std::fabs(want);
}

// Runs one case (all its data sets); returns "" on success, else what went wrong.
std::string run_case(const fs::path& dir) {
  const std::string model = slurp(dir / "model.onnx");
  onnx::ModelProto mp;
  if (!mp.ParseFromString(model)) return "model.onnx does not parse";
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return "no test_data_set_*";
  for (const auto& ds : sets) {
    // The data input (input 0, when it is a float tensor of rank >= 1) is fed to the executor at run
    // time; the operands (shapes, axes, indices, scales, conditions, weights, scalars) are bound as
    // constants, as they are in exported models.
    std::map<std::string, Value> bound;
    std::vector<Value> feeds;
    const int nin = mp.graph().input_size();
    for (int k = 0; k < nin; ++k) {
      const fs::path p = ds / ("input_" + std::to_string(k) + ".pb");
      if (!fs::exists(p)) return "missing " + p.string();
      const std::string b = slurp(p);
      Value v = parse_onnx_tensor(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), p.string());
      if (k == 0 && !v.is_int && !v.shape.empty()) feeds.push_back(v);
      else bound[mp.graph().input(k).name()] = v;
    }
    Graph g = parse_onnx(reinterpret_cast<const std::uint8_t*>(model.data()), model.size(), (dir / "model.onnx").string(), bound);
    auto out = g.run(feeds, 1);
    if (out.size() != static_cast<std::size_t>(mp.graph().output_size())) return "output count differs";
    for (std::size_t j = 0; j < out.size(); ++j) {
      const fs::path p = ds / ("output_" + std::to_string(j) + ".pb");
      const std::string b = slurp(p);
      Value want = parse_onnx_tensor(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), p.string());
      if (out[j].shape != want.shape) return "output " + std::to_string(j) + " has shape " + shape_str(out[j].shape) + ", expected " + shape_str(want.shape);
      for (std::int64_t k = 0; k < want.numel(); ++k)
        if (!close(out[j].at(k), want.at(k))) {
          std::ostringstream m;
          m << "output " << j << " element " << k << ": got " << out[j].at(k) << ", expected " << want.at(k);
          return m.str();
        }
    }
  }
  return "";
}

// Calls fn on every node of g and of its control-flow bodies (If's branches, Loop's and Scan's bodies).
template <class Fn>
void each_node(const onnx::GraphProto& g, const Fn& fn) {
  for (const auto& n : g.node()) {
    fn(n);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) each_node(a.g(), fn);
      for (const auto& sub : a.graphs()) each_node(sub, fn);
    }
  }
}

struct OpCount {
  int cases = 0, passed = 0, failed = 0, listed = 0, unsupported = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: onnx_node_runner DATA_DIR SKIP_LIST.md [NAME_SUBSTRING] [-v]\n";
    return 2;
  }
  const fs::path root = fs::path(argv[1]) / "node";
  std::string filter;
  bool verbose = false;
  for (int k = 3; k < argc; ++k) {
    if (std::string(argv[k]) == "-v") verbose = true;
    else filter = argv[k];
  }
  if (!fs::is_directory(root)) {
    std::cout << "SKIP: no ONNX node test data in " << root << " (python3-onnx missing? scripts/setup installs it)\n";
    return 77;
  }
  std::vector<SkipEntry> skips;
  try {
    skips = read_skips(argv[2]);
  } catch (const Error& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().find(filter) != std::string::npos) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  // Every operator named by any case, for attributing the expanded ones.
  std::set<std::string> all_ops;
  for (const auto& o : supported_ops()) all_ops.insert(o);
  for (const auto& dir : cases) {
    onnx::ModelProto mp;
    if (mp.ParseFromString(slurp(dir / "model.onnx")))
      each_node(mp.graph(), [&](const onnx::NodeProto& n) { all_ops.insert(n.op_type()); });
  }
  std::map<std::string, OpCount> per_op;
  std::vector<std::string> failures;
  for (const auto& dir : cases) {
    const std::string name = dir.filename().string();
    onnx::ModelProto mp;
    std::set<std::string> ops;
    std::string first, missing;
    if (mp.ParseFromString(slurp(dir / "model.onnx"))) {
      each_node(mp.graph(), [&](const onnx::NodeProto& n) {
        const bool std_domain = n.domain().empty() || n.domain() == "ai.onnx";
        const std::string op = std_domain ? n.op_type() : n.domain() + "." + n.op_type();
        if (first.empty()) first = op;
        ops.insert(op);
        if ((!std_domain || !op_supported(op)) && missing.empty()) missing = op;
      });
    }
    const std::string op = case_op(name, ops, all_ops, first.empty() ? "?" : first);
    OpCount& pc = per_op[op];
    ++pc.cases;
    if (!missing.empty()) {
      ++pc.unsupported;
      if (verbose) std::cout << "unsupported " << name << " (" << missing << ")\n";
      continue;
    }
    SkipEntry* listed = nullptr;
    for (auto& s : skips)
      if (fnmatch(s.pattern.c_str(), name.c_str(), 0) == 0) { listed = &s; ++s.matched; break; }
    std::string err;
    try {
      err = run_case(dir);
    } catch (const std::exception& e) {
      err = e.what();
    }
    if (listed) {
      ++pc.listed;
      if (err.empty()) failures.push_back(name + ": passes but is in the skip list (" + listed->reason + "); remove it");
      else if (verbose) std::cout << "listed " << name << ": " << err << "\n";
    } else if (err.empty()) {
      ++pc.passed;
      if (verbose) std::cout << "pass " << name << "\n";
    } else {
      ++pc.failed;
      failures.push_back(name + ": " + err);
    }
  }
  if (filter.empty())
    for (const auto& s : skips)
      if (s.matched == 0) failures.push_back("skip-list entry `" + s.pattern + "` matches no case");
  OpCount tot;
  std::printf("%-28s %6s %6s %6s %7s %11s\n", "operator", "cases", "passed", "failed", "listed", "unsupported");
  for (const auto& [op, c] : per_op) {
    std::printf("%-28s %6d %6d %6d %7d %11d\n", op.c_str(), c.cases, c.passed, c.failed, c.listed, c.unsupported);
    tot.cases += c.cases; tot.passed += c.passed; tot.failed += c.failed; tot.listed += c.listed; tot.unsupported += c.unsupported;
  }
  std::printf("%-28s %6d %6d %6d %7d %11d\n", "TOTAL", tot.cases, tot.passed, tot.failed, tot.listed, tot.unsupported);
  std::string ver;
  try { ver = slurp(fs::path(argv[1]) / "ONNX_VERSION"); } catch (const Error&) {}
  std::cout << "ONNX node cases from onnx " << (ver.empty() ? "?\n" : ver);
  for (const auto& f : failures) std::cout << "FAIL " << f << "\n";
  return failures.empty() ? 0 : 1;
}
