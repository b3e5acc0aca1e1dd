// LLaMA models read from GGUF (nn::load_gguf_llama, Tokenizer::from_gguf) are the inverse of qcast's GGUF
// writer (ptq::llama_gguf): an F32 file gives exactly the fp32 model's logits, a Q8_0 / Q4_0 / MXFP4 file
// exactly the weights and perplexity of qcast's fake-quant of the same recipe, and the embedded vocabulary
// encodes text exactly as llama2.c's tok512.bin. The CLI (eval / generate / inspect) takes the .gguf.
#include <utility>
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/gguf.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/model.hpp"
#include "qcast/ptq/gguf_llama.hpp"
#include "qcast/ptq/model.hpp"
#include "test_support.hpp"

using namespace qcast;
using qcast::test::run_cli;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Equal values, -0 == +0 (ggml's integer codes have no negative zero).
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i]) && std::memcmp(&a[i], &b[i], 4) != 0) return false;
  return true;
}

std::vector<std::string> stories(std::size_t n) {
  auto s = nn::load_stories(S("data/tinystories/valid-excerpt.txt"));
  if (s.size() > n) s.resize(n);
  return s;
}

}  // namespace

TEST(LlamaGguf, F32FileGivesExactlyTheFp32Logits) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  test::TempDir tmp;
  const nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
  ptq::QuantizeResult none;  // no quantized layer: every tensor F32
  gguf::write(tmp.file("f32.gguf"), ptq::llama_gguf(m, none, "none", tok));
  const nn::Llama g = nn::load_gguf_llama(tmp.file("f32.gguf"));
  const nn::Llama& ref = m.llama;
  EXPECT_EQ(g.cfg.dim, ref.cfg.dim);
  EXPECT_EQ(g.cfg.hidden_dim, ref.cfg.hidden_dim);
  EXPECT_EQ(g.cfg.n_layers, ref.cfg.n_layers);
  EXPECT_EQ(g.cfg.n_heads, ref.cfg.n_heads);
  EXPECT_EQ(g.cfg.n_kv_heads, ref.cfg.n_kv_heads);
  EXPECT_EQ(g.cfg.vocab_size, ref.cfg.vocab_size);
  EXPECT_EQ(g.cfg.seq_len, ref.cfg.seq_len);
  EXPECT_EQ(g.cfg.norm_eps, ref.cfg.norm_eps);
  EXPECT_EQ(g.cfg.rope_theta, ref.cfg.rope_theta);
  EXPECT_FALSE(g.cfg.rope_half);
  EXPECT_EQ(g.layer_names(), ref.layer_names());
  const std::vector<int> toks = tok.encode("Once upon a time, there was a little cat named Tom.", true, false);
  ASSERT_GT(toks.size(), 8u);
  EXPECT_TRUE(same_bits(g.forward_seq(toks), ref.forward_seq(toks)));
  auto sg = g.new_state(), sr = ref.new_state();
  for (int pos = 0; pos < static_cast<int>(toks.size()); ++pos) {
    const float* a = g.forward(sg, toks[static_cast<std::size_t>(pos)], pos);
    const float* b = ref.forward(sr, toks[static_cast<std::size_t>(pos)], pos);
    ASSERT_EQ(0, std::memcmp(a, b, sizeof(float) * static_cast<std::size_t>(ref.cfg.vocab_size))) << pos;
  }
}

TEST(LlamaGguf, QuantizedFilesReadBackToTheFakeQuantModel) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  const auto texts = stories(6);
  for (const char* fmt : {"int8@fp16/b32", "int4@fp16/g32", "mxfp4"}) {
    SCOPED_TRACE(fmt);
    ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
    ptq::QuantizeOptions o;
    o.method = "rtn";
    o.recipe.weights = fmt;
    o.calib.spec = "text:" + S("data/tinystories/valid-excerpt.txt");
    o.calib.samples = 1;
    o.calib.max_tokens = 16;
    o.progress = false;
    const auto r = ptq::quantize_model(m, o);
    gguf::write(tmp.file("q.gguf"), ptq::llama_gguf(m, r, "rtn", tok));
    const nn::Llama g = nn::load_gguf_llama(tmp.file("q.gguf"));
    nn::Llama fq = nn::load_llama(S("models/stories260K.bin"));
    nn::Recipe rec;
    rec.weights = fmt;
    fq.apply_recipe(rec);
    const auto gl = nn::linears(std::as_const(g)), fl = nn::linears(std::as_const(fq));
    ASSERT_EQ(gl.size(), fl.size());
    for (std::size_t i = 0; i < gl.size(); ++i) EXPECT_TRUE(same_values(gl[i]->w, fl[i]->w)) << fl[i]->name;
    EXPECT_TRUE(same_bits(g.tok_emb, fq.tok_emb));
    // Same perplexity, with the GGUF's own vocabulary on one side and tok512.bin on the other.
    const nn::Tokenizer gt = nn::Tokenizer::from_gguf(tmp.file("q.gguf"), 512);
    const auto pg = nn::perplexity(g, gt, texts, 1), pf = nn::perplexity(fq, tok, texts, 1);
    EXPECT_EQ(pg.tokens, pf.tokens);
    EXPECT_EQ(pg.nll, pf.nll);
  }
}

