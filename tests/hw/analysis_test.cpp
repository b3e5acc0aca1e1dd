// The closed-form nest analysis against the brute-force simulator (tests/hw/nest_sim.hpp) on small
// random problems, architectures with spatial fanout, and random mappings with bypass; and the
// lecture's output- vs weight-stationary 1-D convolution (Timeloop exercise 01).
#include <gtest/gtest.h>

#include <random>

#include "hw/nest_sim.hpp"
#include "qcast/error.hpp"
#include "hw/hw_fixtures.hpp"
#include "qcast/hw.hpp"
#include "qcast/mapper.hpp"
#include "test_support.hpp"

using namespace qcast::hw;

namespace {

const char* kConv1d = fixtures::kProb;  // the 1-D convolution of tests/hw/hw_fixtures.hpp

const char* kArch2 = R"(
architecture:
  version: 0.4
  nodes:
  - !Container
    name: System
  - !Component
    name: MainMemory
    class: SRAM
    attributes: { depth: 32768, width: 64, datawidth: 8 }
  - !Component
    name: Buffer
    class: regfile
    attributes: { depth: 64, width: 8, datawidth: 8 }
  - !Component
    name: MACC
    class: intmac
    attributes: { width: 8 }
)";

// Three storage levels with fanouts 4 (GLB -> PEs, on the implied level inter_PE_spatial) and 2 (RF -> MACs).
const char* kArch3 = R"(
architecture:
  version: 0.4
  nodes:
  - !Component
    name: DRAM
    class: DRAM
    attributes: { width: 64, datawidth: 8 }
  - !Component
    name: GLB
    class: SRAM
    attributes: { depth: 4096, width: 64, datawidth: 8 }
  - !Container
    name: PE
    spatial: { meshX: 4 }
  - !Component
    name: RF
    class: regfile
    attributes: { depth: 64, width: 8, datawidth: 8 }
  - !Component
    name: MAC[0..1]
    class: intmac
    attributes: { width: 8 }
)";

void expect_same(const Problem& p, const Architecture& a, const Mapping& m, const std::string& what) {
  Evaluation e = evaluate(p, a, m);
  ASSERT_TRUE(e.reason.empty() || e.reason.find("capacity") != std::string::npos) << e.reason;
  sim::Result r = sim::simulate(p, a, m);
  ASSERT_TRUE(r.uniform) << what;
  EXPECT_EQ(e.cycles, r.cycles) << what;
  for (size_t i = 0; i < a.levels.size(); ++i)
    for (size_t s = 0; s < p.data_spaces.size(); ++s) {
      if (!m.levels[i].keep[s]) continue;
      const auto& x = e.levels[i].ds[s];
      const auto& y = r.c[i][s];
      std::string where = what + " at " + a.levels[i].name + " " + p.data_spaces[s].name + "\n" + m.loop_nest(p, a);
      EXPECT_EQ(x.reads, y.reads) << "reads " << where;
      EXPECT_EQ(x.fills, y.fills) << "fills " << where;
      EXPECT_EQ(x.updates, y.updates) << "updates " << where;
      EXPECT_EQ(x.utilized_capacity, y.capacity) << "capacity " << where;
    }
}

// Spatial loops over dimensions that share a projection axis with another dimension (P and R of a
// convolution's inputs) make children's tiles overlap; the analysis does not model that multicast
// (see docs/cost.md), so random tests keep spatial loops off those dimensions.
bool spatial_ok(const Problem& p, const Mapping& m) {
  for (auto& lm : m.levels)
    for (size_t d = 0; d < p.dims.size(); ++d) {
      if (lm.spatial[d] == 1) continue;
      for (auto& ds : p.data_spaces)
        for (auto& axis : ds.projection)
          if (axis.size() > 1)
            for (auto& t : axis)
              if (t.dim == static_cast<int>(d)) return false;
    }
  return true;
}

}  // namespace

TEST(HwAnalysis, OutputVersusWeightStationaryConv1d) {
  // The lecture's 1-D convolution on a 2-level hierarchy: both orders give the same MainMemory
  // traffic and Buffer reads/updates; they differ in what the Buffer holds.
  Problem p = Problem::from_yaml_text(kConv1d);
  Architecture a = Architecture::from_yaml_text(kArch2);
  Mapping os = Mapping::from_yaml_text(R"(mapping:
  - {target: MainMemory, type: temporal, factors: R=1 P=16, permutation: PR}
  - {target: Buffer, type: temporal, factors: R=3 P=1, permutation: RP})", p, a);
  Mapping ws = Mapping::from_yaml_text(R"(mapping:
  - {target: MainMemory, type: temporal, factors: R=3 P=1, permutation: RP}
  - {target: Buffer, type: temporal, factors: R=1 P=16, permutation: PR})", p, a);
  for (auto* m : {&os, &ws}) expect_same(p, a, *m, m == &os ? "os" : "ws");
  Evaluation eo = evaluate(p, a, os), ew = evaluate(p, a, ws);
  const int W = 0, I = 1, O = 2, buf = 0, mem = 1;
  // Outputs: 48 updates, 32 reads (first read skipped) at the Buffer; 16 written back.
  for (auto* e : {&eo, &ew}) {
    EXPECT_EQ(e->levels[buf].ds[O].updates, 48);
    EXPECT_EQ(e->levels[buf].ds[O].reads, 32);
    EXPECT_EQ(e->levels[mem].ds[O].updates, 16);
    EXPECT_EQ(e->levels[buf].ds[W].fills, 3);
    EXPECT_EQ(e->levels[buf].ds[I].fills, 18);
  }
  // Output-stationary keeps one output, weight-stationary one weight.
  EXPECT_EQ(eo.levels[buf].ds[O].utilized_capacity, 1);
  EXPECT_EQ(ew.levels[buf].ds[W].utilized_capacity, 1);
  EXPECT_EQ(ew.levels[buf].ds[O].utilized_capacity, 16);
}

