// GGUF export of quantized LLaMA models (ptq::llama_gguf, `qcast quantize MODEL.bin --out model.gguf`):
// the file, parsed back with the GGUF reader, holds llama.cpp's architecture metadata, the llama2.c
// tokenizer, and tensors that dequantize to exactly qcast's quantized weights (up to the sign of zero).
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "qcast/nn/llama.hpp"
#include "qcast/ptq/gguf_llama.hpp"
#include "qcast/quantize.hpp"
#include "test_support.hpp"

using namespace qcast;
namespace gg = qcast::ptq::gguf;
using qcast::test::run_cli;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }

ptq::QuantizeOptions stories_opts(const std::string& method, const std::string& fmt) {
  ptq::QuantizeOptions o;
  o.method = method;
  o.recipe.weights = fmt;
  o.calib.spec = "text:" + S("data/tinystories/valid-excerpt.txt");
  o.calib.offset = 40;
  o.calib.samples = 2;
  o.calib.max_tokens = 64;
  o.progress = false;
  return o;
}

std::uint32_t u32(const gg::File& f, const std::string& k) {
  const gg::Value* v = f.find(k);
  if (!v) ADD_FAILURE() << "missing " << k;
  return v ? std::get<std::uint32_t>(v->scalar) : 0;
}

/// Bit for bit, except that -0 and +0 are equal: ggml's integer codes and its MXFP4 value table (int8,
/// doubled e2m1) have no negative zero, so a weight that rounds to -0 in qcast reads back as +0.
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(a[i] == 0.0f && b[i] == 0.0f)) {
      ADD_FAILURE() << "first difference at " << i << ": " << a[i] << " vs " << b[i];
      return false;
    }
  return true;
}

}  // namespace

TEST(GgufLlama, StoriesTensorsMetadataTokenizerRoundTrip) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  struct Case {
    const char *fmt, *method;
    gg::GgmlType type;
  };
  for (const Case& c : {Case{"int8@fp16/b32", "rtn", gg::GgmlType::Q8_0}, Case{"int4@fp16/g32", "rtn", gg::GgmlType::Q4_0},
                        Case{"mxfp4", "rtn", gg::GgmlType::MXFP4}, Case{"int4@fp16/g32", "gptq", gg::GgmlType::Q4_0}}) {
    SCOPED_TRACE(std::string(c.fmt) + " " + c.method);
    ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
    const auto r = ptq::quantize_model(m, stories_opts(c.method, c.fmt));
    std::vector<std::string> notes;
    const std::string path = tmp.file("m.gguf");
    gg::write(path, ptq::llama_gguf(m, r, c.method, tok, &notes));
    const gg::File f = gg::read(path);

    // llama.cpp "llama" architecture metadata of stories260K (dim 64, ffn 172, 5 layers, 8 / 4 heads, ctx 512).
    EXPECT_EQ(std::get<std::string>(f.find("general.architecture")->scalar), "llama");
    EXPECT_EQ(u32(f, "llama.context_length"), 512u);
    EXPECT_EQ(u32(f, "llama.embedding_length"), 64u);
    EXPECT_EQ(u32(f, "llama.block_count"), 5u);
    EXPECT_EQ(u32(f, "llama.feed_forward_length"), 172u);
    EXPECT_EQ(u32(f, "llama.attention.head_count"), 8u);
    EXPECT_EQ(u32(f, "llama.attention.head_count_kv"), 4u);
    EXPECT_EQ(u32(f, "llama.rope.dimension_count"), 8u);
    EXPECT_EQ(std::get<float>(f.find("llama.attention.layer_norm_rms_epsilon")->scalar), m.llama.cfg.norm_eps);
    EXPECT_EQ(std::get<std::string>(f.find("qcast.method")->scalar), c.method);

    // Tokenizer: the llama2.c vocabulary with SentencePiece's U+2581 for spaces and llama.cpp token types.
    EXPECT_EQ(std::get<std::string>(f.find("tokenizer.ggml.model")->scalar), "llama");
    const auto& toks = f.find("tokenizer.ggml.tokens")->array;
    const auto& scores = f.find("tokenizer.ggml.scores")->array;
    const auto& types = f.find("tokenizer.ggml.token_type")->array;
    ASSERT_EQ(toks.size(), 512u);
    ASSERT_EQ(scores.size(), 512u);
    ASSERT_EQ(types.size(), 512u);
    EXPECT_EQ(std::get<std::string>(toks[0]), "<unk>");
    EXPECT_EQ(std::get<std::string>(toks[1]), "<s>");
    EXPECT_EQ(std::get<std::string>(toks[2]), "</s>");
    EXPECT_EQ(std::get<std::int32_t>(types[0]), 2);
    EXPECT_EQ(std::get<std::int32_t>(types[1]), 3);
    EXPECT_EQ(std::get<std::string>(toks[3]), "<0x00>");
    EXPECT_EQ(std::get<std::int32_t>(types[3]), 6);
    int spaced = 0;
    for (std::size_t i = 3; i < 512; ++i) {
      std::string want;
      for (char ch : tok.vocab[i]) want += ch == ' ' ? std::string("\xe2\x96\x81") : std::string(1, ch);
      EXPECT_EQ(std::get<std::string>(toks[i]), want) << i;
      EXPECT_EQ(std::get<float>(scores[i]), tok.scores[i]) << i;
      spaced += tok.vocab[i].find(' ') != std::string::npos;
    }
    EXPECT_GT(spaced, 10);
    EXPECT_EQ(u32(f, "tokenizer.ggml.bos_token_id"), 1u);
    EXPECT_EQ(u32(f, "tokenizer.ggml.eos_token_id"), 2u);

    // Tensors: names, shapes, types, and values equal to the weights qcast computes with (same_values).
    std::map<std::string, const gg::TensorData*> t;
    for (const auto& x : f.tensors) t[x.name] = &x;
    ASSERT_EQ(f.tensors.size(), 1u + 5u * 9u + 2u);
    const nn::Llama& L = m.llama;
    nn::Llama fq = nn::load_llama(S("models/stories260K.bin"));  // the plain fake-quant of the same weights
    nn::Recipe rec;
    rec.weights = c.fmt;
    fq.apply_recipe(rec);
    auto check = [&](const std::string& name, const nn::Linear& lin, const nn::Linear& ref) {
      ASSERT_TRUE(t.count(name)) << name;
      const gg::TensorData& x = *t[name];
      EXPECT_EQ(x.ne, (std::vector<std::uint64_t>{static_cast<std::uint64_t>(lin.in), static_cast<std::uint64_t>(lin.out)})) << name;
      EXPECT_EQ(x.type, lin.in % 32 == 0 ? c.type : gg::GgmlType::F32) << name;
      const auto back = gg::dequantize(x);
      EXPECT_TRUE(same_values(back, lin.w)) << name << ": GGUF differs from the quantized model";
      if (std::string(c.method) == "rtn") {
        EXPECT_TRUE(same_values(back, ref.w)) << name << ": GGUF differs from fake_quant";
      }
    };
    EXPECT_TRUE(same_values(gg::dequantize(*t.at("token_embd.weight")), L.tok_emb));
    EXPECT_TRUE(same_values(gg::dequantize(*t.at("output_norm.weight")), L.rms_final));
    for (int i = 0; i < 5; ++i) {
      const auto& b = L.layers[static_cast<std::size_t>(i)];
      const auto& rb = fq.layers[static_cast<std::size_t>(i)];
      const std::string p = "blk." + std::to_string(i) + ".";
      EXPECT_TRUE(same_values(gg::dequantize(*t.at(p + "attn_norm.weight")), b.rms_att));
      EXPECT_TRUE(same_values(gg::dequantize(*t.at(p + "ffn_norm.weight")), b.rms_ffn));
      check(p + "attn_q.weight", b.wq, rb.wq);
      check(p + "attn_k.weight", b.wk, rb.wk);
      check(p + "attn_v.weight", b.wv, rb.wv);
      check(p + "attn_output.weight", b.wo, rb.wo);
      check(p + "ffn_gate.weight", b.w1, rb.w1);
      check(p + "ffn_down.weight", b.w2, rb.w2);  // 172 inputs: F32 of the quantized values
      check(p + "ffn_up.weight", b.w3, rb.w3);
    }
    check("output.weight", L.cls, fq.cls);
    EXPECT_EQ(notes.size(), 5u);  // the five ffn_down layers
  }
}

