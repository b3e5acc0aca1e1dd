// The format commands through the real binary: exit codes, messages, no half-written outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qcast/format.hpp"
#include "qcast/io.hpp"
#include "qcast/quantize.hpp"
#include "test_support.hpp"

using namespace qcast;

namespace {

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}
void write_all_bytes(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

class CliBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    Tensor t = Tensor::zeros_f32({4, 64});
    for (int i = 0; i < 256; ++i) t.mutable_f32()[i] = static_cast<float>(i % 17) - 8.0f;
    write_npy(d.file("good.npy"), t);
    write_safetensors(d.file("good.safetensors"), {{"w", t}});
  }
  // Runs a command that must fail with exit 2, a message containing `needle`, and no output file.
  void expect_bad(const std::string& args, const std::string& out, const std::string& needle) {
    SCOPED_TRACE(args);
    const auto r = test::run_cli(args);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(test::exists(out));
    for (const auto& e : std::filesystem::directory_iterator(d.path()))
      EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "temp file left: " << e.path();
  }
  test::TempDir d;
};

}  // namespace

TEST_F(CliBadInput, MalformedFilesAndArgumentsExitTwoWithoutOutput) {
  const std::string good = read_all(d.file("good.npy"));
  write_all_bytes(d.file("trunc.npy"), good.substr(0, good.size() - 10));
  expect_bad("cast " + d.file("trunc.npy") + " " + d.file("o.npy") + " --format mxfp4", d.file("o.npy"), "truncated");
  std::string lie = good;
  lie.replace(lie.find("(4, 64)"), 7, "(8, 64)");
  write_all_bytes(d.file("lie.npy"), lie);
  expect_bad("cast " + d.file("lie.npy") + " " + d.file("o.npy") + " --format mxfp4", d.file("o.npy"), "needs");
  std::string st = read_all(d.file("good.safetensors"));
  write_all_bytes(d.file("trunc.safetensors"), st.substr(0, st.size() - 4));
  expect_bad("cast " + d.file("trunc.safetensors") + " " + d.file("o.safetensors") + " --format mxfp4", d.file("o.safetensors"), "data section");
  std::string hlie = st;  // the 8-byte header length claims more bytes than the file holds
  hlie[0] = static_cast<char>(0xff);
  hlie[1] = static_cast<char>(0xff);
  write_all_bytes(d.file("hlie.safetensors"), hlie);
  expect_bad("cast " + d.file("hlie.safetensors") + " " + d.file("o.safetensors") + " --format mxfp4", d.file("o.safetensors"), "truncated safetensors header");
  std::string olie = st;  // a tensor's data_offsets point past the end of the data section
  const std::string offs = "\"data_offsets\":[0,1024]";
  olie.replace(olie.find(offs), offs.size(), "\"data_offsets\":[8,1032]");  // same header length
  write_all_bytes(d.file("olie.safetensors"), olie);
  expect_bad("cast " + d.file("olie.safetensors") + " " + d.file("o.safetensors") + " --format mxfp4", d.file("o.safetensors"), "outside the 1024-byte data section");
  std::string badjson = st;
  badjson[8] = 'x';
  write_all_bytes(d.file("badjson.safetensors"), badjson);
  expect_bad("cast " + d.file("badjson.safetensors") + " " + d.file("o.safetensors") + " --format mxfp4", d.file("o.safetensors"), "JSON");
  std::string dt = st;
  dt.replace(dt.find("\"F32\""), 5, "\"F33\"");
  write_all_bytes(d.file("dtype.safetensors"), dt);
  expect_bad("cast " + d.file("dtype.safetensors") + " " + d.file("o.safetensors") + " --format mxfp4", d.file("o.safetensors"), "F33");
  expect_bad("cast " + d.file("good.npy") + " " + d.file("o.npy") + " --format mxfp5", d.file("o.npy"), "mxfp5");
  expect_bad("cast " + d.file("good.npy") + " " + d.file("o.npy") + " --format mxfp4 --axis 3", d.file("o.npy"), "axis 3");
  expect_bad("cast " + d.file("good.npy") + " " + d.file("o.npy") + " --format int4@fp16/b0", d.file("o.npy"), "block size");
  expect_bad("cast " + d.file("good.npy") + " " + d.file("o.npy") + " --format mxfp4 --round sideways", d.file("o.npy"), "sideways");
  expect_bad("cast " + d.file("missing.npy") + " " + d.file("o.npy") + " --format mxfp4", d.file("o.npy"), "missing.npy");
  expect_bad("cast " + d.file("good.npy") + " " + d.file("o.txt") + " --format mxfp4", d.file("o.txt"), "o.txt");
  expect_bad("encode " + d.file("good.npy") + " " + d.file("o.npy") + " --format e2m1", d.file("o.npy"), "encode writes a .safetensors");
  expect_bad("decode " + d.file("good.safetensors") + " " + d.file("o.npy"), d.file("o.npy"), "not a qcast packed file");
  expect_bad("cast", d.file("nothing"), "IN");
}