TEST(HwAnalysis, ConformanceMapsAgreeWithSimulator) {
  QCAST_REQUIRE_SHARED("conformance/timeloop");
  const std::string root = qcast::test::shared_dir() + "/conformance/timeloop/";
  struct C {
    const char *dir, *arch, *prob, *map;
  } cases[] = {
      {"00-model-conv1d-1level", "1level.arch.yaml", "conv1d.prob.yaml", "conv1d-1level.map.yaml"},
      {"01-model-conv1d-2level", "2level.arch.yaml", "conv1d.prob.yaml", "conv1d-2level-os.map.yaml"},
      {"01-model-conv1d-2level", "2level.arch.yaml", "conv1d.prob.yaml", "conv1d-2level-ws.map.yaml"},
      {"02-model-conv1d+oc-2level", "2level.arch.yaml", "conv1d+oc.prob.yaml", "conv1d+oc-2level-os-tiled.map.yaml"},
      {"03-model-conv1d+oc-3level", "3level.arch.yaml", "conv1d+oc.prob.yaml", "conv1d+oc-3level-bypass.map.yaml"},
  };
  for (auto& c : cases) {
    std::string d = root + c.dir;
    Problem p = Problem::from_yaml_file(d + "/prob/" + c.prob);
    Architecture a = Architecture::from_yaml_file(d + "/arch/" + c.arch);
    Mapping m = Mapping::from_yaml_file(d + "/map/" + c.map, p, a);
    expect_same(p, a, m, c.map);
  }
}

TEST(HwAnalysis, RandomMappingsAgreeWithSimulator) {
  Architecture a = Architecture::from_yaml_text(kArch3);
  ASSERT_EQ(a.levels.size(), 4u);  // RF, inter_PE_spatial (the container's implied level), GLB, DRAM
  EXPECT_TRUE(a.levels[1].implied);
  EXPECT_EQ(a.fanout(2), 1);
  EXPECT_EQ(a.fanout(1), 4);
  EXPECT_EQ(a.fanout(0), 2);
  std::vector<LayerShape> shapes;
  LayerShape conv;
  conv.name = "conv";
  conv.op = "conv";
  conv.C = 2, conv.M = 4, conv.H = conv.W = 6, conv.R = conv.S = 3, conv.P = conv.Q = 4;
  shapes.push_back(conv);
  LayerShape dw = conv;
  dw.name = "dw";
  dw.C = dw.M = dw.groups = 2;
  shapes.push_back(dw);
  LayerShape fc;
  fc.name = "fc";
  fc.op = "gemm";
  fc.N = 2, fc.C = 12, fc.M = 8;
  shapes.push_back(fc);
  std::mt19937_64 rng(11);
  int checked = 0, with_spatial = 0, with_bypass = 0;
  for (auto& l : shapes) {
    Problem p = layer_problem(l);
    for (int k = 0; k < 40; ++k) {
      Mapping m = random_mapping(p, a, rng, true);
      if (!spatial_ok(p, m)) continue;
      expect_same(p, a, m, l.name + " sample " + std::to_string(k));
      ++checked;
      bool sp = false, by = false;
      for (auto& lm : m.levels) {
        for (auto f : lm.spatial) sp |= f > 1;
        for (bool kp : lm.keep) by |= !kp;
      }
      with_spatial += sp;
      with_bypass += by;
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(checked, 30);
  EXPECT_GT(with_spatial, 10);
  EXPECT_GT(with_bypass, 10);
}

TEST(HwAnalysis, MappingYamlRoundTrips) {
  Architecture a = Architecture::from_yaml_text(kArch3);
  LayerShape conv;
  conv.name = "conv";
  conv.op = "conv";
  conv.C = 4, conv.M = 8, conv.H = conv.W = 10, conv.R = conv.S = 3;
  Problem p = layer_problem(conv);
  std::mt19937_64 rng(2);
  for (int k = 0; k < 50; ++k) {
    Mapping m = random_mapping(p, a, rng, true);
    Mapping back = Mapping::from_yaml_text(m.to_yaml(p, a), p, a);
    EXPECT_EQ(back.to_yaml(p, a), m.to_yaml(p, a));
    Evaluation e1 = evaluate(p, a, m), e2 = evaluate(p, a, back);
    EXPECT_EQ(e1.energy_pj, e2.energy_pj);
    EXPECT_EQ(e1.cycles, e2.cycles);
    for (size_t i = 0; i < a.levels.size(); ++i)
      for (size_t s = 0; s < p.data_spaces.size(); ++s) EXPECT_EQ(e1.levels[i].ds[s].reads, e2.levels[i].ds[s].reads);
  }
}
