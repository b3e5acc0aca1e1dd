// Malformed architecture / problem / mapping / model inputs: qcast::Error with a clear message,
// and exit code 2 from the CLI.
#include <gtest/gtest.h>

#include <fstream>

#include "qcast/error.hpp"
#include "qcast/hw.hpp"
#include "hw/hw_fixtures.hpp"
#include "test_support.hpp"

using namespace qcast::hw;
using namespace qcast::hw::fixtures;

namespace {


void expect_error(const std::function<void()>& f, const std::string& needle) {
  std::string e = error_of(f);
  EXPECT_NE(e.find(needle), std::string::npos) << "message: " << e << "\nexpected to contain: " << needle;
}

std::string replace(std::string s, const std::string& a, const std::string& b) {
  auto pos = s.find(a);
  EXPECT_NE(pos, std::string::npos) << a;
  return s.replace(pos, a.size(), b);
}

}  // namespace

TEST(HwParse, ValidInputsParse) {
  Problem p = Problem::from_yaml_text(kProb);
  EXPECT_EQ(p.computes(), 48);
  EXPECT_EQ(p.data_space_size(1), 18);
  Architecture a = Architecture::from_yaml_text(kArch);
  ASSERT_EQ(a.levels.size(), 2u);
  EXPECT_EQ(a.levels[1].name, "MainMemory");
  EXPECT_EQ(a.levels[1].block_size(), 8);
  EXPECT_EQ(a.levels[0].size_words(), 64);
}

TEST(HwParse, MalformedProblem) {
  expect_error([] { Problem::from_yaml_text("problem: [1, 2", "p.yaml"); }, "p.yaml:1:1: invalid YAML: end of sequence flow not found");
  expect_error([] { Problem::from_yaml_text("shape: {}", "p.yaml"); }, "missing top-level 'problem:'");
  expect_error([] { Problem::from_yaml_text(replace(kProb, "instance: { R: 3, P: 16 }", "instance: { R: 3 }")); },
               "no size for dimension 'P'");
  expect_error([] { Problem::from_yaml_text(replace(kProb, "[ [ [R], [P] ] ]", "[ [ [R], [X] ] ]")); },
               "projection names 'X'");
  expect_error([] { Problem::from_yaml_text(replace(kProb, "P: 16", "P: sixteen")); }, "instance.P' must be an integer");
  expect_error([] { Problem::from_yaml_text(replace(kProb, "P: 16", "P: 0")); }, "must be >= 1");
}

TEST(HwParse, MalformedArchitecture) {
  expect_error([] { Architecture::from_yaml_text("architecture: {version: 0.4}", "a.yaml"); }, "a.yaml: 'architecture: nodes:'");
  expect_error([] { Architecture::from_yaml_text(replace(kArch, "!Component\n    name: Buffer", "!Widget\n    name: Buffer")); },
               "unknown tag '!Widget'");
  expect_error([] { Architecture::from_yaml_text(replace(kArch, "depth: 64", "depth: lots")); }, "'Buffer.depth' must be an integer");
  expect_error([] { Architecture::from_yaml_text(replace(kArch, "class: intmac", "class: SRAM")); }, "no compute component");
  expect_error([] { Architecture::from_yaml_text(replace(kArch, "{ depth: 64, width: 8, datawidth: 8 }", "{ depth: 64 }")); },
               "needs 'width' and/or 'datawidth'");
  Architecture a = Architecture::from_yaml_text(kArch);
  expect_error([&] { a.apply_ert_text("ERT: {tables: []}", "e.yaml"); }, "no ERT table for storage component");
  // ERT names are matched by their last segment, instance ranges ignored.
  a.apply_ert_text(R"(ERT:
  tables:
  - {name: "top.MainMemory[1..1]", actions: [{name: read, energy: 10}, {name: write, energy: 8}]}
  - {name: "top.PE[0..3].Buffer[0..3]", actions: [{name: read, energy: 1}, {name: update, energy: 2}, {name: leak, energy: 0.5}]}
  - {name: "top.PE[0..3].MACC[0..3]", actions: [{name: compute, energy: 3}]}
)");
  EXPECT_EQ(a.levels[1].energy.read, 10);
  EXPECT_EQ(a.levels[1].energy.update, 8);  // no update action: the write energy
  EXPECT_EQ(a.levels[0].energy.write, 1);   // no write action: the read energy
  EXPECT_EQ(a.levels[0].energy.update, 2);
  EXPECT_EQ(a.levels[0].energy.leak, 0.5);
  EXPECT_EQ(a.arith.energy.compute, 3);
}

