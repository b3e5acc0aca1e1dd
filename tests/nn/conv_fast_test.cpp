// The executor's oneDNN path for Conv nodes (src/nn/conv_fast.cpp) against the plain operators
// (im2col + sgemm / direct), on a graph that has every case it handles: Relu and residual Add + Relu
// fused, grouped / strided / dilated / asymmetrically padded convolutions, a blocked value read by a
// plain operator and by a graph output, a Conv with an activation format, and a Conv oneDNN does not take.
#include <cmath>
#include <cstring>
#include <random>

#include "qcast/kernels/dnnl.hpp"
#include "qcast/nn/act_quant.hpp"
#include "qcast/nn/graph.hpp"
#include "test_support.hpp"

using namespace qcast;
using namespace qcast::nn;

namespace {

Attr ai(std::int64_t v) { Attr a; a.kind = Attr::Kind::Int; a.i = v; return a; }
Attr ais(std::vector<std::int64_t> v) { Attr a; a.kind = Attr::Kind::Ints; a.ints = std::move(v); return a; }

Value random_floats(Shape s, std::mt19937& rng, float scale = 1.0f) {
  Value v = Value::floats(std::move(s));
  std::normal_distribution<float> d(0.0f, scale);
  for (float& x : *v.f) x = d(rng);
  return v;
}

struct Builder {
  Graph g;
  std::mt19937 rng{7};
  int add(const std::string& op, std::vector<int> in, std::map<std::string, Attr> attrs = {}) {
    Node n;
    n.name = op + std::to_string(g.nodes.size());
    n.op = op;
    n.inputs = std::move(in);
    n.outputs.push_back(g.value_id(n.name + "_out"));
    n.attrs = std::move(attrs);
    g.nodes.push_back(n);
    return n.outputs[0];
  }
  int constant(Shape s, float scale) {
    const int id = g.value_id("c" + std::to_string(g.constants.size()));
    g.constants[id] = random_floats(std::move(s), rng, scale);
    return id;
  }
  int conv(int x, std::int64_t cin, std::int64_t cout, std::int64_t k, std::map<std::string, Attr> attrs = {}, bool bias = true,
           std::int64_t group = 1) {
    attrs["group"] = ai(group);
    std::vector<int> in{x, constant({cout, cin / group, k, k}, 1.0f / std::sqrt(static_cast<float>(cin / group * k * k)))};
    if (bias) in.push_back(constant({cout}, 0.1f));
    return add("Conv", in, attrs);
  }
};

// x [2, 16, 9, 9] -> every case of the oneDNN path; outputs: a blocked value read directly, a plain
// operator's result, the last Conv, three poolings.
Graph test_graph(bool act_quant) {
  Builder b;
  const int x = b.g.value_id("x");
  b.g.inputs.push_back({x, {-1, 16, 9, 9}});
  const int a = b.add("Relu", {b.conv(x, 16, 16, 3, {{"pads", ais({1, 1, 1, 1})}})});           // Conv + Relu
  const int r = b.add("Relu", {b.add("Add", {b.conv(a, 16, 16, 3, {{"pads", ais({1, 1, 1, 1})}}, false), a})});  // residual
  const int pw = b.conv(r, 16, 16, 1);
  // Fake-quant of a blocked (NHWC) input in place, without a transpose.
  if (act_quant) b.g.nodes.back().quant.act = make_act_quant(Format::parse("mxfp8"), "");
  const int r2 = b.add("Relu", {b.add("Add", {x, pw})});                                      // addend first, plain input
  const int gconv = b.conv(r2, 16, 32, 3, {{"strides", ais({2, 2})}, {"dilations", ais({2, 2})}, {"pads", ais({2, 1, 1, 2})}}, true, 4);
  const int dw = b.conv(gconv, 32, 32, 3, {{"pads", ais({1, 1, 1, 1})}}, true, 32);            // depthwise
  const int pooled = b.add("GlobalAveragePool", {dw});                                          // plain reader of a blocked value
  const int q = b.conv(dw, 32, 8, 1);
  if (act_quant) b.g.nodes.back().quant.act = make_act_quant(Format::parse("mxfp8"), "");
  const int wide = b.conv(q, 8, 8, 5, {{"pads", ais({2, 2, 2, 2})}});
  // The last reader of its input: quantized in place.
  if (act_quant) b.g.nodes.back().quant.act = make_act_quant(Format::parse("int8@fp32/tensor"), "");
  // Pooling of blocked tensors: ceil_mode max with asymmetric pads, averages without and with the padding.
  const int mp = b.add("MaxPool", {a}, {{"kernel_shape", ais({3, 3})}, {"strides", ais({2, 2})}, {"pads", ais({1, 1, 0, 0})}, {"ceil_mode", ai(1)}});
  const int ap = b.add("AveragePool", {r}, {{"kernel_shape", ais({2, 2})}, {"strides", ais({2, 2})}, {"pads", ais({0, 0, 1, 1})}, {"ceil_mode", ai(1)}});
  const int ap2 = b.add("AveragePool", {r2}, {{"kernel_shape", ais({3, 3})}, {"pads", ais({1, 1, 1, 1})}, {"count_include_pad", ai(1)}});
  b.g.outputs = {r, pooled, wide, mp, ap, ap2};
  b.g.source = "conv_fast_test";
  b.g.finalize();
  return std::move(b.g);
}

float max_abs(const Value& v) {
  float m = 0;
  for (std::int64_t k = 0; k < v.numel(); ++k) m = std::max(m, std::fabs(v.fp()[k]));
  return m;
}

}  // namespace

