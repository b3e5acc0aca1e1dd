// Model-level quantization (qcast::ptq::quantize_model, `qcast quantize`): packed output round-trips
// into `qcast eval` bit for bit, and GPTQ is not worse than RTN on lenet5 and stories260K.
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

#include "qcast/nn/dataset.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/ptq/model.hpp"
#include "test_support.hpp"

using namespace qcast;
using qcast::test::run_cli;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }
const std::string kMnist = QCAST_SOURCE_DIR "/examples/data/mnist-lenet5.yaml";

ptq::QuantizeOptions lenet_opts(const std::string& method, const std::string& fmt) {
  ptq::QuantizeOptions o;
  o.method = method;
  o.recipe.weights = fmt;
  o.calib.spec = kMnist;
  o.calib.data_root = S("data/mnist");
  o.calib.samples = 256;
  o.calib.offset = 5000;  // calibrate on test images 5000.., evaluate on 0..
  o.threads = 2;
  o.progress = false;
  return o;
}

/// Logits of the first `n` preprocessed MNIST test images.
std::vector<float> lenet_logits(const nn::Graph& g, std::int64_t n) {
  nn::ImageSet s = nn::load_images(nn::parse_dataset_spec(kMnist, S("data/mnist")), 32, 32);
  Shape xs = s.sample_shape;
  xs.insert(xs.begin(), n);
  nn::Value x = nn::Value::floats(xs);
  std::copy(s.data.begin(), s.data.begin() + n * s.sample_numel(), x.f->begin());
  const nn::Value y = g.run({x}, 2)[0];
  return std::vector<float>(y.fp(), y.fp() + y.numel());
}

double lenet_accuracy(const nn::Graph& g, std::int64_t n) {
  nn::ImageSet s = nn::load_images(nn::parse_dataset_spec(kMnist, S("data/mnist")), 32, 32);
  Shape xs = s.sample_shape;
  xs.insert(xs.begin(), n);
  nn::Value x = nn::Value::floats(xs);
  std::copy(s.data.begin(), s.data.begin() + n * s.sample_numel(), x.f->begin());
  const nn::Value y = g.run({x}, 2)[0];
  const std::int64_t C = y.shape[1];
  std::int64_t ok = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* l = y.fp() + i * C;
    if (std::max_element(l, l + C) - l == s.labels[i]) ++ok;
  }
  return static_cast<double>(ok) / static_cast<double>(n);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(QuantizeModel, LenetPackedFileEqualsFakeQuantAndInMemoryBitForBit) {
  QCAST_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte.gz");
  test::TempDir tmp;
  for (const std::string fmt : {"int3@fp16/g32", "mxfp4"}) {
    for (const std::string method : {"rtn", "gptq"}) {
      ptq::Model m = ptq::load_model(S("models/lenet5-mnist.onnx"));
      auto r = ptq::quantize_model(m, lenet_opts(method, fmt));
      ASSERT_EQ(r.layers.size(), 5u);
      const std::string out = tmp.file(method + ".safetensors");
      ptq::write_quantized(out, m, r, method);
      ASSERT_TRUE(ptq::is_quantized_model(out));
      const ptq::Model back = ptq::load_quantized(out);
      const auto in_memory = lenet_logits(m.graph, 300);
      EXPECT_TRUE(same_bits(lenet_logits(back.graph, 300), in_memory)) << fmt << " " << method;
      if (method == "rtn") {
        // The fake-quant recipe (qcast eval --weights F) gives the same logits.
        nn::Graph g = nn::load_onnx(S("models/lenet5-mnist.onnx"));
        nn::Recipe rec;
        rec.weights = fmt;
        nn::apply_recipe(g, rec, 2);
        EXPECT_TRUE(same_bits(lenet_logits(g, 300), in_memory)) << fmt;
      }
    }
  }
}

TEST(QuantizeModel, LenetGptqNotWorseThanRtn) {
  QCAST_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte.gz");
  for (const std::string fmt : {"int3@fp16/g32", "mxfp4"}) {
    ptq::Model a = ptq::load_model(S("models/lenet5-mnist.onnx"));
    ptq::Model b = ptq::load_model(S("models/lenet5-mnist.onnx"));
    auto ra = ptq::quantize_model(a, lenet_opts("rtn", fmt));
    auto rb = ptq::quantize_model(b, lenet_opts("gptq", fmt));
    const double acc_rtn = lenet_accuracy(a.graph, 5000), acc_gptq = lenet_accuracy(b.graph, 5000);
    // 5000 samples: one standard error of an accuracy near 0.98 is ~0.002.
    EXPECT_GE(acc_gptq, acc_rtn - 0.004) << fmt << ": rtn " << acc_rtn << " gptq " << acc_gptq;
    double ea = 0, eb = 0;
    for (auto& L : ra.layers) ea += L.rel_error;
    for (auto& L : rb.layers) eb += L.rel_error;
    EXPECT_LT(eb, ea) << fmt;
  }
}

