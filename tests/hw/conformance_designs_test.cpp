// Timeloop conformance on the example designs of ../shared/conformance/timeloop-designs (simba_like,
// simple_weight_stationary, simple_output_stationary): `qcast cost` evaluates the mapping Timeloop's
// mapper chose (its timeloop-mapper.map.yaml, unedited) on the design's arch.yaml (unedited: !Parallel,
// !Nothing, containers with meshX/meshY, constraints with split) with Timeloop's ERT, and must give the
// numbers of Timeloop's stats file: per level and data space the scalar reads / fills / updates (exact),
// cycles (exact), utilization and fJ/compute per level and in total (within 1%). Every number is parsed
// from Timeloop's files at run time, never copied here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "test_support.hpp"

namespace fs = std::filesystem;
using qcast::test::run_cli;
using qcast::test::shared_dir;

namespace {

struct Stats {
  std::map<std::string, std::map<std::string, std::map<std::string, long long>>> counts;  // level/ds/what
  std::map<std::string, double> fj;  // level, mac, Total -> fJ/Compute
  long long cycles = -1, computes = -1;
  double utilization_pct = -1;
};

Stats parse(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  Stats r;
  std::string line, level, ds;
  bool in_levels = false, in_fj = false;
  static const std::regex comp(R"(^=== (\S+) ===\s*$)"), dsl(R"(^    (\w+):\s*$)");
  static const std::regex scalar(R"(^\s+Scalar (reads|fills|updates) \(per-instance\)\s*:\s*(\d+))");
  static const std::regex cyc(R"(^Cycles: (\d+))"), cmp(R"(^Computes = (\d+))"), util(R"(^Utilization: ([0-9.]+)%)");
  static const std::regex fj(R"(^\s+(\S+)\s+= ([0-9.]+))");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line.rfind("Buffer and Arithmetic Levels", 0) == 0) in_levels = true;
    if (line.rfind("Networks", 0) == 0) in_levels = false;
    if (in_levels && std::regex_match(line, m, comp)) level = m[1], ds.clear();
    else if (in_levels && std::regex_match(line, m, dsl)) ds = m[1];
    else if (in_levels && !ds.empty() && std::regex_search(line, m, scalar)) r.counts[level][ds][m[1]] = std::stoll(m[2]);
    else if (std::regex_search(line, m, cyc)) r.cycles = std::stoll(m[1]);
    else if (std::regex_search(line, m, util)) r.utilization_pct = std::stod(m[1]);
    else if (std::regex_search(line, m, cmp)) r.computes = std::stoll(m[1]);
    else if (line.rfind("fJ/Compute", 0) == 0) in_fj = true;
    else if (in_fj && std::regex_search(line, m, fj)) r.fj[m[1]] = std::stod(m[2]);
  }
  return r;
}

const fs::path kRoot = "conformance/timeloop-designs";
const std::vector<std::string> kDesigns = {"simba_like", "simple_weight_stationary", "simple_output_stationary"};

// The problem file of a ref_outputs/<name> folder: the designs' default problem.
fs::path problem_for(const fs::path& root, const std::string& name) {
  if (name == "default_problem") return root / "_include/default_problem.yaml";
  return {};
}

void near(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 0.01 * std::abs(want) + 1e-9) << what;
}

}  // namespace

TEST(HwConformanceDesigns, EveryReferenceOutputIsCovered) {
  QCAST_REQUIRE_SHARED(kRoot.string());
  const fs::path root = fs::path(shared_dir()) / kRoot;
  std::set<std::string> found, listed(kDesigns.begin(), kDesigns.end());
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename() == "timeloop-mapper.stats.txt") {
      auto rel = fs::relative(e.path(), root);
      found.insert(rel.begin()->string());
      EXPECT_FALSE(problem_for(root, e.path().parent_path().filename().string()).empty())
          << "no problem file known for " << rel;
    }
  EXPECT_EQ(found, listed);
}

class HwConformanceDesign : public ::testing::TestWithParam<std::string> {};

