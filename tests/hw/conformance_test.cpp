// Timeloop conformance: every exercise in ../shared/conformance/timeloop, run through `qcast cost`,
// must reproduce Timeloop's own stats.txt: per-level, per-data-space scalar reads/fills/updates and
// the cycle count exactly, fJ/Compute per level within 1%. The reference numbers are parsed from the
// stats files, never copied here.
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

struct RefStats {
  // level -> data space -> {reads, fills, updates}
  std::map<std::string, std::map<std::string, std::map<std::string, long long>>> counts;
  std::map<std::string, double> fj_per_compute;  // level (and MACC, Total) -> fJ/Compute
  long long cycles = -1, computes = -1;
};

RefStats parse_stats(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  RefStats r;
  std::string line, level, ds;
  bool in_levels = false, in_fj = false;
  static const std::regex comp(R"(^=== (\S+) ===\s*$)");
  static const std::regex dsl(R"(^    (\w+):\s*$)");
  static const std::regex scalar(R"(^\s+Scalar (reads|fills|updates) \(per-instance\)\s*:\s*(\d+))");
  static const std::regex cyc(R"(^Cycles: (\d+))");
  static const std::regex cmp(R"(^Computes = (\d+))");
  static const std::regex fj(R"(^\s+(\S+)\s+= ([0-9.]+))");
  std::smatch m;
  while (std::getline(in, line)) {
    if (line.rfind("Buffer and Arithmetic Levels", 0) == 0) in_levels = true;
    if (line.rfind("Networks", 0) == 0) in_levels = false;
    if (in_levels && std::regex_match(line, m, comp)) level = m[1], ds.clear();
    else if (in_levels && std::regex_match(line, m, dsl)) ds = m[1];
    else if (in_levels && !ds.empty() && std::regex_search(line, m, scalar)) r.counts[level][ds][m[1]] = std::stoll(m[2]);
    else if (std::regex_search(line, m, cyc)) r.cycles = std::stoll(m[1]);
    else if (std::regex_search(line, m, cmp)) r.computes = std::stoll(m[1]);
    else if (line.rfind("fJ/Compute", 0) == 0) in_fj = true;
    else if (in_fj && std::regex_search(line, m, fj)) r.fj_per_compute[m[1]] = std::stod(m[2]);
  }
  return r;
}

struct Case {
  std::string dir, map, ref;  // exercise folder, map file (in map/), ref-output subfolder ("" = none)
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.dir << " " << c.map; }

// Which map produced which reference output (the exercises' own pairing).
const std::vector<Case> kCases = {
    {"00-model-conv1d-1level", "conv1d-1level.map.yaml", ""},
    {"01-model-conv1d-2level", "conv1d-2level-os.map.yaml", "os"},
    {"01-model-conv1d-2level", "conv1d-2level-ws.map.yaml", "ws"},
    {"02-model-conv1d+oc-2level", "conv1d+oc-2level-os.map.yaml", "no-tiling"},
    {"02-model-conv1d+oc-2level", "conv1d+oc-2level-os-tiled.map.yaml", "tiling"},
    {"03-model-conv1d+oc-3level", "conv1d+oc-3level.map.yaml", "no-bypass"},
    {"03-model-conv1d+oc-3level", "conv1d+oc-3level-bypass.map.yaml", "bypass"},
};

std::string only_file(const fs::path& dir) {
  std::vector<fs::path> f;
  for (auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) f.push_back(e.path());
  EXPECT_EQ(f.size(), 1u) << dir;
  return f.empty() ? "" : f[0].string();
}

}  // namespace

TEST(HwConformance, EveryReferenceOutputIsCovered) {
  QCAST_REQUIRE_SHARED("conformance/timeloop");
  const fs::path root = shared_dir() + "/conformance/timeloop";
  std::set<std::string> listed, found;
  for (auto& c : kCases) listed.insert(c.dir + "/" + c.ref);
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename() == "timeloop-model.stats.txt") {
      auto rel = fs::relative(e.path().parent_path(), root);
      std::string dir = rel.begin()->string();
      std::string sub = rel.parent_path().filename() == "ref-output" ? rel.filename().string() : "";
      found.insert(dir + "/" + sub);
    }
  EXPECT_EQ(listed, found);
}

class HwConformanceCase : public ::testing::TestWithParam<Case> {};

TEST_P(HwConformanceCase, MatchesTimeloop) {
  QCAST_REQUIRE_SHARED("conformance/timeloop");
  const Case& c = GetParam();
  const fs::path ex = fs::path(shared_dir()) / "conformance/timeloop" / c.dir;
  const fs::path ref = c.ref.empty() ? ex / "ref-output" : ex / "ref-output" / c.ref;
  RefStats want = parse_stats((ref / "timeloop-model.stats.txt").string());
  ASSERT_GT(want.cycles, 0);
  ASSERT_FALSE(want.counts.empty());
  std::string cmd = "cost --json --arch '" + only_file(ex / "arch") + "' --problem '" + only_file(ex / "prob") +
                    "' --map '" + (ex / "map" / c.map).string() + "' --ert '" + (ref / "timeloop-model.ERT.yaml").string() + "'";
  auto r = run_cli(cmd);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["layers"].size(), 1u);
  auto& layer = j["layers"][0];
  EXPECT_EQ(layer["cycles"].get<long long>(), want.cycles);
  EXPECT_EQ(layer["computes"].get<long long>(), want.computes);
  const double computes = layer["computes"].get<double>();
  int levels_checked = 0;
  for (auto& lv : layer["levels"]) {
    std::string name = lv["name"];
    ASSERT_TRUE(want.fj_per_compute.count(name)) << "level " << name << " not in the reference";
    double fj = lv["energy_pj"].get<double>() * 1000.0 / computes;
    EXPECT_NEAR(fj, want.fj_per_compute[name], 0.01 * want.fj_per_compute[name]) << c.dir << "/" << c.ref << " " << name;
    if (!want.counts.count(name) || lv["data_spaces"].empty()) continue;
    auto& wl = want.counts[name];
    std::set<std::string> ours, theirs;
    for (auto& [ds, v] : lv["data_spaces"].items()) ours.insert(ds);
    for (auto& [ds, v] : wl) theirs.insert(ds);
    EXPECT_EQ(ours, theirs) << "data spaces kept at " << name;
    for (auto& [ds, counts] : wl)
      for (auto& [what, n] : counts)
        EXPECT_EQ(lv["data_spaces"][ds][what].get<long long>(), n) << c.dir << "/" << c.ref << " " << name << " " << ds << " " << what;
    ++levels_checked;
  }
  EXPECT_EQ(levels_checked, static_cast<int>(want.counts.size()) - (want.counts.count("MACC") ? 1 : 0));
  double total = 0;
  for (auto& lv : layer["levels"]) total += lv["energy_pj"].get<double>();
  EXPECT_NEAR(total * 1000.0 / computes, want.fj_per_compute["Total"], 0.01 * want.fj_per_compute["Total"]);
}

INSTANTIATE_TEST_SUITE_P(Timeloop, HwConformanceCase, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.dir.substr(0, 2) + "_" + (i.param.ref.empty() ? "default" : i.param.ref);
                           for (auto& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });
