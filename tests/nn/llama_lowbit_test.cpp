// The LLaMA runtime on the low-bit kernels (Llama::use_lowbit_kernels, `--kernel lowbit`): which layers run
// packed, that a GGUF's blocks and a recipe's blocks are the same bytes and give the same logits, that the
// perplexity moves only by the 8-bit activation rounding, that results do not depend on the thread count,
// and that a weight changed after packing never runs on stale blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>
#include <nlohmann/json.hpp>

#include "qcast/gguf.hpp"
#include "qcast/kernels/lowbit.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/model.hpp"
#include "test_support.hpp"

using namespace qcast;
using qcast::test::run_cli;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }

std::vector<std::string> stories(std::size_t n) {
  auto s = nn::load_stories(S("data/tinystories/valid-excerpt.txt"));
  if (s.size() > n) s.resize(n);
  return s;
}

std::vector<float> logits_of(const nn::Llama& m, const std::vector<int>& toks) {
  auto st = m.new_state();
  std::vector<float> all;
  for (std::size_t p = 0; p < toks.size(); ++p) {
    const float* l = m.forward(st, toks[p], static_cast<int>(p));
    all.insert(all.end(), l, l + m.cfg.vocab_size);
  }
  return all;
}

// stories260K quantized by the CLI to a GGUF of `weights` (its 172-input ffn_down layers stay F32).
std::string quantized_gguf(test::TempDir& tmp, const std::string& weights) {
  const std::string out = tmp.file(weights.substr(0, 4) + ".gguf");
  auto q = run_cli("quantize " + S("models/stories260K.bin") + " --tokenizer " + S("models/tok512.bin") + " --weights " + weights +
                   " --method rtn --calib text:" + S("data/tinystories/valid-excerpt.txt") + " --calib-samples 1 --calib-tokens 16 --quiet --out " + out);
  EXPECT_EQ(q.rc, 0) << q.err;
  return out;
}

}  // namespace

TEST(LlamaLowbit, GgufAndRecipeBlocksAreTheSameAndGiveTheSameLogits) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  const std::vector<int> toks = tok.encode("Once upon a time there was a little girl named Lily.", true, false);
  // Q8_0, Q4_0, and types that unpack to 8-bit codes with half-block scales (Q5_0, Q5_1 with minimums,
  // IQ4_NL's codebook, MXFP4, NVFP4's 16-blocks), which run on the tiled kernel only.
  for (const char* fmt : {"int8@fp16/b32", "int4@fp16/b32", "q5_0", "q5_1", "iq4_nl", "mxfp4_ggml", "nvfp4_ggml"}) {
    SCOPED_TRACE(fmt);
    const bool tiled_only = std::string(fmt).rfind("int", 0) != 0;
    if (tiled_only && !kern::lowbit_tiles_supported()) {
      nn::Llama g = nn::load_gguf_llama(quantized_gguf(tmp, fmt));
      EXPECT_EQ(g.use_lowbit_kernels(1), 0);  // no AVX-512 VNNI: these layers stay on fp32 BLAS
      continue;
    }
    nn::Llama g = nn::load_gguf_llama(quantized_gguf(tmp, fmt));
    nn::Llama r = nn::load_llama(S("models/stories260K.bin"));
    nn::Recipe rec;
    rec.weights = fmt;
    r.apply_recipe(rec);
    const std::vector<float> fp32_path = logits_of(g, toks);
    // 6 linear layers in each of 5 blocks and the classifier; the 5 ffn_down layers (172 inputs) stay fp32.
    EXPECT_EQ(g.use_lowbit_kernels(1), 31);
    EXPECT_EQ(r.use_lowbit_kernels(1), 31);
    const auto gl = nn::linears(std::as_const(g)), rl = nn::linears(std::as_const(r));
    ASSERT_EQ(gl.size(), rl.size());
    for (std::size_t i = 0; i < gl.size(); ++i) {
      ASSERT_EQ(gl[i]->packed == nullptr, rl[i]->packed == nullptr) << gl[i]->name;
      if (gl[i]->packed) EXPECT_TRUE(gl[i]->packed->blocks == rl[i]->packed->blocks) << gl[i]->name;
    }
    const std::vector<float> lg = logits_of(g, toks), lr = logits_of(r, toks);
    ASSERT_EQ(lg.size(), lr.size());
    EXPECT_EQ(std::memcmp(lg.data(), lr.data(), lg.size() * sizeof(float)), 0);
    // The 8-bit activations move the logits a little, not a lot.
    double diff = 0.0, mag = 0.0;
    for (std::size_t i = 0; i < lg.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(lg[i] - fp32_path[i])));
      mag = std::max(mag, static_cast<double>(std::fabs(fp32_path[i])));
    }
    EXPECT_GT(diff, 0.0);
    EXPECT_LT(diff, 0.05 * mag);
  }
}

