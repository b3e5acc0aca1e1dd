// Skip connections as buffers (qcast/skips.hpp, `qcast cost --skips`): found on the real ResNet-20 / ResNet-56
// graphs with the expected forks, branches and latencies; shortened and removed as the what-if modes say.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "qcast/nn/onnx.hpp"
#include "qcast/skips.hpp"
#include "test_support.hpp"

using namespace qcast;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }
std::string src(const std::string& rel) { return std::string(QCAST_SOURCE_DIR) + "/" + rel; }

// A 3x3 convolution with pads 1 at cumulative stride s delays the first output by one input row (s rows of
// the held value, W pixels each) and two input pixels (2 s held pixels).
std::int64_t conv3x3_latency(std::int64_t s, std::int64_t width) { return s * width + 2 * s; }

}  // namespace

TEST(Skips, Resnet20BasicBlocksAreNineTwoLayerSkips) {
  QCAST_REQUIRE_SHARED("models/resnet20-cifar10.onnx");
  const nn::Graph g = nn::load_onnx(S("models/resnet20-cifar10.onnx"));
  const auto skips = hw::find_skips(g, 1, hw::SkipMode::Keep);
  ASSERT_EQ(skips.size(), 9u);
  for (std::size_t k = 0; k < skips.size(); ++k) {
    const auto& s = skips[k];
    SCOPED_TRACE(s.join);
    EXPECT_EQ(s.branch.size(), 2u);
    EXPECT_TRUE(s.shortcut.empty());  // option A: Slice + Pad, no layer
    EXPECT_FALSE(s.removed);
    // The held value is the block's input: 16 x 32 x 32 into stage 1 and into the first block of stage 2, ...
    const std::int64_t stage = k / 3, first = k % 3 == 0;
    const std::int64_t C = 16 << (stage - (first && stage > 0 ? 1 : 0));
    const std::int64_t W = 32 >> (stage - (first && stage > 0 ? 1 : 0));
    EXPECT_EQ(s.shape, (Shape{1, C, W, W}));
    EXPECT_EQ(s.elems, C * W * W);
    // Two 3x3 convolutions; a stage's first block downsamples in its first one.
    const std::int64_t stride = first && stage > 0 ? 2 : 1;
    EXPECT_EQ(s.latency_pixels, conv3x3_latency(1, W) + conv3x3_latency(stride, W));
    EXPECT_EQ(s.fifo_elems, s.latency_pixels * C);
  }
  EXPECT_EQ(skips[0].fork, "/Relu_output_0");  // the stem's ReLU
}

TEST(Skips, ShortenMovesTheForkToTheLastLayerAndRemoveDropsEveryBuffer) {
  QCAST_REQUIRE_SHARED("models/resnet56-cifar10.onnx");
  const nn::Graph g = nn::load_onnx(S("models/resnet56-cifar10.onnx"));
  const auto keep = hw::find_skips(g, 1, hw::SkipMode::Keep);
  const auto shorter = hw::find_skips(g, 1, hw::SkipMode::Shorten);
  const auto removed = hw::find_skips(g, 1, hw::SkipMode::Remove);
  ASSERT_EQ(keep.size(), 27u);
  ASSERT_EQ(shorter.size(), 27u);
  ASSERT_EQ(removed.size(), 27u);
  for (std::size_t k = 0; k < keep.size(); ++k) {
    SCOPED_TRACE(keep[k].join);
    ASSERT_EQ(shorter[k].branch.size(), 1u);
    EXPECT_EQ(shorter[k].branch[0], keep[k].branch[1]);  // the block's second convolution
    // The held value is now the block's middle activation: the join's shape, one convolution of latency.
    const std::int64_t W = shorter[k].shape[3];
    EXPECT_EQ(shorter[k].latency_pixels, conv3x3_latency(1, W));
    EXPECT_LE(shorter[k].elems, keep[k].elems);
    EXPECT_LT(shorter[k].fifo_elems, keep[k].fifo_elems);
    EXPECT_TRUE(removed[k].removed);
    EXPECT_EQ(removed[k].fifo_elems, 0);
  }
  EXPECT_THROW(hw::parse_skip_mode("drop"), Error);
}

TEST(Skips, CostReportsBuffersAndSpillsAndRefusesWhatItCannotSee) {
  QCAST_REQUIRE_SHARED("models/resnet20-cifar10.onnx");
  const std::string base = "cost --arch " + src("examples/arch/eyeriss_like.yaml") + " --model " +
                           S("models/resnet20-cifar10.onnx") + " --samples 200 --refine 20 --json --skips ";
  const auto keep = test::run_cli(base + "keep");
  ASSERT_EQ(keep.rc, 0) << keep.err;
  const auto k = nlohmann::json::parse(keep.out)["skip_connections"];
  EXPECT_EQ(k["count"], 9);
  // fp32 (no recipe): stage 1's held 16 x 32 x 32 tensor is 64 KiB, with its working set over the 128 KiB
  // global buffer: it spills, written at the fork and read at the join.
  EXPECT_EQ(k["skips"][0]["held_bytes"].get<double>(), 65536.0);
  EXPECT_FALSE(k["skips"][0]["pe_array_fits"].get<bool>());
  EXPECT_EQ(k["skips"][0]["pe_array_dram_spill_bytes"].get<double>(), 131072.0);
  const auto removed = test::run_cli(base + "remove");
  ASSERT_EQ(removed.rc, 0) << removed.err;
  const auto r = nlohmann::json::parse(removed.out)["skip_connections"];
  EXPECT_EQ(r["pe_array"]["dram_spill_bytes"].get<double>(), 0.0);
  EXPECT_EQ(r["dataflow"]["skip_fifo_bytes"].get<double>(), 0.0);
  EXPECT_GT(k["pe_array"]["dram_spill_bytes"].get<double>(), 0.0);
  // 8-bit activations: a quarter of the bytes, and every held tensor fits beside its layers.
  const auto int8 = test::run_cli(base + "keep --recipe int8");
  ASSERT_EQ(int8.rc, 0) << int8.err;
  const auto i = nlohmann::json::parse(int8.out)["skip_connections"];
  EXPECT_EQ(i["skips"][0]["held_bytes"].get<double>(), 16384.0);
  EXPECT_EQ(i["pe_array"]["spilled_skips"], 0);
  // Bad mode, a model without a graph, --skips with --layer: exit 2.
  EXPECT_EQ(test::run_cli(base + "drop").rc, 2);
  EXPECT_EQ(test::run_cli(base + "keep --layer '/conv1/*'").rc, 2);
  if (std::filesystem::exists(S("models/stories260K.bin"))) {  // a language model has no graph: refused before mapping
    const auto lm = test::run_cli("cost --arch " + src("examples/arch/eyeriss_like.yaml") + " --model " + S("models/stories260K.bin") +
                                  " --skips keep");
    EXPECT_EQ(lm.rc, 2);
    EXPECT_NE(lm.err.find("needs an ONNX model"), std::string::npos) << lm.err;
  }
}