TEST(HwParse, MalformedMapping) {
  Problem p = Problem::from_yaml_text(kProb);
  Architecture a = Architecture::from_yaml_text(kArch);
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: L3\n    type: temporal\n    factors: R=3", p, a, "m.yaml"); },
               "m.yaml: mapping entry for 'L3': no storage level called 'L3'");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    factors: R=3 P=5", p, a); },
               "factors of dimension P multiply to 5");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    factors: R=3 Z=1", p, a); },
               "unknown dimension 'Z'");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    factors: R", p, a); }, "not of the form DIM=N");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    factors: R=x3", p, a); }, "is not an integer");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    type: sideways", p, a); }, "unknown type 'sideways'");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    factors: {R: [1, 3]}", p, a, "m.yaml"); },
               "m.yaml: mapping entry for 'Buffer': factors: the factor of 'R' (line 3, column 18) must be a single number");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: MainMemory\n    type: bypass\n    bypass: [Weights]", p, a); },
               "outermost level MainMemory must keep Weights");
  expect_error([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    type: spatial\n    factors: P=2", p, a); },
               "exceed its fanout");
}

TEST(HwParse, CliExitsWithTwo) {
  qcast::test::TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name)) << text;
    return dir.file(name);
  };
  std::string arch = write("a.yaml", kArch), prob = write("p.yaml", kProb);
  std::string bad_arch = write("bad_a.yaml", replace(kArch, "depth: 64", "depth: -3"));
  std::string bad_prob = write("bad_p.yaml", replace(kProb, "read_write: True", "read_write: maybe"));
  std::string bad_map = write("bad_m.yaml", "mapping:\n  - target: Buffer\n    factors: R=2 P=16\n");
  std::string bad_model = write("bad_model.json", "{\"layers\": [{\"name\": \"c\", \"op\": \"conv\", \"C\": \"x\"}]}");
  std::string bad_model2 = write("bad_model2.json", "{\"layers\": [{\"name\": 7, \"op\": \"conv\"}]}");
  struct {
    std::string args, needle;
  } cases[] = {
      {"cost --arch " + bad_arch + " --problem " + prob, "bad_a.yaml"},
      {"cost --arch " + arch + " --problem " + bad_prob, "read_write must be true or false"},
      {"cost --arch " + arch + " --problem " + prob + " --map " + bad_map, "factors of dimension R multiply to 2"},
      {"cost --arch " + arch + " --model " + bad_model, "\"C\" must be an integer"},
      {"cost --arch " + arch + " --model " + bad_model2, "malformed layer list"},
      {"cost --arch " + arch + " --problem " + prob + " --recipe float7", "unknown number format 'float7'"},
      {"cost --arch " + arch + " --problem " + prob + " --search speed", "unknown search objective"},
  };
  for (auto& c : cases) {
    auto r = qcast::test::run_cli(c.args);
    EXPECT_EQ(r.rc, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
  }
  auto r = qcast::test::run_cli("cost --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("--search"), std::string::npos);
  r = qcast::test::run_cli("reuse --help");
  EXPECT_EQ(r.rc, 0);
}

TEST(HwParse, CoefficientsFromTheInstance) {
  Problem p = Problem::from_yaml_file(std::string(QCAST_SOURCE_DIR) + "/examples/problems/conv2d.prob.yaml");
  EXPECT_EQ(p.computes(), 32LL * 64 * 9 * 256);
  // Inputs: N * C * (Wstride*(P-1) + R) * (Q-1 + S) with Wstride = 2 from the instance.
  EXPECT_EQ(p.data_space_size(p.data_space_index("Inputs")), 1LL * 32 * (2 * 15 + 3) * (15 + 3));
}
