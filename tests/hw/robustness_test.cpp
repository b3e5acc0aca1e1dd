// Issue 19 regressions: sizes and factors whose arithmetic would leave 64 bits, negative strides and
// coefficients, depths that overflow capacity, and traces too long to hold are a clear qcast::Error
// (exit 2 from the CLI), never a SIGFPE, a wrapped count, a NaN or unbounded memory; the mapper's
// time limit holds for huge layers. Also: the Timeloop spellings of mappings and architectures.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/hw.hpp"
#include "qcast/mapper.hpp"
#include "qcast/reuse.hpp"
#include "test_support.hpp"

using namespace qcast::hw;

namespace {

const char* kProb = R"(problem:
  shape:
    name: Conv1D
    dimensions: [ R, P ]
    coefficients: [ {name: Wstride, default: 1} ]
    data_spaces:
    - name: Weights
      projection: [ [ [R] ] ]
    - name: Inputs
      projection: [ [ [R], [P, Wstride] ] ]
    - name: Outputs
      projection: [ [ [P] ] ]
      read_write: True
  instance: { R: 3, P: 16 }
)";

const char* kArch = R"(architecture:
  version: 0.4
  nodes:
  - !Component
    name: MainMemory
    class: DRAM
    attributes: { width: 64, datawidth: 8 }
  - !Container
    name: PE
    spatial: {meshX: 4}
  - !Component
    name: Buffer
    class: regfile
    attributes: { depth: 64, width: 8, datawidth: 8 }
  - !Component
    name: MACC
    class: intmac
    attributes: { width: 8 }
)";

std::string replace(std::string s, const std::string& a, const std::string& b) {
  auto pos = s.find(a);
  EXPECT_NE(pos, std::string::npos) << a;
  return s.replace(pos, a.size(), b);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qcast::Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR(stmt, needle)                                                  \
  do {                                                                              \
    std::string e_ = error_of([&] { stmt; });                                       \
    EXPECT_NE(e_.find(needle), std::string::npos) << "message: " << e_ << "\nwant: " << (needle); \
  } while (0)

}  // namespace

TEST(HwRobust, ArchitectureSizesThatOverflow) {
  // 2^32 x 2^32 instances: the product leaves 64 bits (was SIGFPE in `cost`).
  EXPECT_ERROR(Architecture::from_yaml_text(replace(replace(kArch, "meshX: 4", "meshX: 4294967296"), "name: Buffer",
                                                    "name: Buffer[0..4294967295]")),
               "overflows 64 bits");
  // A depth whose capacity in bits overflows (was a zero or negative capacity).
  EXPECT_ERROR(Architecture::from_yaml_text(replace(kArch, "depth: 64", "depth: 4611686018427387904")), "overflows 64 bits");
  EXPECT_ERROR(Architecture::from_yaml_text(replace(kArch, "depth: 64", "depth: 1e30")), "64-bit range");
  EXPECT_ERROR(Architecture::from_yaml_text(replace(kArch, "depth: 64", "depth: 99999999999999999999")), "64-bit range");
  EXPECT_ERROR(Architecture::from_yaml_text(replace(kArch, "name: Buffer", "name: Buffer[0..99999999999999999999]")), "out of range");
}

TEST(HwRobust, NegativeStridesAndCoefficients) {
  EXPECT_ERROR(Problem::from_yaml_text(replace(kProb, "default: 1", "default: -1")), "must be >= 1");
  EXPECT_ERROR(Problem::from_yaml_text(replace(kProb, "P: 16 }", "P: 16, Wstride: -2 }")), "must be >= 1");
  EXPECT_ERROR(Problem::from_yaml_text(replace(kProb, "P: 16 }", "P: 16, Wstride: 0 }")), "must be >= 1");
  // A problem whose number of computes leaves 64 bits.
  EXPECT_ERROR(Problem::from_yaml_text(replace(kProb, "R: 3, P: 16", "R: 4294967296, P: 4294967296")), "overflows 64 bits");
  // ... or whose data-space size does (a huge stride).
  EXPECT_ERROR(Problem::from_yaml_text(replace(kProb, "P: 16 }", "P: 16, Wstride: 4611686018427387904 }")), "overflows 64 bits");
  // Other instance keys are ignored, as Timeloop does (its layer files carry H, W, pads, even HStride).
  Problem p = Problem::from_yaml_text(replace(kProb, "P: 16 }", "P: 16, H: 224, HStride: 4 }"));
  EXPECT_EQ(p.computes(), 48);
}