TEST_F(CliBadInput, EncodeDecodeRoundTripEqualsCast) {
  for (const char* fmt : {"mxfp4", "nvfp4", "int4@fp16/g32/asym", "mxfp6_e3m2", "nf4"}) {
    SCOPED_TRACE(fmt);
    ASSERT_EQ(test::run_cli(std::string("cast ") + d.file("good.npy") + " " + d.file("c.npy") + " --format " + fmt).rc, 0);
    ASSERT_EQ(test::run_cli(std::string("encode ") + d.file("good.npy") + " " + d.file("e.safetensors") + " --format " + fmt).rc, 0);
    ASSERT_EQ(test::run_cli("decode " + d.file("e.safetensors") + " " + d.file("d.npy")).rc, 0);
    const Tensor c = read_npy(d.file("c.npy")), x = read_npy(d.file("d.npy"));
    ASSERT_EQ(c.shape, x.shape);
    EXPECT_EQ(std::memcmp(c.data, x.data, c.nbytes()), 0);
    const auto packed = read_safetensors(d.file("e.safetensors"));
    const Tensor* codes = packed.find("tensor.codes");
    ASSERT_NE(codes, nullptr);
    EXPECT_EQ(codes->nbytes(), 256u * Format::parse(fmt).elem().bits / 8);
  }
}

TEST(Cli, FormatsJsonListsBitsWithScaleOverhead) {
  const auto r = test::run_cli("formats --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  std::map<std::string, double> bits;
  for (auto& f : j.at("formats")) bits[f.at("name")] = f.at("bits_per_element");
  EXPECT_EQ(bits.at("mxfp4"), 4.25);
  EXPECT_EQ(bits.at("nvfp4"), 4.5);
  EXPECT_EQ(bits.at("mxfp8"), 8.25);
  EXPECT_EQ(bits.size(), named_formats().size());
}

TEST(Cli, StatsTakesSeveralFormatsAndViewsConvWeightsAsEvalDoes) {
  // A conv weight [M, C, kh, kw] = [4, 8, 3, 3]: eval / quantize / study block it along C*kh*kw (the [out, in]
  // view); stats must rank formats on the same view, and --keep-shape gives the stored-array view (blocks of kw).
  test::TempDir d;
  Tensor w = Tensor::zeros_f32({4, 8, 3, 3});
  for (int i = 0; i < 288; ++i) w.mutable_f32()[i] = std::sin(0.37f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 9));
  write_safetensors(d.file("c.safetensors"), {{"conv.weight", w}});
  auto r = test::run_cli("stats " + d.file("c.safetensors") + " -f mxfp4 -f int4/g32 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.at("results").size(), 2u);
  EXPECT_EQ(j["results"][0]["format"], Format::parse("mxfp4").name());
  EXPECT_EQ(j["results"][1]["format"], Format::parse("int4/g32").name());
  EXPECT_EQ(j["results"][0]["tensors"][0]["view"], nlohmann::json::array({4, 72}));
  // The same numbers as the error of fake-quant on the [4, 72] matrix, computed here with the library.
  for (int k = 0; k < 2; ++k) {
    const Format f = Format::parse(k == 0 ? "mxfp4" : "int4/g32");
    std::vector<float> q(288);
    fake_quant(f, w.f32(), q.data(), Shape{4, 72});
    double se = 0;
    for (int i = 0; i < 288; ++i) se += (double(q[i]) - double(w.f32()[i])) * (double(q[i]) - double(w.f32()[i]));
    EXPECT_NEAR(j["results"][k]["tensors"][0]["mse"].get<double>(), se / 288, 1e-12 * (1 + se)) << f.name();
  }
  auto raw = test::run_cli("stats " + d.file("c.safetensors") + " -f mxfp4 --keep-shape --json");
  ASSERT_EQ(raw.rc, 0) << raw.err;
  auto jr = nlohmann::json::parse(raw.out);
  EXPECT_EQ(jr["results"][0]["tensors"][0]["view"], nlohmann::json::array({4, 8, 3, 3}));
  EXPECT_NE(jr["results"][0]["tensors"][0]["mse"], j["results"][0]["tensors"][0]["mse"]);
}

// What encode writes, stats reads: a packed file is seen as its decoded values (the same numbers as stats
// of `qcast decode`'s output); it used to say that no floating-point tensor matched.
TEST(Cli, StatsReadsAPackedFileAsItsDecodedValues) {
  test::TempDir d;
  Tensor w = Tensor::zeros_f32({16, 64});
  for (int i = 0; i < 1024; ++i) w.mutable_f32()[i] = std::cos(0.11f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 7));
  Tensor b = Tensor::zeros_f32({16});
  for (int i = 0; i < 16; ++i) b.mutable_f32()[i] = 0.25f * static_cast<float>(i);
  write_safetensors(d.file("m.safetensors"), {{"fc.weight", w}, {"fc.bias", b}});
  auto e = test::run_cli("encode " + d.file("m.safetensors") + " " + d.file("p.safetensors") + " -f mxfp8 --tensors fc.weight");
  ASSERT_EQ(e.rc, 0) << e.err;
  auto dec = test::run_cli("decode " + d.file("p.safetensors") + " " + d.file("dec.safetensors"));
  ASSERT_EQ(dec.rc, 0) << dec.err;
  auto sp = test::run_cli("stats " + d.file("p.safetensors") + " -f mxfp4 -f int4/g32 --json");
  auto sd = test::run_cli("stats " + d.file("dec.safetensors") + " -f mxfp4 -f int4/g32 --json");
  ASSERT_EQ(sp.rc, 0) << sp.err;
  ASSERT_EQ(sd.rc, 0) << sd.err;
  auto jp = nlohmann::json::parse(sp.out), jd = nlohmann::json::parse(sd.out);
  EXPECT_EQ(jp["results"], jd["results"]);
  ASSERT_EQ(jp["results"][0]["tensors"].size(), 2u);  // the decoded weight and the plain bias
  EXPECT_EQ(jp["results"][0]["tensors"][0]["tensor"], "fc.weight");
  EXPECT_GT(jp["results"][0]["tensors"][0]["mse"].get<double>(), 0.0);
}

