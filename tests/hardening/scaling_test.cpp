// Issue 19: linear time where it was quadratic. cast / encode / decode in the number of tensors of a
// safetensors file (the header was built with nlohmann's ordered_json, whose key lookup is linear, and
// packed tensors were found by a linear search: 80k tensors took 10 s to cast and 29 s to encode), ONNX
// loading in the node count (every value name was looked up linearly: 200k nodes took more than 20 s).
// These are functional checks at sizes where the quadratic code was slow; the timings themselves are
// measured by bench/scaling.py (speed is a benchmark's job, not a unit test's).
#include <string>

#include "qcast/error.hpp"
#include "onnx_builder.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/packed.hpp"
#include "test_support.hpp"

namespace {

void run_ok(const std::string& args) {
  auto r = qcast::test::run_cli(args);
  EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
}

}  // namespace

TEST(HardeningScaling, ManyTensorsCastEncodeAndRead) {
  qcast::test::TempDir d;
#ifdef QCAST_UNDER_ASAN
  const int n = 5000;
#else
  const int n = 60000;
#endif
  std::vector<float> vals(static_cast<std::size_t>(n) * 4);
  for (std::size_t k = 0; k < vals.size(); ++k) vals[k] = static_cast<float>(k % 17) - 8.0f;
  std::vector<qcast::NamedTensor> ts;
  ts.reserve(n);
  for (int k = 0; k < n; ++k) {
    qcast::Tensor t;
    t.dtype = qcast::DType::F32;
    t.shape = {4};
    t.data = vals.data() + 4 * k;
    ts.push_back({"layer." + std::to_string(k) + ".weight", t});
  }
  qcast::write_safetensors(d.file("many.safetensors"), ts);
  run_ok("cast " + d.file("many.safetensors") + " " + d.file("c.safetensors") + " -f int8");
  run_ok("encode " + d.file("many.safetensors") + " " + d.file("e.safetensors") + " -f int8");
  const auto st = qcast::read_safetensors(d.file("c.safetensors"));
  ASSERT_EQ(st.tensors.size(), static_cast<std::size_t>(n));
  const auto* last = st.find("layer." + std::to_string(n - 1) + ".weight");
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->f32()[3], vals[static_cast<std::size_t>(n) * 4 - 1]);  // int8 keeps these small integers
  EXPECT_EQ(st.find("layer." + std::to_string(n) + ".weight"), nullptr);
  // Reading a packed file finds each tensor's streams by name.
  EXPECT_EQ(qcast::read_packed(d.file("e.safetensors")).quantized.size(), static_cast<std::size_t>(n));
}

TEST(HardeningScaling, DuplicateNamesAreStillRefused) {
  qcast::test::TempDir d;
  float v = 1.0f;
  qcast::Tensor t;
  t.shape = {1};
  t.data = &v;
  EXPECT_THROW(qcast::write_safetensors(d.file("dup.safetensors"), {{"a", t}, {"b", t}, {"a", t}}), qcast::Error);
  EXPECT_FALSE(qcast::test::exists(d.file("dup.safetensors")));
}

TEST(HardeningScaling, LoadsLongNodeChains) {
  namespace o = qcast::test::onnx;
  // A chain of Relu nodes (bench/scaling.py times 200000 of them).
  std::vector<std::string> nodes;
#ifdef QCAST_UNDER_ASAN
  const int n = 20000;
#else
  const int n = 100000;
#endif
  nodes.reserve(n);
  for (int k = 0; k < n; ++k) nodes.push_back(o::node("Relu", {k ? "v" + std::to_string(k - 1) : "x"}, {"v" + std::to_string(k)}));
  qcast::test::TempDir d;
  o::save(d.file("chain.onnx"), o::model(nodes, {}, {o::value_info("x", {1, 4})}, {o::value_info("v" + std::to_string(n - 1), {1, 4})}));
  const auto g = qcast::nn::load_onnx(d.file("chain.onnx"));
  EXPECT_EQ(g.nodes.size(), static_cast<std::size_t>(n));
}