TEST(HwRobust, FactorProductsThatWrap) {
  Problem p = Problem::from_yaml_text(kProb);
  Architecture a = Architecture::from_yaml_text(kArch);
  // 4 x (2^62 + 4) = 2^64 + 16, which wrapped to P's bound 16 and was accepted.
  EXPECT_ERROR(Mapping::from_yaml_text("mapping:\n- {target: Buffer, type: temporal, factors: R=3 P=4}\n"
                                       "- {target: MainMemory, type: temporal, factors: R=1 P=4611686018427387908}\n",
                                       p, a),
               "more than 2^63");
  EXPECT_ERROR(Mapping::from_yaml_text("mapping:\n- {target: Buffer, factors: R=-3 P=16}\n", p, a), "must be >= 1");
  EXPECT_ERROR(Mapping::from_yaml_text("mapping:\n- {target: Buffer, factors: R=99999999999999999999 P=16}\n", p, a), "not an integer");
  Mapping m = Mapping::trivial(p, a);
  m.levels[0].temporal = {3, 4};
  m.levels[2].temporal = {1, 4611686018427387908LL};
  Evaluation e = evaluate(p, a, m);
  EXPECT_FALSE(e.valid);
  EXPECT_NE(e.reason.find("more than 2^63"), std::string::npos) << e.reason;
}

TEST(HwRobust, TimeloopMappingSpellings) {
  Problem p = Problem::from_yaml_text(kProb);
  Architecture a = Architecture::from_yaml_text(kArch);
  ASSERT_EQ(a.levels.size(), 3u);
  EXPECT_EQ(a.levels[1].name, "inter_PE_spatial");  // the container's implied level, as in Timeloop
  EXPECT_TRUE(a.levels[1].implied);
  EXPECT_EQ(a.fanout(1), 4);
  EXPECT_EQ(a.fanout(2), 1);
  // What Timeloop's mapper writes: "K2" factors, datatype entries, spatial targets named by the
  // container or its implied level, split.
  const std::string written = R"(mapping:
  - {target: Buffer, type: datatype, keep: [Weights, Inputs, Outputs], bypass: []}
  - {target: inter_PE_spatial, type: datatype, keep: [], bypass: [Weights, Inputs, Outputs]}
  - {target: MainMemory, type: datatype, keep: [Weights, Inputs, Outputs], bypass: []}
  - {target: Buffer, type: temporal, factors: R3 P4, permutation: RP}
  - {target: inter_PE_spatial, type: spatial, factors: R1 P4, permutation: PR, split: 1}
  - {target: inter_PE_spatial, type: temporal, factors: R1 P1, permutation: RP}
  - {target: MainMemory, type: temporal, factors: R1 P1, permutation: RP}
)";
  Mapping m = Mapping::from_yaml_text(written, p, a);
  EXPECT_EQ(m.levels[1].spatial[1], 4);
  EXPECT_EQ(m.levels[0].temporal[0], 3);
  Mapping by_container = Mapping::from_yaml_text(replace(replace(written, "target: inter_PE_spatial, type: spatial", "target: PE, type: spatial"),
                                                         "R3 P4", "R=3 P=4"),
                                                 p, a);
  Evaluation e1 = evaluate(p, a, m), e2 = evaluate(p, a, by_container);
  ASSERT_TRUE(e1.valid) << e1.reason;
  EXPECT_EQ(e1.cycles, 12);
  EXPECT_EQ(e1.mac_instances_used, 4);
  EXPECT_EQ(e1.energy_pj, e2.energy_pj);
  // The older form (spatial factors on the storage level above the fanout) still lands on the fanout.
  Mapping old = Mapping::from_yaml_text("mapping:\n- {target: MainMemory, type: spatial, factors: P=4}\n- {target: Buffer, factors: R=3 P=4}\n", p, a);
  EXPECT_EQ(old.levels[1].spatial[1], 4);
  EXPECT_ERROR(Mapping::from_yaml_text("mapping:\n- {target: PE, type: datatype, keep: [Weights]}\n", p, a), "cannot keep data");
}

