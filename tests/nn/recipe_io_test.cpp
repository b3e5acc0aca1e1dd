// The one recipe serializer: JSON and YAML both ways, nothing dropped, floats exact; the files qcast
// quantize writes (--save-recipe, and the recipe inside its packed model) are what eval takes as --recipe.
#include <bit>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "qcast/error.hpp"
#include "qcast/nn/recipe.hpp"
#include "test_support.hpp"

using namespace qcast;

namespace {

nn::Recipe rich_recipe() {
  nn::Recipe r;
  r.weights = "mxfp4";
  r.acts = "int8";
  r.act_observer = "percentile:99.9";
  r.kv = "e4m3@e8m0/b32";
  nn::LayerOverride a;
  a.pattern = "/fc/*";
  a.weights = "int4@fp16/g32";
  a.acts = "e4m3";
  a.act_observer = "mse";
  nn::LayerOverride b;
  b.pattern = "layers.[0-3].attention.w?";
  b.acts = "none";  // full precision for these layers' activations
  nn::LayerOverride c;
  c.pattern = "*Conv";
  c.weights = "none";
  r.layers = {a, b, c};
  r.skip = {"/convnet/c1/Conv", "output"};
  // Awkward floats: a subnormal, 1/3, the float max, negative zero, a value that 6 digits would round.
  r.act_ranges["/convnet/c1/Conv"] = StaticRange{{-2.4242129f}, {2.4242129f}};
  r.act_ranges["/fc/f6/Gemm"] = StaticRange{{-1.0e-40f, -0.0f, -3.4028235e38f}, {1.0f / 3, 0.1f, 3.4028235e38f}};
  // The hardware keys qcast cost reads travel with the recipe.
  r.outputs = "fp32";
  r.accumulator = "int24";
  r.partial_sums = "bf16";
  return r;
}

void expect_same(const nn::Recipe& a, const nn::Recipe& b, const std::string& how) {
  EXPECT_EQ(a.weights, b.weights) << how;
  EXPECT_EQ(a.acts, b.acts) << how;
  EXPECT_EQ(a.act_observer, b.act_observer) << how;
  EXPECT_EQ(a.kv, b.kv) << how;
  EXPECT_EQ(a.layers, b.layers) << how;
  EXPECT_EQ(a.skip, b.skip) << how;
  EXPECT_EQ(a.outputs, b.outputs) << how;
  EXPECT_EQ(a.accumulator, b.accumulator) << how;
  EXPECT_EQ(a.partial_sums, b.partial_sums) << how;
  ASSERT_EQ(a.act_ranges.size(), b.act_ranges.size()) << how;
  for (const auto& [name, rg] : a.act_ranges) {
    const auto& other = b.act_ranges.at(name);
    ASSERT_EQ(rg.lo.size(), other.lo.size()) << how;
    for (std::size_t i = 0; i < rg.lo.size(); ++i) {  // bit patterns: -0.0 and subnormals must survive
      EXPECT_EQ(std::bit_cast<std::uint32_t>(rg.lo[i]), std::bit_cast<std::uint32_t>(other.lo[i])) << how << " " << name;
      EXPECT_EQ(std::bit_cast<std::uint32_t>(rg.hi[i]), std::bit_cast<std::uint32_t>(other.hi[i])) << how << " " << name;
    }
  }
  EXPECT_TRUE(a == b) << how;
}

}  // namespace

TEST(RecipeIo, JsonAndYamlRoundTripEverything) {
  const nn::Recipe r = rich_recipe();
  expect_same(r, nn::parse_recipe(nn::recipe_to_json(r), "json"), "json");
  expect_same(r, nn::parse_recipe(nn::recipe_to_json(r, 2), "json indented"), "json indented");
  expect_same(r, nn::parse_recipe(nn::recipe_to_yaml(r), "yaml"), "yaml");
  // The YAML is block-style YAML, not JSON in disguise.
  EXPECT_EQ(nn::recipe_to_yaml(r).find('{'), nn::recipe_to_yaml(r).find("{lo:"));
}