TEST(LlamaLowbit, PerplexityMovesLittleAndIgnoresTheThreadCount) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const std::string file = quantized_gguf(tmp, "int4@fp16/b32");
  const nn::Tokenizer tok = nn::Tokenizer::from_gguf(file, 512);
  const auto texts = stories(8);
  nn::Llama m = nn::load_gguf_llama(file);
  const auto fp32 = nn::perplexity(m, tok, texts, 1);
  m.use_lowbit_kernels(1);
  const auto one = nn::perplexity(m, tok, texts, 1);
  const auto two = nn::perplexity(m, tok, texts, 2);
  EXPECT_EQ(one.nll, two.nll);  // stories on two threads: the same bits
  EXPECT_NE(one.nll, fp32.nll);
  EXPECT_NEAR(one.perplexity() / fp32.perplexity(), 1.0, 0.005);
  // Generation splits every product's rows over threads: the same logits for 1 and 3 threads.
  const std::vector<int> toks = tok.encode("The cat sat on the mat and looked at the sun.", true, false);
  const std::vector<float> a = logits_of(m, toks);
  m.lowbit_threads = 3;
  const std::vector<float> b = logits_of(m, toks);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST(LlamaLowbit, AChangedWeightDropsItsBlocks) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  test::TempDir tmp;
  nn::Llama m = nn::load_gguf_llama(quantized_gguf(tmp, "int8@fp16/b32"));
  // A later recipe in a format without a ggml layout (FP8): nothing runs low-bit.
  nn::Recipe rec;
  rec.weights = "e4m3";
  m.apply_recipe(rec);
  EXPECT_EQ(m.use_lowbit_kernels(1), 0);
  // A weight edited in place (as GPTQ does) no longer matches its GGUF blocks: that layer stays fp32.
  nn::Llama g = nn::load_gguf_llama(tmp.file("int8.gguf"));
  nn::linears(g)[0]->w[0] += 1.0f;
  EXPECT_EQ(g.use_lowbit_kernels(1), 30);
  EXPECT_EQ(nn::linears(g)[0]->packed, nullptr);
}

TEST(LlamaLowbit, CliKernelFlag) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const std::string file = quantized_gguf(tmp, "int4@fp16/b32"), data = " --data text:" + S("data/tinystories/valid-excerpt.txt") + " --limit 4";
  auto e = run_cli("eval " + file + data + " --kernel lowbit --json");
  ASSERT_EQ(e.rc, 0) << e.err;
  const auto j = nlohmann::json::parse(e.out);
  EXPECT_EQ(j["kernel"], "lowbit");
  EXPECT_EQ(j["lowbit_layers"], 31);
  auto g = run_cli("generate " + file + " --steps 24 --temperature 0 --kernel lowbit --threads 2 --json");
  ASSERT_EQ(g.rc, 0) << g.err;
  EXPECT_EQ(nlohmann::json::parse(g.out)["lowbit_layers"], 31);
  // A plain fp32 model has nothing to pack: it says so and runs fp32.
  auto f = run_cli("generate " + S("models/stories260K.bin") + " --steps 8 --temperature 0 --kernel lowbit");
  ASSERT_EQ(f.rc, 0) << f.err;
  EXPECT_NE(f.err.find("0 of 36 linear layers"), std::string::npos) << f.err;
  EXPECT_EQ(run_cli("eval " + file + data + " --kernel int3").rc, 2);
  EXPECT_EQ(run_cli("eval " + S("models/lenet5-mnist.onnx") + " --data mnist:" + S("data/mnist") + " --limit 4 --kernel lowbit").rc, 2);
}
