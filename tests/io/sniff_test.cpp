// Model files recognized by content (sniff_model_file), whatever their names, and every model command's
// refusal of files it cannot take: exit 2 naming what the file is and which command takes it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "qcast/gguf.hpp"
#include "qcast/io.hpp"
#include "qcast/sniff.hpp"
#include "test_support.hpp"

using namespace qcast;
using qcast::test::run_cli;
namespace fs = std::filesystem;

namespace {

std::string S(const std::string& p) { return test::shared_dir() + "/" + p; }

// Copies `src` to dir/name (so the name says nothing true about the content).
std::string copy_as(const test::TempDir& d, const std::string& src, const std::string& name) {
  fs::copy_file(src, d.file(name), fs::copy_options::overwrite_existing);
  return d.file(name);
}

}  // namespace

TEST(Sniff, KindsByContentNotName) {
  test::TempDir d;
  EXPECT_EQ(sniff_model_file(d.file("nothing")), FileKind::Missing);
  { std::ofstream(d.file("text.onnx")) << "hello world, not a model\n"; }
  EXPECT_EQ(sniff_model_file(d.file("text.onnx")), FileKind::Unknown);
  { std::ofstream(d.file("empty.bin")); }
  EXPECT_EQ(sniff_model_file(d.file("empty.bin")), FileKind::Unknown);
  { std::ofstream(d.file("layers.bin")) << R"({"layers": [{"name": "fc", "op": "Gemm"}]})"; }
  EXPECT_EQ(sniff_model_file(d.file("layers.bin")), FileKind::LayersJson);
  fs::create_directory(d.file("hf"));
  EXPECT_EQ(sniff_model_file(d.file("hf")), FileKind::Unknown);  // a directory without config.json
  { std::ofstream(d.file("hf/config.json")) << R"({"model_type": "llama", "hidden_size": 64})"; }
  EXPECT_EQ(sniff_model_file(d.file("hf")), FileKind::HfDir);
  EXPECT_EQ(sniff_model_file(d.file("hf/config.json")), FileKind::HfDir);
  Tensor t = Tensor::zeros_f32({2, 32});
  write_npy(d.file("x.safetensors"), t);
  EXPECT_EQ(sniff_model_file(d.file("x.safetensors")), FileKind::Npy);
  write_safetensors(d.file("x.npy"), {{"w", t}});
  EXPECT_EQ(sniff_model_file(d.file("x.npy")), FileKind::Safetensors);
  gguf::File g;
  g.metadata.emplace_back("general.architecture", gguf::Value::of("llama"));
  gguf::write(d.file("g.onnx"), g);
  EXPECT_EQ(sniff_model_file(d.file("g.onnx")), FileKind::Gguf);
  // A truncated llama2.c header is still llama2.c (its loader says what is missing).
  {
    const std::int32_t hdr[7] = {64, 172, 5, 8, 4, 512, 512};
    std::ofstream(d.file("trunc.gguf"), std::ios::binary).write(reinterpret_cast<const char*>(hdr), sizeof hdr);
  }
  EXPECT_EQ(sniff_model_file(d.file("trunc.gguf")), FileKind::Llama2c);
  write_npy(d.file("real.npy"), t);
  auto enc = run_cli("encode " + d.file("real.npy") + " " + d.file("p.safetensors") + " --format mxfp4");
  ASSERT_EQ(enc.rc, 0) << enc.err;
  EXPECT_EQ(sniff_model_file(copy_as(d, d.file("p.safetensors"), "p.bin")), FileKind::QcastPacked);
  auto dec = run_cli("eval " + d.file("p.bin") + " --data text:x");
  EXPECT_EQ(dec.rc, 2);
  EXPECT_NE(dec.err.find("qcast packed tensor file (qcast encode output): use qcast decode"), std::string::npos) << dec.err;

  if (test::shared_dir().empty()) GTEST_SKIP() << "needs ../shared for the model files";
  EXPECT_EQ(sniff_model_file(copy_as(d, S("models/lenet5-mnist.onnx"), "lenet.bin")), FileKind::Onnx);
  EXPECT_EQ(sniff_model_file(copy_as(d, S("models/resnet20-cifar10.onnx"), "r20.gguf")), FileKind::Onnx);
  EXPECT_EQ(sniff_model_file(copy_as(d, S("models/stories260K.bin"), "stories.onnx")), FileKind::Llama2c);
  EXPECT_EQ(sniff_model_file(S("models/tok512.bin")), FileKind::Tokenizer);
  EXPECT_EQ(sniff_model_file(S("models/lenet5-mnist.safetensors")), FileKind::Safetensors);
  EXPECT_EQ(sniff_model_file(S("models/lenet5-mnist.ref-input.npy")), FileKind::Npy);
}