TEST(RecipeIo, RandomRecipesRoundTripBitExactly) {
  const std::vector<std::string> formats = {"", "int8@fp32/ch0", "int4/g32", "mxfp4", "mxfp8", "nvfp4", "e4m3", "bf16", "int4@fp16/g128"};
  std::mt19937_64 rng(7);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  auto any_float = [&] {
    for (;;) {  // any finite float bit pattern
      const float f = std::bit_cast<float>(static_cast<std::uint32_t>(rng()));
      if (std::isfinite(f)) return f;
    }
  };
  for (int trial = 0; trial < 200; ++trial) {
    nn::Recipe r;
    r.weights = pick(formats);
    r.acts = pick({"", "int8", "e4m3", "mxfp8", "int8/g32"});
    if (r.acts == "int8") r.act_observer = pick({"minmax", "mse", "percentile:99.5"});  // int8 alone needs a static scale
    r.kv = pick({"", "mxfp8", "int8/g32"});
    for (int k = static_cast<int>(rng() % 4); k > 0; --k) {
      nn::LayerOverride o;
      o.pattern = "layer" + std::to_string(rng() % 100) + (rng() % 2 ? "*" : "");
      if (rng() % 2) o.weights = pick({"none", "mxfp4", "int4/g32"});
      if (rng() % 2) {
        o.acts = pick({"none", "int8", "mxfp8"});
        if (*o.acts == "int8") o.act_observer = "minmax";
      }
      r.layers.push_back(o);
    }
    for (int k = static_cast<int>(rng() % 3); k > 0; --k) r.skip.push_back("skip" + std::to_string(rng() % 50));
    r.outputs = pick({"", "fp32", "bf16", "e4m3"});
    r.accumulator = pick({"", "int32", "fp32", "fp16", "uint20"});
    r.partial_sums = pick({"", "int16", "bf16"});
    for (int k = static_cast<int>(rng() % 3); k > 0; --k) {
      StaticRange sr;
      for (int g = 1 + static_cast<int>(rng() % 4); g > 0; --g) {
        float lo = any_float(), hi = any_float();
        if (lo > hi) std::swap(lo, hi);
        sr.lo.push_back(lo);
        sr.hi.push_back(hi);
      }
      r.act_ranges["L" + std::to_string(rng() % 1000)] = sr;
    }
    const std::string how = "trial " + std::to_string(trial);
    expect_same(r, nn::parse_recipe(nn::recipe_to_json(r), how), how + " json");
    expect_same(r, nn::parse_recipe(nn::recipe_to_yaml(r), how), how + " yaml");
  }
}

TEST(RecipeIo, HandWrittenFormsReadAsTheirCanonicalForm) {
  // The hand-written spellings (map-style layers, {format, observer}, kv / acts / overrides aliases, fp32)
  // read to the same recipe as the canonical form the writer emits.
  const nn::Recipe hand = nn::parse_recipe(
      "weights: mxfp4\n"
      "activations: {format: int8, observer: minmax}\n"
      "kv: fp32\n"
      "overrides:\n"
      "  \"/fc/*\": {weights: mxfp8, activations: null}\n"
      "  \"/c2/*\": {acts: {format: e4m3, observer: mse}}\n"
      "skip: /convnet/c1/Conv\n"
      "name: example\n",
      "hand.yaml");
  EXPECT_EQ(hand.weights, "mxfp4");
  EXPECT_EQ(hand.act_observer, "minmax");
  EXPECT_EQ(hand.kv, "");
  ASSERT_EQ(hand.layers.size(), 2u);
  EXPECT_EQ(*hand.layers[0].acts, "none");
  EXPECT_EQ(hand.layers[1].act_observer, "mse");
  EXPECT_EQ(hand.skip, std::vector<std::string>{"/convnet/c1/Conv"});
  expect_same(hand, nn::parse_recipe(nn::recipe_to_json(hand), "json"), "json");
  expect_same(hand, nn::parse_recipe(nn::recipe_to_yaml(hand), "yaml"), "yaml");
}