TEST(LlamaGguf, EmbeddedVocabularyEncodesLikeTok512) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
  gguf::write(tmp.file("f.gguf"), ptq::llama_gguf(m, ptq::QuantizeResult{}, "none", tok));
  const nn::Tokenizer g = nn::Tokenizer::from_gguf(tmp.file("f.gguf"), 512);
  EXPECT_EQ(g.bos_id, 1);
  EXPECT_EQ(g.eos_id, 2);
  int n = 0;
  for (const auto& s : stories(40)) {
    const auto a = g.encode(s, true, true), b = tok.encode(s, true, true);
    EXPECT_EQ(a, b) << s.substr(0, 60);
    for (std::size_t i = 1; i < a.size(); ++i) {
      if (a[i] > 2) {
        EXPECT_EQ(g.decode(a[i - 1], a[i]), tok.decode(a[i - 1], a[i]));
      }
    }
    n += static_cast<int>(a.size());
  }
  EXPECT_GT(n, 1000);
  // Bytes outside the vocabulary go through the BYTE tokens (<0xHH>), as llama2.c's byte + 3.
  const std::string odd = "caf\xc3\xa9 \xe2\x82\xac \x01";
  EXPECT_EQ(g.encode(odd, true, false), tok.encode(odd, true, false));
  EXPECT_THROW(nn::Tokenizer::from_gguf(tmp.file("f.gguf"), 511), Error);
}

