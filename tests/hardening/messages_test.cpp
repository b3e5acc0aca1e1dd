// Issue 19: messages say what is wrong in the user's terms: a too-large safetensors dimension is not a
// "negative dimension", a tensor file given to a model command is named as such (not a bad llama2.c
// config), yaml-cpp's own text does not stand alone, and bytes that are not UTF-8 are escaped.
#include <fstream>
#include <string>

#include "onnx_builder.hpp"
#include "qcast/io.hpp"
#include "test_support.hpp"

using qcast::test::run_cli;

namespace {

void write_raw_safetensors(const std::string& path, const std::string& header, std::size_t data_bytes) {
  std::string h = header;
  std::ofstream f(path, std::ios::binary);
  std::uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>(n >> (8 * i)));
  f << h << std::string(data_bytes, '\0');
}

}  // namespace

TEST(HardeningMessages, HugeSafetensorsDimensionIsNamed) {
  qcast::test::TempDir d;
  write_raw_safetensors(d.file("h.safetensors"), R"({"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4);
  auto r = run_cli("stats " + d.file("h.safetensors") + " -f int8");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("4611686018427387904"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("too large"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("negative"), std::string::npos) << r.err;
}

TEST(HardeningMessages, TensorFilesGivenToModelCommandsAreNamed) {
  qcast::test::TempDir d;
  qcast::write_npy(d.file("t.npy"), qcast::Tensor::zeros_f32({64, 64}));
  qcast::write_safetensors(d.file("t.safetensors"), {{"w", qcast::Tensor::zeros_f32({64, 64})}});
  for (const char* cmd : {"inspect", "generate", "eval"}) {
    for (const char* f : {"t.npy", "t.safetensors"}) {
      std::string args = std::string(cmd) + " " + d.file(f);
      if (std::string(cmd) == "eval") args += " --data text:" + d.file("none.txt");
      auto r = run_cli(args);
      EXPECT_EQ(r.rc, 2) << args << "\n" << r.err;
      EXPECT_EQ(r.err.find("config"), std::string::npos) << args << "\n" << r.err;
      EXPECT_NE(r.err.find("tensor file"), std::string::npos) << args << "\n" << r.err;
      EXPECT_NE(r.err.find("use qcast cast / stats / encode"), std::string::npos) << args << "\n" << r.err;
    }
  }
}

TEST(HardeningMessages, YamlErrorsNameTheFileAndPlaceInUserTerms) {
  qcast::test::TempDir d;
  { std::ofstream(d.file("r.yaml")) << "weights: int8\nlayers:\n  - 5\n"; }
  auto r = run_cli("eval " + d.file("m.bin") + " --data text:x --recipe " + d.file("r.yaml"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find(d.file("r.yaml") + ":3:5"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expected a mapping"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("operator[]"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("yaml-cpp"), std::string::npos) << r.err;
  { std::ofstream(d.file("s.yaml")) << "format: idx\nimages: [a]\nlabels: b\n"; }
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::linear_classifier());
  r = run_cli("eval " + d.file("m.onnx") + " --data " + d.file("s.yaml"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find(d.file("s.yaml") + ":2:9"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("yaml-cpp"), std::string::npos) << r.err;
}

TEST(HardeningMessages, InvalidUtf8IsEscaped) {
  namespace o = qcast::test::onnx;
  qcast::test::TempDir d;
  // An unsupported operator whose name holds the bytes ff fe and a terminal escape: the error names it,
  // escaped.
  o::save(d.file("op.onnx"), o::model({o::node("Foo\xff\xfe\x1b[2J", {"x"}, {"y"})}, {}, {o::value_info("x", {1, 4})}, {o::value_info("y", {1, 4})}));
  auto r = run_cli("inspect " + d.file("op.onnx"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("Foo\\xff\\xfe\\x1b[2J"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\xff'), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  // A layer with such a name: the table escapes it, --json replaces the bytes (exit 0, valid JSON; it
  // was an exception out of the JSON writer, exit 3).
  std::vector<float> w(12, 0.5f);
  o::save(d.file("named.onnx"), o::model({o::node("Gemm", {"x", "W"}, {"y"}, {o::int_attr("transB", 1)}, "gemm\xff")},
                                         {o::float_tensor("W", {3, 4}, w)}, {o::value_info("x", {-1, 4})}, {o::value_info("y", {-1, 3})}));
  r = run_cli("inspect " + d.file("named.onnx"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("gemm\\xff"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\xff'), std::string::npos) << r.out;
  r = run_cli("inspect " + d.file("named.onnx") + " --json");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find('\xff'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gemm\xef\xbf\xbd"), std::string::npos) << r.out;  // U+FFFD
}