TEST(QuantizeModel, StoriesGptqPerplexityNotAboveRtn) {
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  auto stories = nn::load_stories(S("data/tinystories/valid-excerpt.txt"));
  ASSERT_GT(stories.size(), 60u);
  const std::vector<std::string> evalset(stories.begin(), stories.begin() + 20);
  for (const std::string fmt : {"int4@fp16/g32", "mxfp4"}) {
    double ppl[2];
    int k = 0;
    for (const std::string method : {"rtn", "gptq"}) {
      ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
      ptq::QuantizeOptions o;
      o.method = method;
      o.recipe.weights = fmt;
      o.calib.spec = "text:" + S("data/tinystories/valid-excerpt.txt");
      o.calib.offset = 40;  // calibration stories disjoint from the evaluated ones
      o.calib.samples = 8;
      o.calib.max_tokens = 128;
      o.threads = 2;
      o.progress = false;
      ptq::quantize_model(m, o);
      ppl[k++] = nn::perplexity(m.llama, tok, evalset, 2).perplexity();
    }
    EXPECT_LE(ppl[1], ppl[0]) << fmt << ": rtn " << ppl[0] << " gptq " << ppl[1];
  }
}

TEST(QuantizeModel, StoriesPackedFileEqualsFakeQuantBitForBit) {
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  test::TempDir tmp;
  nn::Tokenizer tok = nn::Tokenizer::load(S("models/tok512.bin"), 512);
  auto stories = nn::load_stories(S("data/tinystories/valid-excerpt.txt"));
  auto toks = tok.encode(stories[0], true, false);
  if (toks.size() > 128) toks.resize(128);
  for (const std::string method : {"rtn", "rotate+gptq", "lowrank"}) {
    ptq::Model m = ptq::load_model(S("models/stories260K.bin"));
    ptq::QuantizeOptions o;
    o.method = method;
    o.recipe.weights = "mxfp4";
    o.recipe.acts = "mxfp8";
    o.calib.spec = "text:" + S("data/tinystories/valid-excerpt.txt");
    o.calib.offset = 40;
    o.calib.samples = 4;
    o.progress = false;
    auto r = ptq::quantize_model(m, o);
    const std::string out = tmp.file("q.safetensors");
    ptq::write_quantized(out, m, r, method);
    const ptq::Model back = ptq::load_quantized(out);
    const auto mem = m.llama.forward_seq(toks);
    EXPECT_TRUE(same_bits(back.llama.forward_seq(toks), mem)) << method;
    if (method == "rtn") {
      nn::Llama f = nn::load_llama(S("models/stories260K.bin"));
      nn::Recipe rec;
      rec.weights = "mxfp4";
      rec.acts = "mxfp8";
      f.apply_recipe(rec);
      EXPECT_TRUE(same_bits(f.forward_seq(toks), mem));
    }
  }
}

TEST(CliQuantize, ReportAndEvalOfThePackedFile) {
  QCAST_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte.gz");
  test::TempDir tmp;
  const std::string data = kMnist + " --data-root " + S("data/mnist");
  auto r = run_cli("quantize " + S("models/lenet5-mnist.onnx") + " --weights mxfp4 --method gptq --calib " + data +
                   " --calib-samples 128 --calib-offset 5000 --out " + tmp.file("q.safetensors") + " --report " +
                   tmp.file("r.json") + " --eval " + kMnist + " --eval-limit 500 --quiet");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::ifstream f(tmp.file("r.json"));
  auto j = nlohmann::json::parse(f);
  EXPECT_EQ(j["method"], "gptq");
  EXPECT_EQ(j["recipe"]["weights"], "mxfp4");
  EXPECT_EQ(j["layers"].size(), 5u);
  EXPECT_GT(j["timings"]["total_s"].get<double>(), 0.0);
  ASSERT_TRUE(j.contains("eval"));
  EXPECT_EQ(j["eval"]["samples"], 500);
  auto e = run_cli("eval " + tmp.file("q.safetensors") + " --data " + data + " --limit 500 --json");
  ASSERT_EQ(e.rc, 0) << e.err;
  auto je = nlohmann::json::parse(e.out);
  EXPECT_EQ(je["correct"], j["eval"]["correct"]);
  EXPECT_EQ(je["nll"].get<double>(), j["eval"]["nll"].get<double>());
  EXPECT_EQ(je["quantize_method"], "gptq");
  // Bad method, bad output extension: exit code 2.
  EXPECT_EQ(run_cli("quantize " + S("models/lenet5-mnist.onnx") + " --weights mxfp4 --method nope --calib " + data + " --out " +
                    tmp.file("x.safetensors")).rc, 2);
  EXPECT_EQ(run_cli("quantize " + S("models/lenet5-mnist.onnx") + " --weights mxfp4 --calib " + data + " --out " +
                    tmp.file("x.bin")).rc, 2);
}
