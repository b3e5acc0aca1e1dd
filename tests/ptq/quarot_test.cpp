// QuaRot-style norm folding and residual rotation (include/qcast/ptq/quarot.hpp): the rotation is
// orthogonal, folding and rotating leave the fp32 logits unchanged (a tiny random LLaMA and stories260K),
// quarot+gptq beats rtn at 4 bits on stories260K, and the packed file round-trips bit for bit.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <tuple>

#include "ptq_support.hpp"
#include "qcast/error.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/ptq/quarot.hpp"
#include "test_support.hpp"

using namespace qcast;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }

/// max |a - b| / max |a|.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(a[i] - b[i])));
    den = std::max(den, static_cast<double>(std::fabs(a[i])));
  }
  return num / den;
}

nn::Linear lin(const std::string& name, int out, int in, std::uint32_t seed) {
  nn::Linear L;
  L.name = name;
  L.out = out;
  L.in = in;
  L.w = test::randn(static_cast<std::int64_t>(out) * in, seed, 1.0f / std::sqrt(static_cast<float>(in)));
  return L;
}

/// Norm weights in [0.25, 2.25) with a few outlier features, so that folding does something.
std::vector<float> norm_weights(int n, std::uint32_t seed) {
  auto v = test::randn(n, seed);
  for (int j = 0; j < n; ++j) v[j] = 0.25f + std::fabs(v[j]) + (j % 11 == 3 ? 4.0f : 0.0f);
  return v;
}

/// A random LLaMA (shared classifier, grouped-query attention), no files needed.
nn::Llama tiny_llama(int dim, int n_heads, std::uint32_t seed) {
  nn::Llama m;
  auto& c = m.cfg;
  c.dim = dim;
  c.hidden_dim = 40;
  c.n_layers = 2;
  c.n_heads = n_heads;
  c.n_kv_heads = n_heads / 2;
  c.vocab_size = 50;
  c.seq_len = 16;
  c.shared_classifier = true;
  m.tok_emb = test::randn(static_cast<std::int64_t>(c.vocab_size) * dim, seed);
  for (int l = 0; l < c.n_layers; ++l) {
    nn::LlamaLayer L;
    const std::uint32_t s = seed + 100 * (l + 1);
    L.rms_att = norm_weights(dim, s);
    L.rms_ffn = norm_weights(dim, s + 1);
    L.wq = lin("wq", dim, dim, s + 2);
    L.wk = lin("wk", c.kv_dim(), dim, s + 3);
    L.wv = lin("wv", c.kv_dim(), dim, s + 4);
    L.wo = lin("wo", dim, dim, s + 5);
    L.w1 = lin("w1", c.hidden_dim, dim, s + 6);
    L.w2 = lin("w2", dim, c.hidden_dim, s + 7);
    L.w3 = lin("w3", c.hidden_dim, dim, s + 8);
    m.layers.push_back(L);
  }
  m.rms_final = norm_weights(dim, seed + 7);
  m.cls.name = "output";
  m.cls.out = c.vocab_size;
  m.cls.in = dim;
  m.cls.w = m.tok_emb;
  return m;
}

const std::vector<int> kTokens = {1, 7, 33, 2, 49, 12, 12, 5, 0, 18, 27, 41};

}  // namespace