TEST(HwRobust, ParallelNothingAndConstraints) {
  const std::string arch = R"(architecture:
  version: 0.4
  nodes:
  - !Container {name: system}
  - !Component {name: DRAM, class: DRAM, attributes: {width: 64, datawidth: 8}}
  - !Container
    name: PE
    spatial: {meshX: 2, meshY: 2}
    constraints: {spatial: {factors: [R=1], permutation: [P, R], split: 1}}
  - !Parallel
    nodes:
    - !Component
      name: wreg
      class: regfile
      attributes: {depth: 4, width: 8, datawidth: 8}
      constraints: {dataspace: {keep: [Weights]}, temporal: {factors: [P=1]}}
    - !Component
      name: oreg
      class: regfile
      attributes: {depth: 4, width: 8, datawidth: 8}
      constraints: {dataspace: {keep: [Outputs], bypass: [Inputs, Weights]}}
    - !Nothing {constraints: {dataspace: {keep: [Inputs]}}}
  - !Component {name: mac, class: intmac, attributes: {width: 8}}
)";
  Architecture a = Architecture::from_yaml_text(arch);
  ASSERT_EQ(a.levels.size(), 4u);  // oreg, wreg, inter_PE_spatial, DRAM (innermost first)
  EXPECT_EQ(a.levels[0].name, "oreg");
  EXPECT_EQ(a.levels[1].name, "wreg");
  EXPECT_EQ(a.levels[2].name, "inter_PE_spatial");
  EXPECT_EQ(a.levels[0].instances, 4);
  EXPECT_EQ(a.arith.instances, 4);
  EXPECT_EQ(a.levels[2].constraints.split, 1);
  EXPECT_EQ(a.levels[1].constraints.keep, std::vector<std::string>{"Weights"});
  // The mapper honours them: keep/bypass as constrained, no P loop at wreg, no spatial R.
  Problem p = Problem::from_yaml_text(kProb);
  SearchOptions o;
  o.samples = 300;
  o.refine_steps = 100;
  SearchResult r = search_mapping(p, a, Precision{}, o);
  ASSERT_TRUE(r.eval.valid);
  // Unlisted data spaces are the mapper's choice (Timeloop's meaning of a partial keep list).
  EXPECT_TRUE(r.mapping.levels[1].keep[0]);
  EXPECT_EQ(r.mapping.levels[0].keep, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(r.mapping.levels[2].keep, (std::vector<bool>{false, false, false}));
  EXPECT_EQ(r.mapping.levels[1].temporal[1], 1);
  EXPECT_EQ(r.mapping.levels[2].spatial[0], 1);
  // A separate constraints file adds to them.
  auto notes = a.apply_constraints_text(R"(constraints:
  targets:
  - {target: DRAM, type: temporal, factors: R=1, permutation: PR}
  - {target: PE, type: utilization, min: 0.5}
)");
  EXPECT_EQ(a.levels[3].constraints.temporal_factors.size(), 1u);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("not enforced"), std::string::npos);
  EXPECT_ERROR(a.apply_constraints_text("constraints: {targets: [{target: L9, type: temporal}]}"), "no storage level called 'L9'");
}