TEST(ConvFast, EqualsThePlainOperators) {
  if (!kern::dnnl::available()) GTEST_SKIP() << "oneDNN is not available (libdnnl.so.2 not installed, QCAST_DNNL=0, or a sanitizer build): every Conv runs on the plain operators";
  for (bool aq : {false, true}) {
    const Graph g = test_graph(aq);
    std::mt19937 rng(3);
    const Value x = random_floats({2, 16, 9, 9}, rng);
    set_fast_convs(false);
    const auto want = g.run({x}, 2);
    set_fast_convs(true, 0);  // every Conv through oneDNN, however small
    for (int threads : {1, 2, 3}) {
      const std::int64_t before = fast_conv_runs();
      const auto got = g.run({x}, threads);
      EXPECT_EQ(fast_conv_runs() - before, 10) << "every Conv and pooling of the graph runs through oneDNN";
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t o = 0; o < got.size(); ++o) {
        ASSERT_EQ(got[o].shape, want[o].shape) << "output " << o;
        const float tol = 2e-6f * std::max(1.0f, max_abs(want[o]));
        for (std::int64_t k = 0; k < want[o].numel(); ++k)
          ASSERT_NEAR(got[o].fp()[k], want[o].fp()[k], tol) << "act quant " << aq << ", output " << o << ", element " << k << ", threads " << threads;
      }
    }
  }
  set_fast_convs(true);
}

TEST(ConvFast, SmallConvolutionsStayOnQcastsOperators) {
  if (!kern::dnnl::available()) GTEST_SKIP() << "oneDNN is not available (not installed, QCAST_DNNL=0, or a sanitizer build)";
  const Graph g = test_graph(false);
  std::mt19937 rng(4);
  set_fast_convs(true);
  // Batch 1: every Conv of the graph is below 2^20 MACs; batch 64: the 16-channel 3x3 ones are above.
  std::int64_t before = fast_conv_runs();
  g.run({random_floats({1, 16, 9, 9}, rng)}, 2);
  EXPECT_EQ(fast_conv_runs() - before, 0);
  before = fast_conv_runs();
  g.run({random_floats({64, 16, 9, 9}, rng)}, 2);
  EXPECT_GT(fast_conv_runs() - before, 0);
}

TEST(ConvFast, SameBitsForAnyThreadCountAndRun) {
  if (!kern::dnnl::available()) GTEST_SKIP() << "oneDNN is not available (not installed, QCAST_DNNL=0, or a sanitizer build)";
  const Graph g = test_graph(true);
  std::mt19937 rng(5);
  const Value x = random_floats({5, 16, 9, 9}, rng);
  set_fast_convs(true, 0);
  const auto ref = g.run({x}, 1);
  for (int threads : {2, 3, 1}) {
    const auto got = g.run({x}, threads);
    for (std::size_t o = 0; o < got.size(); ++o)
      ASSERT_EQ(0, std::memcmp(got[o].fp(), ref[o].fp(), static_cast<std::size_t>(ref[o].numel()) * sizeof(float))) << "output " << o << ", threads " << threads;
  }
  set_fast_convs(true);
}

TEST(ConvFast, RequantizedWeightsAreNotServedStale) {
  if (!kern::dnnl::available()) GTEST_SKIP() << "oneDNN is not available (not installed, QCAST_DNNL=0, or a sanitizer build)";
  Graph g = test_graph(false);
  std::mt19937 rng(9);
  const Value x = random_floats({2, 16, 9, 9}, rng);
  set_fast_convs(true, 0);
  const auto before = g.run({x}, 2);
  // New weights for every convolution (a copy of the graph shares the cache; both must stay right).
  Graph copy = g;
  for (auto& [id, v] : copy.constants) {
    auto buf = std::make_shared<FloatBuf>(*v.f);
    for (float& w : *buf) w = -w;
    v.f = buf;
  }
  const auto negated = copy.run({x}, 2);
  set_fast_convs(false);
  const auto want = copy.run({x}, 2);
  set_fast_convs(true, 0);
  EXPECT_EQ(0, std::memcmp(g.run({x}, 2)[0].fp(), before[0].fp(), before[0].numel() * sizeof(float)));
  for (std::int64_t k = 0; k < want[2].numel(); ++k) ASSERT_NEAR(negated[2].fp()[k], want[2].fp()[k], 2e-6f * std::max(1.0f, max_abs(want[2])));
  set_fast_convs(true);
}
