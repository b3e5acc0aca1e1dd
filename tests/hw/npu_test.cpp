// The spatial NPU template (MLIR-AIR): device files, capacity rules, the searches, and the predictions
// against MLIR-AIR's own measurements on NPU2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "qcast/error.hpp"
#include "qcast/npu.hpp"
#include "test_support.hpp"

using namespace qcast::hw::npu;

namespace {

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

void expect_error(const std::string& yaml, const std::string& fragment) {
  try {
    Device::from_yaml_text(yaml, "dev.yaml");
    ADD_FAILURE() << "accepted a bad device (" << fragment << ")";
  } catch (const qcast::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// MLIR-AIR's published measurements (Xilinx/mlir-air, programming_examples/kernel_registry/details/
// GEMM_bf16_in_fp32_out.md, NPU2 / Strix, June 2026): bf16 in, fp32 out, herd 8x4, the hand-written
// ("external") micro-kernel; tiles are tile_m / tile_k_l2 / tile_k_l1 / tile_n.
struct GemmPoint {
  std::int64_t M, K, N, tm, k2, k1, tn;
  double gflops;
  bool calibration;  // the two points the device's l3_gbps and launch_us were fitted to
};
const GemmPoint kGemm[] = {
    {2048, 2048, 2048, 64, 512, 32, 128, 8508, false}, {2048, 2048, 512, 64, 256, 32, 128, 7342, false},
    {2048, 2048, 8192, 64, 256, 32, 128, 8278, false}, {2048, 8192, 2048, 64, 256, 32, 128, 9797, true},
    {512, 512, 512, 32, 256, 32, 128, 1791, true},      {1024, 1024, 1024, 64, 256, 32, 128, 6256, false},
    {4096, 4096, 4096, 64, 512, 32, 128, 9329, false},
    // Its "tile choice vs performance" sweep: tile_n 64 against 128 at the same other tiles.
    {2048, 2048, 2048, 64, 512, 32, 64, 6367, false},   {2048, 8192, 2048, 64, 256, 32, 64, 6816, false},
    {4096, 4096, 4096, 64, 256, 32, 64, 6623, false},   {4096, 4096, 4096, 64, 256, 32, 128, 9161, false},
};

// Its FlashAttention measurements (…/details/FlashAttention_bf16.md, NPU2, June 2026): every row runs the
// same tiling (heads_per_unroll 2, q_tiles 4, cascade 4, lqp 256, lkp 64); latency in ms (the middle of
// a published range).
struct AttnPoint {
  std::int64_t lq, lk, dk, heads, kv_heads;
  bool causal;
  double ms;
  bool calibration;
};
const AttnPoint kAttn[] = {
    {2048, 2048, 64, 32, 8, true, 15.75, false},  {2048, 2048, 64, 32, 32, true, 16.9, false},
    {512, 512, 64, 2, 2, false, 0.73, true},      {512, 512, 64, 12, 6, false, 1.22, false},
    {512, 512, 64, 64, 8, false, 3.79, false},    {1024, 1024, 64, 12, 12, false, 2.485, false},
    {512, 512, 128, 32, 8, false, 4.38, false},   {512, 512, 128, 28, 4, false, 4.05, false},
    {16384, 16384, 64, 2, 2, true, 39.6, false},  {16384, 16384, 64, 2, 2, false, 40.1, true},
    {2048, 2048, 128, 16, 8, true, 17.6, false},  {2048, 2048, 64, 14, 2, true, 7.27, false},
    {2048, 2048, 128, 12, 2, true, 14.5, false},  {2048, 2048, 128, 16, 2, true, 19.1, false},
    {2048, 2048, 128, 24, 8, true, 25.9, false},  {2048, 2048, 128, 32, 8, true, 35.0, true},
};

}  // namespace

TEST(NpuDevice, BuiltinsParseAndTheirYamlIsTheSameDevice) {
  for (const auto& name : Device::builtin_names()) {
    const Device d = Device::builtin(name);
    const Device e = Device::from_yaml_text(Device::builtin_yaml(name), "copy.yaml");
    EXPECT_EQ(d.name, name);
    EXPECT_EQ(e.cores(), d.cores());
    EXPECT_EQ(e.type("bf16").macs_per_cycle, d.type("bf16").macs_per_cycle);
  }
  const Device n2 = Device::builtin("npu2");
  EXPECT_EQ(n2.columns, 8);
  EXPECT_EQ(n2.rows, 4);
  // 32 cores x 512 MACs x 2 x 1.8 GHz: the xdna driver's 4096 ops per column per cycle.
  EXPECT_NEAR(2 * n2.peak_macs_per_cycle("int8") * n2.clock_ghz, 58982.4, 0.1);
  EXPECT_THROW(Device::builtin("npu3"), qcast::Error);
  EXPECT_THROW(n2.type("fp64"), qcast::Error);
}

TEST(NpuDevice, BadDeviceFilesAreClearErrors) {
  const std::string good = Device::builtin_yaml("npu2");
  expect_error("columns: 4\n", "top-level 'npu:'");
  expect_error(replace(good, "  rows: 4\n", ""), "'npu.rows' is missing");
  expect_error(replace(good, "  rows: 4\n", "  rows: 4\n  colums: 4\n"), "unknown key 'npu.colums'");
  expect_error(replace(good, "clock_ghz: 1.8", "clock_ghz: -1"), "clock_ghz");
  expect_error(replace(good, "clock_ghz: 1.8", "clock_ghz: nan"), "clock_ghz");
  expect_error(replace(good, "l3_gbps: 41.3", "l3_gbps: [1, 2]"), "l3_gbps");
  expect_error(replace(good, "columns: 8", "columns: 0"), "columns");
  expect_error(replace(good, "kernel_efficiency: 0.5", "kernel_efficiency: 1.5"), "fraction of the peak");
  expect_error(replace(good, "mmul: [8, 8, 8], kernel_efficiency: 0.5", "mmul: [8, 8], kernel_efficiency: 0.5"), "[r, s, t]");
  expect_error("npu: {name: x, columns: 4, rows: 4, l1_bytes: 1024, l2_bytes: 1024, clock_ghz: 1, stream_bytes_per_cycle: 4,\n"
               "      core_in_channels: 2, core_out_channels: 2, l1_load_bytes_per_cycle: 64, l1_store_bytes_per_cycle: 32,\n"
               "      l3_gbps: 10, types: {}}\n",
               "npu.types");
  expect_error("npu: {name: x, columns: [\n", "invalid YAML");
}

TEST(NpuMatmul, CapacityRulesAreMlirAirs) {
  const Device d = Device::builtin("npu2");
  const Matmul mm{2048, 8192, 2048, "bf16", 4};
  // MLIR-AIR: "the f32 C accumulator at tile_m=64, tile_n=128 is 32 KB; with bf16 A/B ping-pong it totals
  // ~57 KB < 64 KB", and "tile_n = 256 was excluded as it overflowed L1 at these tile_m".
  const Prediction ok = predict_matmul(d, mm, {8, 4, 64, 256, 32, 128});
  ASSERT_TRUE(ok.valid) << ok.reason;
  EXPECT_EQ(ok.l1_bytes_used, 57344);
  const Prediction wide = predict_matmul(d, mm, {8, 4, 64, 256, 32, 256});
  EXPECT_FALSE(wide.valid);
  EXPECT_NE(wide.reason.find("L1"), std::string::npos) << wide.reason;
  // L2: a deep K block over 8 memory tiles of 512 KB.
  const Prediction deep = predict_matmul(d, mm, {8, 4, 64, 2048, 32, 128});
  EXPECT_FALSE(deep.valid);
  EXPECT_NE(deep.reason.find("L2"), std::string::npos) << deep.reason;
  // The micro-kernel's blocks (2 x mmul<8,8,8>) and the array's shape.
  EXPECT_FALSE(predict_matmul(d, mm, {8, 4, 24, 256, 32, 128}).valid);
  EXPECT_FALSE(predict_matmul(d, mm, {8, 8, 64, 256, 32, 128}).valid);
  EXPECT_TRUE(predict_matmul(d, mm, {4, 8, 64, 256, 32, 128}).valid);  // either way round
  EXPECT_FALSE(predict_matmul(d, mm, {8, 4, 64, 100, 32, 128}).valid);  // tile_k_l2 % tile_k_l1
  EXPECT_THROW(predict_matmul(d, {0, 1, 1, "bf16", 4}, {1, 1, 16, 8, 8, 16}), qcast::Error);
  EXPECT_THROW(predict_matmul(d, {64, 64, 64, "fp8", 4}, {1, 1, 16, 8, 8, 16}), qcast::Error);
}

TEST(NpuMatmul, TimeAndEfficiencyFollowFromTheParts) {
  const Device d = Device::builtin("npu2");
  const Matmul mm{1000, 3000, 700, "bf16", 4};  // ragged: padded to the herd's blocks
  const MatmulTiling t{4, 4, 32, 256, 32, 64};
  const Prediction p = predict_matmul(d, mm, t);
  ASSERT_TRUE(p.valid) << p.reason;
  EXPECT_DOUBLE_EQ(p.macs, 1000.0 * 3000 * 700);
  EXPECT_DOUBLE_EQ(p.cycles, std::max({p.core_cycles, p.stream_cycles, p.l3_cycles}) + p.overhead_cycles);
  EXPECT_NEAR(p.efficiency, p.macs / (d.peak_macs_per_cycle("bf16") * p.cycles), 1e-12);
  EXPECT_GT(p.efficiency, 0);
  EXPECT_LT(p.efficiency, 1);
  // The padded problem is 1024 x 3072 x 768: the core computes at least that at its rate.
  const ElementType& et = d.type("bf16");
  EXPECT_GE(p.core_cycles, 1024.0 * 3072 * 768 / 16 / (et.macs_per_cycle * et.kernel_efficiency));
  // More of any resource never makes it slower, and the bound resource makes it faster.
  ASSERT_EQ(p.bound, "L3");
  Device faster = d;
  faster.l3_gbps *= 2;
  const Prediction q = predict_matmul(faster, mm, t);
  EXPECT_LT(q.cycles, p.cycles);
  for (auto tweak : {+[](Device& x) { x.stream_bytes_per_cycle *= 2; }, +[](Device& x) { x.types[0].kernel_efficiency = 1; },
                     +[](Device& x) { x.launch_us = 0; }, +[](Device& x) { x.l1_load_bytes_per_cycle *= 4; }}) {
    Device e = d;
    tweak(e);
    EXPECT_LE(predict_matmul(e, mm, t).cycles, p.cycles);
  }
}

TEST(NpuMatmul, SearchRanksEveryLegalTilingAndNoneBeatsTheFirst) {
  const Device d = Device::builtin("npu1");
  const Matmul mm{512, 768, 1024, "int8", 4};
  const auto all = search_matmul(d, mm);
  ASSERT_GT(all.size(), 100u);
  for (std::size_t k = 0; k < all.size(); ++k) {
    ASSERT_TRUE(all[k].prediction.valid);
    EXPECT_LE(all[k].prediction.l1_bytes_used, d.l1_bytes);
    EXPECT_LE(all[k].prediction.l2_bytes_used, d.l2_bytes);
    if (k) EXPECT_LE(all[k - 1].prediction.cycles, all[k].prediction.cycles * 1.002);  // ties within 0.1 %: deeper tile_k_l2 first
  }
  // Random tilings outside the search's own enumeration (odd multiples) never beat its best.
  std::mt19937_64 rng(7);
  int valid = 0;
  for (int i = 0; i < 20000; ++i) {
    MatmulTiling t{1 + static_cast<int>(rng() % 4), 1 + static_cast<int>(rng() % 4), 8 * (1 + static_cast<std::int64_t>(rng() % 24)), 0,
                   8 * (1 + static_cast<std::int64_t>(rng() % 16)), 16 * (1 + static_cast<std::int64_t>(rng() % 16))};
    t.tile_k_l2 = t.tile_k_l1 * (1 + static_cast<std::int64_t>(rng() % 8));
    const Prediction p = predict_matmul(d, mm, t);
    if (!p.valid) continue;
    ++valid;
    EXPECT_GE(p.cycles, all.front().prediction.cycles * (1 - 1e-12)) << t.text();
  }
  EXPECT_GT(valid, 1000);
  // A fixed herd restricts the search to it.
  for (const auto& c : search_matmul(d, mm, 2, 4)) {
    EXPECT_EQ(c.tiling.herd_m, 2);
    EXPECT_EQ(c.tiling.herd_n, 4);
  }
  EXPECT_THROW(search_matmul(d, mm, 8, 8), qcast::Error);
}

TEST(NpuMatmul, PredictsMlirAirsMeasuredGemmsOnNpu2) {
  const Device d = Device::builtin("npu2");
  double worst = 0;
  for (const auto& g : kGemm) {
    const Prediction p = predict_matmul(d, {g.M, g.K, g.N, "bf16", 4}, {8, 4, g.tm, g.k2, g.k1, g.tn});
    ASSERT_TRUE(p.valid) << p.reason;
    const double err = p.gflops / g.gflops - 1;
    // The calibration points are met; the other nine are predictions (docs/cost.md lists each: -16 % to +2 %).
    if (g.calibration)
      EXPECT_NEAR(err, 0, 0.01) << g.M << "x" << g.K << "x" << g.N;
    else
      EXPECT_LT(std::fabs(err), 0.20) << g.M << "x" << g.K << "x" << g.N << " tile_n " << g.tn << ": " << p.gflops << " vs " << g.gflops;
    worst = std::max(worst, std::fabs(err));
  }
  EXPECT_GT(worst, 0.05);  // the check above compares something: the held-out points are not all exact
  // The published sweep's main finding: tile_n 128 beats 64 by 1.35-1.38x, because the narrower block
  // re-reads A from DRAM twice as often. The model: L3-bound at both, and 1.3-1.5x apart.
  for (auto [M, K, N, k2] : {std::array<std::int64_t, 4>{2048, 2048, 2048, 512}, {2048, 8192, 2048, 256}, {4096, 4096, 4096, 256}}) {
    const Prediction n64 = predict_matmul(d, {M, K, N, "bf16", 4}, {8, 4, 64, k2, 32, 64});
    const Prediction n128 = predict_matmul(d, {M, K, N, "bf16", 4}, {8, 4, 64, k2, 32, 128});
    EXPECT_EQ(n64.bound, "L3");
    EXPECT_GT(n64.cycles / n128.cycles, 1.3);
    EXPECT_LT(n64.cycles / n128.cycles, 1.5);
  }
  // And the search, free to choose, finds a tiling at least as fast as the registry's best.
  const auto best = search_matmul(d, {2048, 8192, 2048, "bf16", 4}, 8, 4).front();
  EXPECT_LE(best.prediction.cycles, predict_matmul(d, {2048, 8192, 2048, "bf16", 4}, {8, 4, 64, 256, 32, 128}).cycles);
}

TEST(NpuAttention, PredictsMlirAirsMeasuredFlashAttentionOnNpu2) {
  const Device d = Device::builtin("npu2");
  const AttentionTiling published{2, 4, 4, 256, 64};
  std::vector<double> held_out;
  for (const auto& a : kAttn) {
    const Attention at{a.lq, a.lk, a.heads, a.kv_heads, a.dk, a.dk, a.causal, "bf16"};
    const Prediction p = predict_attention(d, at, published);
    ASSERT_TRUE(p.valid) << p.reason;
    const double err = p.seconds * 1e3 / a.ms - 1;
    if (a.calibration)
      EXPECT_NEAR(err, 0, 0.01) << a.lq << " " << a.heads;
    else
      held_out.push_back(std::fabs(err));
    // MLIR-AIR's other full-array layout (1 head x 8 query tiles) measured within 1-3 % of this one.
    const Prediction other = predict_attention(d, at, {1, 8, 4, 512, 64});
    ASSERT_TRUE(other.valid) << other.reason;
    EXPECT_NEAR(other.cycles / p.cycles, 1, 0.05);
  }
  // Thirteen predictions: the median within 10 %, the worst (512 x 512 with 64 heads: 128 short launch
  // iterations, whose fixed costs the hardware overlaps better than the model) within 50 %.
  std::sort(held_out.begin(), held_out.end());
  ASSERT_EQ(held_out.size(), 13u);
  EXPECT_LT(held_out[6], 0.10);
  EXPECT_LT(held_out.back(), 0.50);
  // Its finding that tile_q 128 at lkp 64 does not place (L1) holds in the model.
  const Prediction big = predict_attention(d, {1024, 1024, 12, 12, 64, 64, false, "bf16"}, {1, 8, 4, 1024, 64});
  EXPECT_FALSE(big.valid);
  EXPECT_NE(big.reason.find("L1"), std::string::npos);
}

TEST(NpuAttention, CausalHalvesTheUsefulMacsNotTheTimeAndTheSearchIsSorted) {
  const Device d = Device::builtin("npu2");
  Attention a{4096, 4096, 32, 8, 128, 128, false, "bf16"};
  const AttentionTiling t{2, 4, 4, 256, 64};
  const Prediction full = predict_attention(d, a, t);
  a.causal = true;
  const Prediction causal = predict_attention(d, a, t);
  EXPECT_DOUBLE_EQ(causal.macs * 2, full.macs);
  EXPECT_DOUBLE_EQ(causal.cycles, full.cycles);  // the kernel masks; it does not skip blocks
  EXPECT_FALSE(predict_attention(d, a, {2, 4, 4, 512, 64}).valid);  // causal: square blocks only
  EXPECT_FALSE(predict_attention(d, a, {4, 2, 4, 256, 64}).valid);  // shim channels
  EXPECT_FALSE(predict_attention(d, a, {2, 8, 4, 512, 64}).valid);  // 16 columns
  const auto all = search_attention(d, a);
  ASSERT_FALSE(all.empty());
  for (std::size_t k = 1; k < all.size(); ++k) EXPECT_LE(all[k - 1].prediction.cycles, all[k].prediction.cycles);
  EXPECT_LE(all.front().prediction.cycles, causal.cycles);
  EXPECT_THROW(predict_attention(d, {64, 64, 6, 4, 64, 64, false, "bf16"}, t), qcast::Error);  // heads % kv_heads
}

TEST(CliNpu, RanksTilingsReadsEditedDevicesAndRefusesBadInput) {
  qcast::test::TempDir dir;
  auto r = qcast::test::run_cli("npu --matmul 2048x8192x2048 --herd 8x4 --tiles 64,256,32,128 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schema"], 1);
  EXPECT_EQ(j["device"], "npu2");
  const double gflops = j["choices"][0]["prediction"]["gflops"];
  EXPECT_NEAR(gflops, 9797, 98);
  // --print-device writes a file --device reads; halving its DRAM bandwidth slows an L3-bound GEMM.
  r = qcast::test::run_cli("npu --print-device npu2");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string text = r.out;
  const auto p = text.find("l3_gbps: 41.3");
  ASSERT_NE(p, std::string::npos);
  text.replace(p, 13, "l3_gbps: 20.65");
  {
    std::ofstream out(dir.file("slow.yaml"));
    out << text;
  }
  r = qcast::test::run_cli("npu --device " + dir.file("slow.yaml") + " --matmul 2048x8192x2048 --herd 8x4 --tiles 64,256,32,128 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_LT(nlohmann::json::parse(r.out)["choices"][0]["prediction"]["gflops"].get<double>(), 0.6 * gflops);
  // The search's text ranking and its attention counterpart.
  r = qcast::test::run_cli("npu --device npu1 --matmul 256x256x256 --type int8 --top 3");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("rank"), std::string::npos);
  EXPECT_NE(r.out.find("best: herd"), std::string::npos);
  r = qcast::test::run_cli("npu --attention --lq 2048 --heads 32 --kv-heads 8 --head-dim 64 --causal --json --top 0");
  ASSERT_EQ(r.rc, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["choices"].size(), j["evaluated"].get<std::size_t>());
  // Bad input: exit 2 with a message, never a crash.
  for (const char* bad : {"npu --matmul 0x1x1", "npu --matmul 64x64", "npu --matmul 64x64x64x64", "npu --matmul 99999999999x1x1",
                          "npu --device /nonexistent --matmul 64x64x64", "npu --matmul 64x64x64 --type fp64", "npu",
                          "npu --matmul 64x64x64 --attention --lq 64 --heads 1 --head-dim 64", "npu --matmul 64x64x64 --tiles 64,64,32,64",
                          "npu --matmul 64x64x64 --herd 9x9 --tiles 16,64,32,16", "npu --attention --lq 64",
                          "npu --attention --lq 64 --heads 6 --kv-heads 4 --head-dim 64", "npu --print-device npu9",
                          "npu --matmul 4096x4096x4096 --herd 8x4 --tiles 64,256,32,256"}) {
    r = qcast::test::run_cli(bad);
    EXPECT_EQ(r.rc, 2) << bad << "\n" << r.out << r.err;
    EXPECT_FALSE(r.err.empty()) << bad;
  }
  std::ofstream(dir.file("bad.yaml")) << "npu: {columns: 4}\n";
  r = qcast::test::run_cli("npu --device " + dir.file("bad.yaml") + " --matmul 64x64x64");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
}

TEST(NpuModel, LlamaLayersAndAttentionAtTheSequenceLength) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  const auto work = model_work(qcast::test::shared_dir() + "/models/stories260K.bin", 256, "bf16");
  // 5 layers x (7 linear + attention) + the classifier.
  ASSERT_EQ(work.size(), 41u);
  EXPECT_EQ(work[0].name, "layers.0.attention.wq");
  EXPECT_FALSE(work[0].attention);
  EXPECT_EQ(work[0].matmul.M, 256);
  EXPECT_EQ(work[0].matmul.K, 64);
  EXPECT_EQ(work[0].matmul.N, 64);
  EXPECT_EQ(work[1].matmul.N, 32);  // wk: 4 KV heads of 8
  ASSERT_TRUE(work[3].attention);
  EXPECT_EQ(work[3].name, "layers.0.attention.sdpa");
  EXPECT_EQ(work[4].name, "layers.0.attention.wo");
  EXPECT_EQ(work[3].attn.lq, 256);
  EXPECT_EQ(work[3].attn.heads, 8);
  EXPECT_EQ(work[3].attn.kv_heads, 4);
  EXPECT_EQ(work[3].attn.dk, 8);
  EXPECT_TRUE(work[3].attn.causal);
  EXPECT_EQ(work.back().matmul.N, 512);  // the classifier: vocabulary 512
  // A head dimension of 8 is padded to the kernel's lkp: the work is done, the useful MACs are the real ones.
  const Prediction p = search_attention(Device::builtin("npu2"), work[3].attn).front().prediction;
  EXPECT_DOUBLE_EQ(p.macs, 8.0 * 256 * 256 * 16 / 2);
}

