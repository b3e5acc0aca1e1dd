// Quantization-aware costs: bits per element with scale overhead, and per-layer energy falling
// monotonically with the bits for a fixed mapping (lenet5, resnet20; fp32 > mxfp8 > int8 > mxfp4).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/hw.hpp"
#include "qcast/mapper.hpp"
#include "test_support.hpp"

using namespace qcast::hw;

namespace {
std::string src(const std::string& rel) { return std::string(QCAST_SOURCE_DIR) + "/" + rel; }
}  // namespace

TEST(HwQuant, BitsPerElement) {
  EXPECT_DOUBLE_EQ(bits_per_element("mxfp4"), 4.25);
  EXPECT_DOUBLE_EQ(bits_per_element("mxfp8"), 8.25);
  EXPECT_DOUBLE_EQ(bits_per_element("mxfp6_e2m3"), 6.25);
  EXPECT_DOUBLE_EQ(bits_per_element("nvfp4"), 4.5);
  EXPECT_DOUBLE_EQ(bits_per_element("int8"), 8);
  EXPECT_DOUBLE_EQ(bits_per_element("uint3"), 3);
  EXPECT_DOUBLE_EQ(bits_per_element("fp32"), 32);
  EXPECT_DOUBLE_EQ(bits_per_element("bf16"), 16);
  EXPECT_DOUBLE_EQ(bits_per_element("fp16"), 16);
  EXPECT_DOUBLE_EQ(bits_per_element("e4m3"), 8);
  EXPECT_DOUBLE_EQ(bits_per_element("int4@fp16/g128"), 4.125);
  EXPECT_DOUBLE_EQ(bits_per_element("e2m1@e8m0/b32"), 4.25);
  EXPECT_THROW(bits_per_element("float7"), qcast::Error);
  Precision p = Precision::from_recipe(src("examples/recipes/w-mxfp4-a-mxfp8.json"));
  EXPECT_DOUBLE_EQ(p.bits(Role::Weights), 4.25);
  EXPECT_DOUBLE_EQ(p.bits(Role::Inputs), 8.25);
  EXPECT_DOUBLE_EQ(p.bits(Role::Outputs), 8.25);
  EXPECT_LT(mac_energy_pj(4, 4, false), mac_energy_pj(8, 8, false));
  EXPECT_NEAR(mac_energy_pj(32, 32, true), 3.7 + 0.9, 1e-12);
  EXPECT_NEAR(mac_energy_pj(8, 8, false), 0.2 + 0.03, 1e-12);
}

TEST(HwQuant, EnergyFallsWithBitsForAFixedMapping) {
  Architecture a = Architecture::from_yaml_file(src("examples/arch/eyeriss_like.yaml"));
  const char* recipes[] = {"fp32", "mxfp8", "int8", "mxfp4"};  // decreasing bits: 32, 8.25, 8, 4.25
  for (auto model : {"examples/models/lenet5-mnist.layers.json", "examples/models/resnet20-cifar10.layers.json"}) {
    for (auto& l : read_layers_json(src(model))) {
      if (!layer_has_macs(l)) continue;
      Problem p = layer_problem(l);
      SearchOptions o;
      o.threads = 2;
      o.samples = 600;
      o.refine_steps = 100;
      // The mapping is found for the widest format, so it fits every narrower one.
      Mapping m = search_mapping(p, a, Precision::from_recipe("fp32"), o).mapping;
      double prev = 0;
      std::vector<double> prev_traffic;
      for (auto r : recipes) {
        Evaluation e = evaluate(p, a, m, Precision::from_recipe(r));
        ASSERT_TRUE(e.valid) << l.name << " " << r << ": " << e.reason;
        if (prev > 0) { EXPECT_LT(e.energy_pj, prev) << model << " " << l.name << " " << r; }
        prev = e.energy_pj;
      }
    }
  }
}