TEST(GgufLlama, RefusesWhatGgmlCannotHold) {
  EXPECT_NO_THROW(ptq::check_gguf_format("mxfp4"));
  EXPECT_NO_THROW(ptq::check_gguf_format("int8@fp16/b32"));
  EXPECT_NO_THROW(ptq::check_gguf_format(""));
  for (const char* bad : {"nvfp4", "int4@fp16/g128", "int4@fp16/g32/asym", "mxfp8", "int3@fp16/g32"}) {
    try {
      ptq::check_gguf_format(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("Q4_0"), std::string::npos) << e.what();  // the message lists the mapping
    }
  }
}

TEST(CliQuantize, GgufOutputForLlama) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  test::TempDir tmp;
  const std::string base = "quantize " + S("models/stories260K.bin") + " --tokenizer " + S("models/tok512.bin") +
                           " --calib text:" + S("data/tinystories/valid-excerpt.txt") +
                           " --calib-samples 2 --calib-tokens 64 --quiet --method gptq";
  auto r = run_cli(base + " --weights mxfp4 --out " + tmp.file("m.gguf"));
  ASSERT_EQ(r.rc, 0) << r.err;
  const gg::File f = gg::read(tmp.file("m.gguf"));
  EXPECT_EQ(std::get<std::string>(f.find("general.architecture")->scalar), "llama");
  int mx = 0;
  for (const auto& x : f.tensors) mx += x.type == gg::GgmlType::MXFP4;
  EXPECT_EQ(mx, 5 * 6 + 1);  // every linear layer but ffn_down (172 inputs)
  // No ggml type for nvfp4: exit 2, the message lists the mapping, nothing written.
  auto bad = run_cli(base + " --weights nvfp4 --out " + tmp.file("n.gguf"));
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("MXFP4"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("n.gguf")));
  // Methods whose weights are not one ggml tensor, and ONNX models: exit 2.
  EXPECT_EQ(run_cli(base + " --weights mxfp4 --method lowrank --out " + tmp.file("l.gguf")).rc, 2);
  EXPECT_EQ(run_cli("quantize " + S("models/lenet5-mnist.onnx") + " --weights mxfp4 --calib " QCAST_SOURCE_DIR
                    "/examples/data/mnist-lenet5.yaml --data-root " + S("data/mnist") + " --out " + tmp.file("x.gguf")).rc, 2);
}