TEST(LlamaGguf, RefusesWhatItCannotRun) {
  test::TempDir tmp;
  auto base = [] {
    gguf::File f;
    f.metadata.emplace_back("general.architecture", gguf::Value::of("llama"));
    const std::initializer_list<std::pair<const char*, std::uint32_t>> dims = {
        {"llama.embedding_length", 64u}, {"llama.feed_forward_length", 96u}, {"llama.block_count", 1u},
        {"llama.attention.head_count", 4u}, {"llama.context_length", 32u}};
    for (auto [k, v] : dims)
      f.metadata.emplace_back(k, gguf::Value::of(std::uint32_t{v}));
    std::vector<float> z(64 * 40, 0.0f);
    f.tensors.push_back(gguf::f32_tensor("token_embd.weight", z.data(), {40, 64}));
    return f;
  };
  auto expect = [&](const gguf::File& f, const std::string& needle) {
    gguf::write(tmp.file("x.gguf"), f);
    try {
      nn::load_gguf_llama(tmp.file("x.gguf"));
      ADD_FAILURE() << "loaded (expected " << needle << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  {
    auto f = base();
    f.metadata[0].second = gguf::Value::of("qwen2");
    expect(f, "architecture 'qwen2'");
  }
  {
    auto f = base();
    f.metadata.emplace_back("llama.rope.scaling.type", gguf::Value::of("yarn"));
    expect(f, "RoPE scaling 'yarn'");
  }
  {
    auto f = base();
    f.metadata.emplace_back("llama.rope.dimension_count", gguf::Value::of(std::uint32_t{8}));
    expect(f, "partial rotary");
  }
  expect(base(), "blk.0.attn_norm.weight' is missing");
  {
    auto f = base();
    f.metadata.erase(f.metadata.begin() + 1);
    expect(f, "llama.embedding_length' is missing");
  }
  {  // A type qcast cannot decode, named in the error.
    auto f = base();
    f.tensors[0] = {"token_embd.weight", {64, 40}, gguf::GgmlType::Q8_1, std::vector<std::uint8_t>(40 * 2 * 36, 0)};
    std::vector<float> one(64, 1.0f);
    f.tensors.push_back(gguf::f32_tensor("blk.0.attn_norm.weight", one.data(), {64}));
    expect(f, "Q8_1 is not supported");
  }
}

TEST(LlamaGguf, CliEvalGenerateInspectTakeGguf) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const std::string model = S("models/stories260K.bin"), data = " --data text:" + S("data/tinystories/valid-excerpt.txt") + " --limit 8";
  for (const char* fmt : {"int8@fp16/b32", "int4@fp16/g32"}) {
    SCOPED_TRACE(fmt);
    // The GGUF file is named .bin on purpose: commands recognize it by content.
    const std::string out = tmp.file(std::string("q") + (fmt[3] == '8' ? "8" : "4") + ".bin.gguf");
    auto q = run_cli("quantize " + model + " --weights " + fmt + " --method rtn --calib text:" + S("data/tinystories/valid-excerpt.txt") +
                     " --calib-samples 1 --calib-tokens 16 --quiet --out " + out);
    ASSERT_EQ(q.rc, 0) << q.err;
    const std::string renamed = tmp.file("model.bin");
    ASSERT_EQ(std::rename(out.c_str(), renamed.c_str()), 0);
    auto a = run_cli("eval " + renamed + data + " --json");
    auto b = run_cli("eval " + model + " --tokenizer " + S("models/tok512.bin") + " --weights " + fmt + data + " --json");
    ASSERT_EQ(a.rc, 0) << a.err;
    ASSERT_EQ(b.rc, 0) << b.err;
    const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
    EXPECT_EQ(ja["tokens"], jb["tokens"]);
    EXPECT_EQ(ja["total_nll"].get<double>(), jb["total_nll"].get<double>());
    EXPECT_EQ(ja["perplexity"].get<double>(), jb["perplexity"].get<double>());
    auto ga = run_cli("generate " + renamed + " --prompt 'Lily had a' --steps 40 --temperature 0 --json");
    auto gb = run_cli("generate " + model + " --weights " + fmt + " --prompt 'Lily had a' --steps 40 --temperature 0 --json");
    ASSERT_EQ(ga.rc, 0) << ga.err;
    ASSERT_EQ(gb.rc, 0) << gb.err;
    EXPECT_EQ(nlohmann::json::parse(ga.out)["text"], nlohmann::json::parse(gb.out)["text"]);
    auto in = run_cli("inspect " + renamed + " --json");
    ASSERT_EQ(in.rc, 0) << in.err;
    const auto ji = nlohmann::json::parse(in.out);
    EXPECT_EQ(ji["kind"], "llama");
    EXPECT_EQ(ji["config"]["dim"], 64);
    EXPECT_EQ(ji["config"]["vocab_size"], 512);
    EXPECT_EQ(ji["layers"].size(), 36u);
    // 6 linear layers per block and the classifier in the ggml type; ffn_down (172 inputs), norms, embedding F32.
    EXPECT_EQ(ji["gguf"]["tensor_types"][fmt[3] == '8' ? "Q8_0" : "Q4_0"], 31);
    EXPECT_EQ(ji["gguf"]["tensor_types"]["F32"], 1 + 5 * 3 + 1);
  }
}

TEST(LlamaGguf, RequantizingAGgufKeepsItsBlocks) {
  // quantize taking a .gguf: for Q8_0 and Q4_0, qcast's RTN re-derives exactly the scales and codes the file
  // holds (the block maximum decodes to 127 d / 7 d, so amax / 127 or amax / 7 gives d back), so the second
  // file's tensors are byte for byte the first's. MXFP4 too, because -0 (a small negative weight) is written as
  // code 0, as ggml writes and decodes it. llama.cpp's searched types (IQ4_NL here; the k-quants on a 256-wide
  // model in tests/cli/gguf_requantize.sh) are not idempotent: rtn keeps the file's blocks instead.
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const std::string calib = " --method rtn --calib text:" + S("data/tinystories/valid-excerpt.txt") + " --calib-samples 1 --calib-tokens 16 --quiet";
  for (const char* fmt : {"int8@fp16/b32", "int4@fp16/g32", "mxfp4", "iq4_nl", "q2_k"}) {
    SCOPED_TRACE(fmt);
    auto a = run_cli("quantize " + S("models/stories260K.bin") + " --weights " + fmt + calib + " --out " + tmp.file("a.gguf"));
    ASSERT_EQ(a.rc, 0) << a.err;
    auto b = run_cli("quantize " + tmp.file("a.gguf") + " --weights " + fmt + calib + " --out " + tmp.file("b.gguf"));
    ASSERT_EQ(b.rc, 0) << b.err;
    const gguf::Reader ra = gguf::Reader::open(tmp.file("a.gguf")), rb = gguf::Reader::open(tmp.file("b.gguf"));
    ASSERT_EQ(ra.tensors().size(), rb.tensors().size());
    for (const auto& ta : ra.tensors()) {
      const gguf::TensorInfo* tb = rb.tensor(ta.name);
      ASSERT_NE(tb, nullptr) << ta.name;
      EXPECT_EQ(ta.type, tb->type) << ta.name;
      ASSERT_EQ(ta.nbytes, tb->nbytes) << ta.name;
      EXPECT_EQ(0, std::memcmp(ta.data, tb->data, ta.nbytes)) << ta.name;
      if (ta.type == gguf::GgmlType::MXFP4) {
        for (std::size_t k = 0; k < ta.nbytes; ++k) {
          if (k % 17 == 0) continue;  // the block's e8m0 scale
          ASSERT_TRUE((ta.data[k] & 0x0F) != 8 && (ta.data[k] >> 4) != 8) << ta.name << " writes -0 at byte " << k;
        }
      }
      EXPECT_TRUE(same_values(ra.dequantize(ta), rb.dequantize(*tb))) << ta.name;
    }
    EXPECT_EQ(*ra.find("tokenizer.ggml.tokens"), *rb.find("tokenizer.ggml.tokens"));
    EXPECT_EQ(*ra.find("tokenizer.ggml.token_type"), *rb.find("tokenizer.ggml.token_type"));
  }
}