TEST(HwRobust, HugeModelsFailFastOrRespectTheTimeLimit) {
  qcast::test::TempDir dir;
  std::string arch = std::string(QCAST_SOURCE_DIR) + "/examples/arch/eyeriss_like.yaml";
  // 2^30 in every dimension: the MAC count leaves 64 bits (was "computes 0, cycles 0, utilization -nan%").
  std::ofstream(dir.file("huge.json")) << R"({"layers": [{"name": "c", "op": "conv", "N": 1073741824, "C": 1073741824,
    "M": 1073741824, "H": 1073741824, "W": 1073741824, "R": 1, "S": 1}]})";
  auto t0 = std::chrono::steady_clock::now();
  auto r = qcast::test::run_cli("cost --arch " + arch + " --model " + dir.file("huge.json") + " --time-limit 1");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.err.find("overflows 64 bits"), std::string::npos) << r.err;
  // Large but representable: the search stops at the time limit with a valid mapping.
  std::ofstream(dir.file("big.json")) << R"({"layers": [{"name": "c", "op": "conv", "N": 1, "C": 1073741824,
    "M": 1024, "H": 1024, "W": 1024, "R": 1, "S": 1}]})";
  r = qcast::test::run_cli("cost --json --arch " + arch + " --model " + dir.file("big.json") + " --time-limit 1 --samples 100000000");
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["layers"][0]["computes"].get<double>(), 1e17);
  EXPECT_GT(j["layers"][0]["utilization"].get<double>(), 0);
  EXPECT_TRUE(j["layers"][0]["search"]["timed_out"].get<bool>());
  EXPECT_LT(s, 8.0);
}

TEST(HwRobust, ReuseRefusesTracesItCannotHold) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = qcast::test::run_cli("reuse 'for j<N; for i<M: B[j][i] += A[i]' --set N=1000000000,M=1000000000");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("loop nest:"), std::string::npos) << r.err;  // B alone has 10^18 elements
  r = qcast::test::run_cli("reuse 'for j<N; for i<M: A[i] += 1' --set N=1000000000,M=1000000000");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("accesses, more than the 16777216"), std::string::npos) << r.err;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 5.0);
  LoopNest n = LoopNest::parse("for j<N; for i<M: B[j][i] += A[i]", {{"N", 1000000000}, {"M", 1000000000}});
  EXPECT_EQ(n.accesses(), 3000000000000000000LL);
  EXPECT_THROW(n.trace([](int, std::uint64_t) {}), qcast::Error);
  EXPECT_THROW(LoopNest::parse("for j<4: A[j*99999999999999999999] += 1"), qcast::Error);
  EXPECT_THROW(LoopNest::parse("for j<4: A[j*1099511627777] += 1"), qcast::Error);  // > 2^40
  // Under the cap it still traces.
  std::int64_t count = 0;
  LoopNest::parse("for j<4; for i<8: B[j][i] += A[i]").trace([&](int, std::uint64_t) { ++count; });
  EXPECT_EQ(count, 4 * 8 * 3);
}

// Item 2: an EDP search keeps the best of everything seen, so it is never worse in EDP than the
// energy or the delay search (same seed and budget) on a ResNet-20 layer.
TEST(HwRobust, EdpSearchIsNeverWorseThanEnergyOrDelay) {
  Architecture a = Architecture::from_yaml_file(std::string(QCAST_SOURCE_DIR) + "/examples/arch/eyeriss_like.yaml");
  auto layers = read_layers_json(std::string(QCAST_SOURCE_DIR) + "/examples/models/resnet20-cifar10.layers.json");
  int n = 0;
  for (auto& l : layers) {
    if (!layer_has_macs(l) || (l.name.find("layer2") == std::string::npos && l.name != "conv1")) continue;
    Problem p = layer_problem(l);
    SearchOptions o;
    o.threads = 2;
    o.samples = 2000;
    o.refine_steps = 300;
    double edp[3];
    for (int k = 0; k < 3; ++k) {
      o.objective = k == 0 ? Objective::Energy : k == 1 ? Objective::Delay : Objective::EDP;
      edp[k] = search_mapping(p, a, Precision{}, o).eval.edp();
    }
    EXPECT_LE(edp[2], edp[0]) << l.name;
    EXPECT_LE(edp[2], edp[1]) << l.name;
    if (++n == 3) break;
  }
  EXPECT_EQ(n, 3);
}
