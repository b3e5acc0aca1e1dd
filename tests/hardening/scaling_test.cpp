// Issue 19: linear time where it was quadratic. cast / encode / decode in the number of tensors of a
// safetensors file (the header was built with nlohmann's ordered_json, whose key lookup is linear, and
// packed tensors were found by a linear search: 80k tensors took 10 s to cast and 29 s to encode), ONNX
// loading in the node count (every value name was looked up linearly: 200k nodes took more than 20 s).
#include <chrono>
#include <string>

#include "qcast/error.hpp"
#include "onnx_builder.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/packed.hpp"
#include "test_support.hpp"

namespace {

double seconds_of(const std::string& args) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = qcast::test::run_cli(args);
  EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(HardeningScaling, ManyTensorsCastEncodeAndReadInLinearTime) {
  qcast::test::TempDir d;
  const int n = 60000;  // quadratically: ~5.6 s to cast, ~16 s to encode
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
  // Bounds for a loaded 2-core machine; the quadratic versions took 10 s and 29 s for 80k tensors.
  EXPECT_LT(seconds_of("cast " + d.file("many.safetensors") + " " + d.file("c.safetensors") + " -f int8"), 4.0);
  EXPECT_LT(seconds_of("encode " + d.file("many.safetensors") + " " + d.file("e.safetensors") + " -f int8"), 8.0);
  const auto st = qcast::read_safetensors(d.file("c.safetensors"));
  ASSERT_EQ(st.tensors.size(), static_cast<std::size_t>(n));
  ASSERT_NE(st.find("layer.59999.weight"), nullptr);
  EXPECT_EQ(st.find("layer.60000.weight"), nullptr);
  // Reading a packed file finds each tensor's streams by name: through the index, not a linear search.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(qcast::read_packed(d.file("e.safetensors")).quantized.size(), static_cast<std::size_t>(n));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
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

TEST(HardeningScaling, LoadingIsLinearInTheNodeCount) {
  namespace o = qcast::test::onnx;
  // A chain of 200000 Relu nodes: more than 20 s with the quadratic value lookup, well under a second
  // with the index (the bound leaves a wide margin for a loaded machine).
  std::vector<std::string> nodes;
  const int n = 200000;
  nodes.reserve(n);
  for (int k = 0; k < n; ++k) nodes.push_back(o::node("Relu", {k ? "v" + std::to_string(k - 1) : "x"}, {"v" + std::to_string(k)}));
  qcast::test::TempDir d;
  o::save(d.file("chain.onnx"), o::model(nodes, {}, {o::value_info("x", {1, 4})}, {o::value_info("v" + std::to_string(n - 1), {1, 4})}));
  const auto t0 = std::chrono::steady_clock::now();
  const auto g = qcast::nn::load_onnx(d.file("chain.onnx"));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(g.nodes.size(), static_cast<std::size_t>(n));
  EXPECT_LT(s, 10.0) << "loading " << n << " nodes took " << s << " s";
}