TEST(Quarot, ResidualRotationIsOrthogonalForEveryKind) {
  const std::vector<std::pair<int, std::string>> cases = {
      {64, "hadamard"}, {128, "hadamard"}, {48, "paley-hadamard"}, {40, "paley-hadamard"}, {24, "paley-hadamard"}, {50, "qr"}, {36, "qr"}};
  for (const auto& [n, want] : cases) {
    std::string kind;
    const auto Q = ptq::residual_rotation(n, 5, &kind);
    EXPECT_EQ(kind, want) << n;
    double worst = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double d = 0;
        for (int k = 0; k < n; ++k) d += static_cast<double>(Q[i * n + k]) * Q[j * n + k];
        worst = std::max(worst, std::fabs(d - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-5) << n << " " << kind;
    // Deterministic for a seed, different across seeds.
    EXPECT_EQ(ptq::residual_rotation(n, 5), Q) << n;
    EXPECT_NE(ptq::residual_rotation(n, 6), Q) << n;
  }
  EXPECT_THROW(ptq::residual_rotation(0, 0), Error);
}

TEST(Quarot, TinyLlamaFoldingAndRotationKeepLogits) {
  // dim 32: Walsh-Hadamard (and head rotation, head size 8); 24: Paley 24 (head size 8); 36: QR (head size 6).
  // The last case pairs RoPE dimensions as Hugging Face does (rope_half); the rotations never touch q/k outputs.
  for (const auto& [dim, heads, half] : std::vector<std::tuple<int, int, bool>>{{32, 4, false}, {24, 3, false}, {36, 6, false}, {32, 4, true}}) {
    nn::Llama base = tiny_llama(dim, heads, 11);
    base.cfg.rope_half = half;
    const auto ref = base.forward_seq(kTokens);

    nn::Llama folded = base;
    ptq::fold_norms(folded);
    EXPECT_LT(rel_diff(ref, folded.forward_seq(kTokens)), 1e-5) << dim;
    for (float g : folded.layers[1].rms_ffn) EXPECT_EQ(g, 1.0f);
    EXPECT_NE(folded.layers[0].wq.w, base.layers[0].wq.w);  // the norm weights went somewhere

    nn::Llama rot = base;
    const auto info = ptq::quarot(rot, {});
    EXPECT_EQ(info.head_hadamard, (dim / heads) == 8 ? 8 : 0) << dim;
    EXPECT_LT(rel_diff(ref, rot.forward_seq(kTokens)), 1e-4) << dim << " " << info.residual;
    // The stream really is rotated: embeddings change beyond rounding.
    EXPECT_GT(rel_diff(base.tok_emb, rot.tok_emb), 0.1) << dim;
    // The token-by-token path agrees as well.
    auto st = rot.new_state();
    const float* lg = rot.forward(st, kTokens[0], 0);
    const std::vector<float> first(lg, lg + rot.cfg.vocab_size);
    const std::vector<float> want(ref.begin(), ref.begin() + rot.cfg.vocab_size);
    EXPECT_LT(rel_diff(want, first), 1e-4) << dim;
  }
  nn::Llama m = tiny_llama(32, 4, 3);
  ptq::QuarotOptions no_fold;
  no_fold.fold_norms = false;
  EXPECT_THROW(ptq::quarot(m, no_fold), Error);  // rotating needs unit norms
}

TEST(Quarot, Stories260KFoldingAndRotationKeepLogits) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  const nn::Llama base = nn::load_llama(S("models/stories260K.bin"));
  nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  auto stories = nn::load_stories(S("data/tinystories/valid-excerpt.txt"));
  auto toks = tok.encode(stories[0], true, false);
  if (toks.size() > 96) toks.resize(96);
  const auto ref = base.forward_seq(toks);
  nn::Llama folded = base;
  ptq::fold_norms(folded);
  EXPECT_LT(rel_diff(ref, folded.forward_seq(toks)), 1e-5);
  nn::Llama rot = base;
  const auto info = ptq::quarot(rot, {});
  EXPECT_EQ(info.residual, "hadamard");  // dim 64
  EXPECT_EQ(info.head_hadamard, 8);
  EXPECT_LT(rel_diff(ref, rot.forward_seq(toks)), 1e-4);
}

TEST(Quarot, Stories260KQuarotGptqBeatsRtnAt4Bits) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  auto stories = nn::load_stories(S("data/tinystories/valid-excerpt.txt"));
  const std::vector<std::string> evalset(stories.begin(), stories.begin() + 12);
  for (const std::string fmt : {"int4@fp16/g32", "mxfp4"}) {
    double ppl[2];
    int k = 0;
    for (const std::string method : {"rtn", "quarot+gptq"}) {
      ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
      ptq::QuantizeOptions o;
      o.method = method;
      o.recipe.weights = fmt;
      o.calib.spec = "text:" + S("data/tinystories/valid-excerpt.txt");
      o.calib.offset = 40;  // disjoint from the evaluated stories
      o.calib.samples = 6;
      o.calib.max_tokens = 128;
      o.threads = 2;
      o.progress = false;
      const auto r = ptq::quantize_model(m, o);
      EXPECT_EQ(r.quarot_json.empty(), method == "rtn");
      ppl[k++] = nn::perplexity(m.llama, tok, evalset, 2).perplexity();
    }
    // quarot+rtn alone is not asserted against rtn: on this 64-wide model folding the norms into the weights
    // costs about as much as the rotation gains, and the sign depends on the seed (docs/results.md).
    EXPECT_LT(ppl[1], ppl[0]) << fmt << ": rtn " << ppl[0] << " quarot+gptq " << ppl[1];
  }
}