TEST(Cli, StatsReportsErrorsAndCastCopiesUnselectedTensors) {
  test::TempDir d;
  Tensor w = Tensor::zeros_f32({2, 32});
  for (int i = 0; i < 64; ++i) w.mutable_f32()[i] = 0.1f * static_cast<float>(i) - 3.0f;
  Tensor b = Tensor::zeros_f32({2});
  b.mutable_f32()[0] = 0.123456f;
  write_safetensors(d.file("m.safetensors"), {{"layer.weight", w}, {"layer.bias", b}});
  auto r = test::run_cli("stats " + d.file("m.safetensors") + " --format mxfp4 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("schema"), 2);
  ASSERT_EQ(j.at("results").size(), 1u);
  const auto& t = j.at("results")[0].at("tensors");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_GT(t[1].at("sqnr_db").get<double>(), 10.0);
  EXPECT_LT(t[1].at("sqnr_db").get<double>(), 40.0);
  r = test::run_cli("cast " + d.file("m.safetensors") + " " + d.file("o.safetensors") + " --format mxfp4 --tensors '*.weight'");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto o = read_safetensors(d.file("o.safetensors"));
  EXPECT_EQ(o.find("layer.bias")->f32()[0], 0.123456f);  // unselected: unchanged
  EXPECT_NE(std::memcmp(o.find("layer.weight")->data, w.data, w.nbytes()), 0);
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* c : {"formats", "cast", "encode", "decode", "stats", "study"}) {
    const auto r = test::run_cli(std::string(c) + " --help");
    EXPECT_EQ(r.rc, 0) << c;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << c;
  }
}

// Every command's --json data carries a schema number (checked on the commands that need no shared files).
TEST(Cli, EveryJsonOutputCarriesASchema) {
  test::TempDir d;
  Tensor t = Tensor::zeros_f32({4, 64});
  for (int i = 0; i < 256; ++i) t.mutable_f32()[i] = static_cast<float>(i % 13) - 6.0f;
  write_npy(d.file("x.npy"), t);
  const std::string arch = QCAST_SOURCE_DIR "/examples/arch/eyeriss_like.yaml";
  const std::string prob = QCAST_SOURCE_DIR "/examples/problems/conv2d.prob.yaml";
  for (const std::string& args : std::vector<std::string>{"formats --json", "stats " + d.file("x.npy") + " -f mxfp4 --json",
                                 "bench --size 64K --min-time 0.01 -f mxfp4 --op fake_quant --json",
                                 "cost --arch " + arch + " --problem " + prob + " --samples 50 --refine 5 --json"}) {
    SCOPED_TRACE(args);
    const auto r = test::run_cli(args);
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_TRUE(j.contains("schema")) << r.out.substr(0, 200);
    EXPECT_TRUE(j["schema"].is_number_integer());
  }
}