TEST(RecipeIo, BadRecipesNameTheSourceAndTheKey) {
  auto msg = [](const std::string& text) {
    try {
      nn::parse_recipe(text, "r.yaml");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(msg("wieghts: int8\n").find("r.yaml: unknown recipe key 'wieghts'"), std::string::npos);
  EXPECT_NE(msg("layers: {\"a\": {weight: int8}}\n").find("unknown key 'weight' in the override for 'a'"), std::string::npos);
  EXPECT_NE(msg("act_ranges: {x: {lo: [1.0], hi: [0.5]}}\n").find("static range of 'x'"), std::string::npos);
  EXPECT_NE(msg("act_ranges: {x: {lo: [-1.0, -2.0], hi: [1.0]}}\n").find("equal"), std::string::npos);
  EXPECT_NE(msg("weights: [int8, int4]\n").find("'weights' must be a single value"), std::string::npos);
  EXPECT_NE(msg("weights: mxfp44\n").find("r.yaml"), std::string::npos);
  EXPECT_NE(msg("- weights\n").find("a recipe is a mapping"), std::string::npos);
  EXPECT_NE(msg("weights: [unclosed\n").find("r.yaml"), std::string::npos);
  EXPECT_NE(msg("weights: mxfp4\naccumulator: int99\n").find("r.yaml:2:14: accumulator 'int99'"), std::string::npos)
      << msg("weights: mxfp4\naccumulator: int99\n");
  EXPECT_NE(msg("accumulator: mxfp4\n").find("not an accumulator format"), std::string::npos);
  EXPECT_NE(msg("partial_sums: e8m0\n").find("not an accumulator format"), std::string::npos);
  EXPECT_NE(msg("outputs: fp99\n").find("r.yaml"), std::string::npos);
  EXPECT_EQ(msg("accumulator: INT32\npartial_sums: fp16\noutputs: fp32\n"), "(no error)");
}

TEST(RecipeIo, SaveThenLoadBothExtensions) {
  test::TempDir d;
  const nn::Recipe r = rich_recipe();
  for (const char* name : {"r.json", "r.yaml"}) {
    nn::save_recipe(d.file(name), r);
    expect_same(r, nn::load_recipe(d.file(name)), name);
  }
  std::ifstream json_file(d.file("r.json"));
  EXPECT_NO_THROW((void)nlohmann::json::parse(json_file));  // *.json is JSON
  EXPECT_THROW(nn::save_recipe(d.file("missing/dir/r.yaml"), r), Error);
}

TEST(RecipeIo, QuantizeSaveRecipeIsWhatEvalTakes) {
  // The recipe quantize applied, with its per-layer overrides and the static activation ranges it
  // calibrated, is written with --save-recipe; evaluating the float model under that recipe (no
  // calibration: the ranges are in the file) gives exactly what evaluating the quantized file gives.
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  QCAST_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte.gz");
  test::TempDir d;
  const std::string model = test::shared_dir() + "/models/lenet5-mnist.onnx";
  const std::string mnist = "mnist:" + test::shared_dir() + "/data/mnist";
  std::ofstream(d.file("in.yaml")) << "weights: int4/g32\nactivations: {format: int8, observer: minmax}\n"
                                      "layers:\n  \"/fc/*\": {weights: mxfp8}\n";
  auto q = test::run_cli("quantize " + model + " --method rtn --recipe " + d.file("in.yaml") + " --calib " + mnist +
                         " --calib-samples 64 --calib-offset 5000 --out " + d.file("q.safetensors") + " --save-recipe " +
                         d.file("r.yaml") + " --quiet");
  ASSERT_EQ(q.rc, 0) << q.err;
  const nn::Recipe saved = nn::load_recipe(d.file("r.yaml"));
  ASSERT_EQ(saved.layers.size(), 1u);
  EXPECT_EQ(*saved.layers[0].weights, "mxfp8");
  EXPECT_EQ(saved.act_ranges.size(), 5u) << "one calibrated range per layer";
  auto from_file = test::run_cli("eval " + d.file("q.safetensors") + " --data " + mnist + " --limit 300 --json");
  auto from_recipe = test::run_cli("eval " + model + " --recipe " + d.file("r.yaml") + " --data " + mnist + " --limit 300 --json");
  ASSERT_EQ(from_file.rc, 0) << from_file.err;
  ASSERT_EQ(from_recipe.rc, 0) << from_recipe.err;
  const auto a = nlohmann::json::parse(from_file.out), b = nlohmann::json::parse(from_recipe.out);
  EXPECT_EQ(a["correct"], b["correct"]);
  EXPECT_EQ(a["nll"].get<double>(), b["nll"].get<double>());
  EXPECT_EQ(a["recipe"], b["recipe"]);
}