TEST(Quarot, PackedFileRoundTripsBitForBit) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  auto stories = nn::load_stories(S("data/tinystories/valid-excerpt.txt"));
  auto toks = tok.encode(stories[1], true, false);
  if (toks.size() > 96) toks.resize(96);
  const std::string method = "quarot+gptq";
  ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
  ptq::QuantizeOptions o;
  o.method = method;
  o.recipe.weights = "mxfp4";
  o.recipe.acts = "mxfp8";
  o.recipe.skip = {"output"};  // an unquantized, rotated layer must be stored too
  o.calib.spec = "text:" + S("data/tinystories/valid-excerpt.txt");
  o.calib.offset = 40;
  o.calib.samples = 4;
  o.calib.max_tokens = 64;
  o.threads = 2;
  o.progress = false;
  o.seed = 3;
  const auto r = ptq::quantize_model(m, o);
  EXPECT_EQ(r.layers.size(), 35u);  // 5 layers x 7, classifier skipped
  const std::string out = tmp.file("q.safetensors");
  ptq::write_quantized(out, m, r, method);
  std::string got_method;
  const ptq::Model back = ptq::load_quantized(out, "", &got_method);
  EXPECT_EQ(got_method, method);
  const auto mem = m.llama.forward_seq(toks), disk = back.llama.forward_seq(toks);
  ASSERT_EQ(mem.size(), disk.size());
  EXPECT_EQ(std::memcmp(mem.data(), disk.data(), mem.size() * sizeof(float)), 0);
  EXPECT_EQ(back.llama.tok_emb, m.llama.tok_emb);
  EXPECT_EQ(back.llama.cls.w, m.llama.cls.w);
}

TEST(Quarot, GraphModelIsAnError) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  ptq::Model m = ptq::load_model(S("models/lenet5-mnist.onnx"));
  ptq::QuantizeOptions o;
  o.method = "quarot+rtn";
  o.recipe.weights = "mxfp4";
  o.calib.spec = QCAST_SOURCE_DIR "/examples/data/mnist-lenet5.yaml";
  o.calib.data_root = S("data/mnist");
  o.progress = false;
  EXPECT_THROW(ptq::quantize_model(m, o), Error);
  o.method = "quarot+nope";
  EXPECT_THROW(ptq::quantize_model(m, o), Error);
}

TEST(Quarot, CliReportAndEvalOfTheRotatedFile) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  test::TempDir tmp;
  const std::string text = "text:" + S("data/tinystories/valid-excerpt.txt");
  auto r = test::run_cli("quantize " + S("models/stories260K.bin") + " --weights int4@fp16/g32 --method quarot+rtn --calib " + text +
                         " --calib-samples 2 --calib-tokens 32 --out " + tmp.file("q.safetensors") + " --report " + tmp.file("r.json") +
                         " --eval " + text + " --eval-limit 3 --quiet");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::ifstream f(tmp.file("r.json"));
  const auto j = nlohmann::json::parse(f);
  EXPECT_EQ(j["quarot"]["residual"], "hadamard");
  EXPECT_EQ(j["quarot"]["head_hadamard"], 8);
  auto e = test::run_cli("eval " + tmp.file("q.safetensors") + " --data " + text + " --limit 3 --json");
  ASSERT_EQ(e.rc, 0) << e.err;
  const auto je = nlohmann::json::parse(e.out);
  EXPECT_EQ(je["quantize_method"], "quarot+rtn");
  EXPECT_EQ(je["perplexity"].get<double>(), j["eval"]["perplexity"].get<double>());
  // ONNX models have no residual stream to rotate: a clear error, exit code 2.
  auto g = test::run_cli("quantize " + S("models/lenet5-mnist.onnx") + " --weights mxfp4 --method quarot+rtn --calib " +
                         QCAST_SOURCE_DIR "/examples/data/mnist-lenet5.yaml --data-root " + S("data/mnist") + " --out " +
                         tmp.file("x.safetensors"));
  EXPECT_EQ(g.rc, 2);
  EXPECT_NE(g.err.find("LLaMA"), std::string::npos) << g.err;
}