TEST(HwQuant, CostPrintsTotalsAndTrafficPerLevel) {
  for (auto model : {"lenet5-mnist", "resnet20-cifar10"}) {
    double prev = 0;
    for (auto r : {"fp32", "mxfp8", "int8", "mxfp4"}) {
      auto res = qcast::test::run_cli("cost --arch " + src("examples/arch/eyeriss_like.yaml") + " --model " +
                                      src(std::string("examples/models/") + model + ".layers.json") + " --recipe " +
                                      src(std::string("examples/recipes/") + r + ".json") + " --samples 300 --refine 100 --threads 2 --json");
      ASSERT_EQ(res.rc, 0) << res.err;
      auto j = nlohmann::json::parse(res.out);
      auto& t = j["total"];
      EXPECT_GT(t["energy_pj"].get<double>(), 0);
      ASSERT_EQ(t["levels"].size(), 5u);  // DRAM, GlobalBuffer, inter_PE_spatial (Timeloop's implied level), RegisterFile, MAC
      EXPECT_EQ(t["levels"][2]["name"], "inter_PE_spatial");
      EXPECT_EQ(t["levels"][2]["energy_pj"].get<double>(), 0.0);
      EXPECT_EQ(t["levels"][0]["name"], "DRAM");
      EXPECT_GT(t["levels"][0]["traffic_bytes"].get<double>(), 0);
      for (auto& layer : j["layers"]) {
        EXPECT_TRUE(layer.contains("computes"));
        EXPECT_TRUE(layer.contains("cycles"));
        EXPECT_TRUE(layer.contains("energy_pj"));
        EXPECT_EQ(layer["levels"][0]["name"], "DRAM");
      }
      // The searched total also falls with bits (each search optimises its own recipe).
      if (prev > 0) { EXPECT_LT(t["energy_pj"].get<double>(), prev) << model << " " << r; }
      prev = t["energy_pj"].get<double>();
    }
  }
  auto res = qcast::test::run_cli("cost --arch " + src("examples/arch/eyeriss_like.yaml") + " --model " +
                                  src("examples/models/lenet5-mnist.layers.json") + " --recipe int8 --samples 200 --refine 50");
  ASSERT_EQ(res.rc, 0) << res.err;
  EXPECT_NE(res.out.find("== total (5 layers, weights int8 activations int8)"), std::string::npos) << res.out;
  EXPECT_NE(res.out.find("traffic bytes"), std::string::npos);
}

TEST(HwQuant, BuiltinTables) {
  Architecture a = Architecture::from_yaml_file(src("examples/arch/eyeriss_like.yaml"));
  auto per_bit = [&](int i) { return a.levels[i].energy.read / static_cast<double>(a.levels[i].width); };
  const int rf = a.level_index("RegisterFile"), glb = a.level_index("GlobalBuffer"), dram = a.level_index("DRAM");
  ASSERT_TRUE(rf >= 0 && glb >= 0 && dram >= 0);
  // Horowitz (the default): 32-bit SRAM read 5 pJ, 32-bit DRAM read 640 pJ.
  EXPECT_NEAR(per_bit(glb) * 32, 5.0, 1e-9);
  EXPECT_NEAR(per_bit(dram) * 32, 640.0, 1e-9);
  EXPECT_NEAR(a.arith.energy.compute, mac_energy_pj(16, 16, false), 1e-12);
  // Eyeriss normalized costs: RF 1, buffer 6, DRAM 200 (x a 16-bit MAC per 16-bit word).
  for (auto& l : a.levels) l.energy.source = l.implied ? l.energy.source : "builtin";
  a.arith.energy.source = "builtin";
  a.apply_builtin("eyeriss", 16, 16);
  const double mac16 = mac_energy_pj(16, 16, false);
  EXPECT_NEAR(per_bit(rf) * 16, 1 * mac16, 1e-9);
  EXPECT_NEAR(per_bit(glb) * 16, 6 * mac16, 1e-9);
  EXPECT_NEAR(per_bit(dram) * 16, 200 * mac16, 1e-9);
  EXPECT_THROW(a.apply_builtin("tsmc", 8, 8), qcast::Error);
}