TEST_P(HwConformanceDesign, MapperChoiceMatchesTimeloop) {
  QCAST_REQUIRE_SHARED(kRoot.string());
  const fs::path root = fs::path(shared_dir()) / kRoot;
  const fs::path design = root / GetParam();
  int cases = 0;
  for (auto& e : fs::directory_iterator(design / "ref_outputs")) {
    const fs::path ref = e.path();
    SCOPED_TRACE(ref.string());
    ++cases;
    Stats want = parse(ref / "timeloop-mapper.stats.txt");
    ASSERT_GT(want.cycles, 0);
    ASSERT_GT(want.utilization_pct, 0);
    ASSERT_FALSE(want.counts.empty());
    const fs::path prob = problem_for(root, ref.filename().string());
    ASSERT_FALSE(prob.empty());
    std::string cmd = "cost --json --arch '" + (design / "arch.yaml").string() + "' --problem '" + prob.string() +
                      "' --map '" + (ref / "timeloop-mapper.map.yaml").string() + "' --ert '" +
                      (ref / "timeloop-mapper.ERT.yaml").string() + "'";
    auto r = run_cli(cmd);
    ASSERT_EQ(r.rc, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["schema"], 1);
    ASSERT_EQ(j["layers"].size(), 1u);
    auto& layer = j["layers"][0];
    EXPECT_EQ(layer["cycles"].get<long long>(), want.cycles);
    EXPECT_EQ(layer["computes"].get<long long>(), want.computes);
    near(100.0 * layer["utilization"].get<double>(), want.utilization_pct, "utilization %");
    const double computes = layer["computes"].get<double>();
    std::set<std::string> checked;
    double total = 0;
    for (auto& lv : layer["levels"]) {
      const std::string name = lv["name"];
      const double fj = lv["energy_pj"].get<double>() * 1000.0 / computes;
      total += lv["energy_pj"].get<double>();
      if (lv.value("implied", false)) {
        // Timeloop hides its storage-less inter-container levels (no energy, nothing kept).
        EXPECT_EQ(fj, 0.0) << name;
        EXPECT_TRUE(lv["data_spaces"].empty()) << name;
        EXPECT_FALSE(want.fj.count(name)) << name;
        continue;
      }
      ASSERT_TRUE(want.fj.count(name)) << "level " << name << " not in Timeloop's fJ/Compute table";
      near(fj, want.fj[name], name + " fJ/compute");
      checked.insert(name);
      if (lv["data_spaces"].empty()) continue;  // the compute
      ASSERT_TRUE(want.counts.count(name)) << name;
      std::set<std::string> ours, theirs;
      for (auto& [ds, v] : lv["data_spaces"].items()) ours.insert(ds);
      for (auto& [ds, v] : want.counts[name]) theirs.insert(ds);
      EXPECT_EQ(ours, theirs) << "data spaces kept at " << name;
      for (auto& [ds, counts] : want.counts[name])
        for (auto& [what, n] : counts)
          EXPECT_EQ(lv["data_spaces"][ds][what].get<long long>(), n) << name << " " << ds << " " << what;
    }
    // Every level of Timeloop's table (and nothing else) was compared.
    std::set<std::string> theirs;
    for (auto& [n, v] : want.fj)
      if (n != "Total") theirs.insert(n);
    EXPECT_EQ(checked, theirs);
    near(total * 1000.0 / computes, want.fj["Total"], "Total fJ/compute");
  }
  EXPECT_GT(cases, 0);
}

INSTANTIATE_TEST_SUITE_P(Timeloop, HwConformanceDesign, ::testing::ValuesIn(kDesigns),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// The mapper on the designs' own constraints (arch-level keep/bypass, fixed factors, !Parallel
// registers of one word): a valid mapping, the constrained data spaces where the architecture puts
// them, within the per-layer time budget.
TEST_P(HwConformanceDesign, SearchHonoursTheDesignConstraints) {
  QCAST_REQUIRE_SHARED(kRoot.string());
  const fs::path root = fs::path(shared_dir()) / kRoot;
  const fs::path design = root / GetParam();
  const fs::path ref = design / "ref_outputs/default_problem";
  auto r = run_cli("cost --json --threads 2 --arch '" + (design / "arch.yaml").string() + "' --problem '" +
                   (root / "_include/default_problem.yaml").string() + "' --mapper '" + (root / "_include/mapper.yaml").string() +
                   "' --ert '" + (ref / "timeloop-mapper.ERT.yaml").string() + "'");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("mapper setting 'timeout' ignored"), std::string::npos) << r.err;
  auto j = nlohmann::json::parse(r.out);
  auto& layer = j["layers"][0];
  // Timeloop's own choice obeys the same constraints: every level keeps what it keeps there.
  std::map<std::string, std::set<std::string>> kept_by_timeloop;
  std::ifstream mf(ref / "timeloop-mapper.map.txt");
  static const std::regex head(R"(^(\w+) \[(.*)\]\s*$)"), ds(R"((\w+):\d+)");
  for (std::string line; std::getline(mf, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, head)) continue;
    std::string inner = m[2];
    auto& set = kept_by_timeloop[m[1]];
    for (std::sregex_iterator it(inner.begin(), inner.end(), ds), end; it != end; ++it) set.insert((*it)[1]);
  }
  ASSERT_FALSE(kept_by_timeloop.empty());
  int registers = 0;
  for (auto& lv : layer["levels"]) {
    const std::string name = lv["name"];
    if (!kept_by_timeloop.count(name) || lv.value("implied", false)) continue;
    // Levels whose keep set the architecture fixes completely (one-word registers, the !Parallel
    // buffers) must match; the others are the mapper's choice.
    if (name.find("reg") == std::string::npos && name.find("Regs") == std::string::npos && name != "PEAccuBuffer" &&
        name != "PEWeightBuffer" && name != "PEInputBuffer")
      continue;
    std::set<std::string> ours;
    for (auto& [d, v] : lv["data_spaces"].items()) ours.insert(d);
    EXPECT_EQ(ours, kept_by_timeloop[name]) << name;
    ++registers;
  }
  EXPECT_GE(registers, 3);
  // At the default budget, qcast's choice is at least as good as the one Timeloop's mapper published,
  // on the mapper file's objective (EDP: energy x cycles, Timeloop's from its stats file).
  Stats want = parse(ref / "timeloop-mapper.stats.txt");
  ASSERT_GT(want.fj["Total"], 0);
  const double timeloop_edp = want.fj["Total"] * static_cast<double>(want.computes) / 1000.0 * static_cast<double>(want.cycles);
  const double qcast_edp = layer["energy_pj"].get<double>() * layer["cycles"].get<double>();
  EXPECT_LE(qcast_edp, timeloop_edp) << "qcast EDP " << qcast_edp << " pJ x cycles, Timeloop's " << timeloop_edp;
  std::printf("[ %s ] EDP qcast %.4g, Timeloop %.4g (pJ x cycles)\n", GetParam().c_str(), qcast_edp, timeloop_edp);
}