TEST(Sniff, ModelCommandsRefuseWhatTheyCannotTake) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  test::TempDir d;
  const std::string npy = S("models/lenet5-mnist.ref-input.npy"), onnx = S("models/lenet5-mnist.onnx"),
                    llama = S("models/stories260K.bin"), tok = S("models/tok512.bin"), st = S("models/lenet5-mnist.safetensors");
  { std::ofstream(d.file("layers.json")) << R"({"layers": []})"; }
  { std::ofstream(d.file("junk.bin")) << "junk junk junk junk junk junk junk"; }
  struct Case {
    std::string cmd, needle1, needle2;
  };
  const std::string text = " --data text:" + S("data/tinystories/valid-excerpt.txt");
  for (const Case& c : {
           Case{"eval " + npy + text, ".npy tensor file: use qcast cast / stats", "eval takes ONNX, llama2.c, HF and GGUF"},
           Case{"eval " + st + text, "safetensors tensor file", "eval takes"},
           Case{"eval " + tok + text, "llama2.c tokenizer: pass it as --tokenizer", "eval takes"},
           Case{"eval " + d.file("layers.json") + text, "layer-shape JSON: use qcast cost --model", "eval takes"},
           Case{"eval " + d.file("junk.bin") + text, "file of unknown kind", "eval takes"},
           Case{"generate " + onnx, "ONNX model: use qcast inspect / eval / infer / quantize", "generate takes llama2.c, HF and GGUF"},
           Case{"generate " + npy, ".npy tensor file", "generate takes"},
           Case{"infer " + llama + " " + npy, "llama2.c checkpoint: use qcast inspect / eval / generate / quantize", "infer takes ONNX"},
           Case{"inspect " + npy, ".npy tensor file", "inspect takes ONNX, llama2.c, HF and GGUF"},
           Case{"inspect " + d.file("nope"), "no such file or directory", ""},
           Case{"quantize " + tok + " --weights mxfp4 --calib text:x --out " + d.file("o.safetensors"), "llama2.c tokenizer", "quantize takes"},
           Case{"cost --arch " QCAST_SOURCE_DIR "/examples/arch/eyeriss_like.yaml --model " + npy, ".npy tensor file",
                "cost --model takes ONNX, llama2.c, HF and GGUF models and the layer JSON"},
       }) {
    SCOPED_TRACE(c.cmd);
    auto r = run_cli(c.cmd);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find(c.needle1), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.needle2), std::string::npos) << r.err;
  }
  // Renamed files work: an ONNX model named .bin for inspect / infer, a llama2.c checkpoint named .onnx.
  const std::string lenet_bin = copy_as(d, onnx, "lenet.bin");
  EXPECT_EQ(run_cli("inspect " + lenet_bin + " --json").rc, 0);
  EXPECT_EQ(run_cli("infer " + lenet_bin + " " + npy).rc, 0);
  const std::string stories_onnx = copy_as(d, llama, "stories.onnx");
  auto g = run_cli("generate " + stories_onnx + " --tokenizer " + tok + " --steps 8 --temperature 0");
  EXPECT_EQ(g.rc, 0) << g.err;
}