TEST(NpuModel, OnnxConvolutionsAsIm2colProducts) {
  QCAST_REQUIRE_SHARED("models/resnet20-cifar10.onnx");
  const auto work = model_work(qcast::test::shared_dir() + "/models/resnet20-cifar10.onnx", 1, "int8");
  ASSERT_EQ(work.size(), 20u);  // 19 convolutions + the classifier
  EXPECT_EQ(work[0].matmul.M, 32 * 32);  // one row per output pixel
  EXPECT_EQ(work[0].matmul.K, 3 * 3 * 3);
  EXPECT_EQ(work[0].matmul.N, 16);
  EXPECT_EQ(work.back().matmul.M, 1);
  EXPECT_EQ(work.back().matmul.K, 64);
  EXPECT_EQ(work.back().matmul.N, 10);
  // The CLI's model table: every layer mapped, shares summing to one, the total the sum of the layers.
  auto r = qcast::test::run_cli("npu --device npu1 --type int8 --model " + qcast::test::shared_dir() + "/models/resnet20-cifar10.onnx --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["layers"].size(), 20u);
  double share = 0, seconds = 0;
  for (const auto& l : j["layers"]) {
    ASSERT_FALSE(l.contains("unmapped")) << l.dump();
    share += l["share"].get<double>();
    seconds += l["prediction"]["seconds"].get<double>();
  }
  EXPECT_NEAR(share, 1, 1e-9);
  EXPECT_NEAR(seconds, j["total"]["seconds"].get<double>(), 1e-12);
  r = qcast::test::run_cli("npu --model " + qcast::test::shared_dir() + "/models/resnet20-cifar10.onnx --matmul 64x64x64");
  EXPECT_EQ(r.rc, 2);
  r = qcast::test::run_cli("npu --model " + qcast::test::shared_dir() + "/models/stories260K.bin --input-shape 1x3x32x32");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("ONNX"), std::string::npos) << r.err;
}
