// Operators not exercised by the shared models, on small hand-checked inputs, plus a repository-only
// ONNX model (the fuzz seed) so the executor is tested without ../shared.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "qcast/error.hpp"
#include "qcast/nn/graph.hpp"
#include "qcast/nn/onnx.hpp"
#include "test_support.hpp"

using namespace qcast;
using namespace qcast::nn;

namespace {

Value F(Shape s, std::vector<float> v) {
  Value x = Value::floats(std::move(s));
  x.f->assign(v.begin(), v.end());
  return x;
}
Value I(Shape s, std::vector<std::int64_t> v) {
  Value x = Value::ints(std::move(s));
  *x.i = std::move(v);
  return x;
}

// One-node graph: inputs "x" (fed) and named constants; returns the output.
Value run1(const std::string& op, const Value& x, std::vector<std::pair<std::string, Value>> consts = {},
           std::map<std::string, Attr> attrs = {}, int opset = 13) {
  Graph g;
  g.source = "test";
  g.opset = opset;
  const int xi = g.value_id("x");
  Shape xs = x.shape;
  g.inputs.push_back({xi, xs});
  Node n;
  n.name = "n";
  n.op = op;
  n.inputs.push_back(xi);
  for (auto& [name, v] : consts) {
    if (name.empty()) { n.inputs.push_back(-1); continue; }
    const int id = g.value_id(name);
    g.constants[id] = v;
    n.inputs.push_back(id);
  }
  n.outputs.push_back(g.value_id("y"));
  n.attrs = std::move(attrs);
  g.nodes.push_back(n);
  g.outputs.push_back(g.value_id("y"));
  g.finalize();
  return g.run({x})[0];
}

Attr ai(std::int64_t v) { Attr a; a.kind = Attr::Kind::Int; a.i = v; a.f = static_cast<float>(v); return a; }
Attr af(float v) { Attr a; a.kind = Attr::Kind::Float; a.f = v; return a; }
Attr ais(std::vector<std::int64_t> v) { Attr a; a.kind = Attr::Kind::Ints; a.ints = std::move(v); return a; }

void expect_near(const Value& y, std::vector<float> want, float tol = 1e-6f) {
  ASSERT_EQ(static_cast<std::size_t>(y.numel()), want.size());
  for (std::size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(y.fp()[k], want[k], tol) << k;
}

}  // namespace

TEST(Ops, ElementwiseAndActivations) {
  Value x = F({2, 2}, {-1, 0, 1, 2});
  expect_near(run1("Sigmoid", x), {1 / (1 + std::exp(1.0f)), 0.5f, 1 / (1 + std::exp(-1.0f)), 1 / (1 + std::exp(-2.0f))});
  expect_near(run1("Tanh", x), {std::tanh(-1.0f), 0, std::tanh(1.0f), std::tanh(2.0f)});
  expect_near(run1("Erf", x), {std::erf(-1.0f), 0, std::erf(1.0f), std::erf(2.0f)});
  expect_near(run1("Gelu", x), {-0.15865525f, 0, 0.84134475f, 1.9544997f}, 1e-6f);
  expect_near(run1("Identity", x), {-1, 0, 1, 2});
  // Broadcasting: [2,2] op [2] (row vector).
  Value r = F({2}, {10, 20});
  expect_near(run1("Add", x, {{"b", r}}), {9, 20, 11, 22});
  expect_near(run1("Sub", x, {{"b", r}}), {-11, -20, -9, -18});
  expect_near(run1("Mul", x, {{"b", F({2, 1}, {2, 3})}}), {-2, 0, 3, 6});
  expect_near(run1("Div", x, {{"b", F({}, {2})}}), {-0.5f, 0, 0.5f, 1});
  EXPECT_THROW(run1("Add", x, {{"b", F({3}, {1, 2, 3})}}), Error);
}

TEST(Ops, MatMulSoftmaxLayerNormBatchNorm) {
  Value a = F({2, 3}, {1, 2, 3, 4, 5, 6});
  expect_near(run1("MatMul", a, {{"w", F({3, 2}, {1, 0, 0, 1, 1, 1})}}), {4, 5, 10, 11});
  // Batched MatMul with a broadcast weight.
  Value b3 = F({2, 1, 3}, {1, 2, 3, 4, 5, 6});
  expect_near(run1("MatMul", b3, {{"w", F({3, 1}, {1, 1, 1})}}), {6, 15});
  Value s = run1("Softmax", F({1, 3}, {1, 2, 3}));
  const float z = std::exp(1.0f) + std::exp(2.0f) + std::exp(3.0f);
  expect_near(s, {std::exp(1.0f) / z, std::exp(2.0f) / z, std::exp(3.0f) / z});
  Value ln = run1("LayerNormalization", F({1, 4}, {1, 2, 3, 4}), {{"g", F({4}, {1, 1, 1, 1})}, {"b", F({4}, {0, 0, 0, 1})}},
                  {{"epsilon", af(0.0f)}});
  const float sd = std::sqrt(1.25f);
  expect_near(ln, {-1.5f / sd, -0.5f / sd, 0.5f / sd, 1.5f / sd + 1}, 1e-5f);
  Value bn = run1("BatchNormalization", F({1, 2, 1, 1}, {1, 2}),
                  {{"s", F({2}, {2, 1})}, {"b", F({2}, {0, 1})}, {"m", F({2}, {1, 0})}, {"v", F({2}, {4, 1})}}, {{"epsilon", af(0.0f)}});
  expect_near(bn, {0, 3});
}

TEST(Ops, PoolingAndShapes) {
  Value x = F({1, 1, 2, 2}, {1, 2, 3, 4});
  expect_near(run1("AveragePool", x, {}, {{"kernel_shape", ais({2, 2})}}), {2.5f});
  expect_near(run1("MaxPool", x, {}, {{"kernel_shape", ais({2, 2})}}), {4});
  // Padded average pool, count_include_pad = 0: corners average the valid pixels only.
  Value ap = run1("AveragePool", x, {}, {{"kernel_shape", ais({2, 2})}, {"pads", ais({1, 1, 1, 1})}, {"strides", ais({2, 2})}});
  expect_near(ap, {1, 2, 3, 4});
  Value sq = run1("Squeeze", x, {{"axes", I({2}, {0, 1})}});
  EXPECT_EQ(sq.shape, (Shape{2, 2}));
  Value us = run1("Unsqueeze", F({3}, {1, 2, 3}), {{"axes", I({1}, {0})}});
  EXPECT_EQ(us.shape, (Shape{1, 3}));
  Value us11 = run1("Unsqueeze", F({3}, {1, 2, 3}), {}, {{"axes", ais({1})}}, 11);
  EXPECT_EQ(us11.shape, (Shape{3, 1}));
  Value t = run1("Transpose", F({2, 3}, {1, 2, 3, 4, 5, 6}), {}, {{"perm", ais({1, 0})}});
  EXPECT_EQ(t.shape, (Shape{3, 2}));
  expect_near(t, {1, 4, 2, 5, 3, 6});
  Value sl = run1("Slice", F({5}, {0, 1, 2, 3, 4}), {{"s", I({1}, {-1})}, {"e", I({1}, {INT64_MIN + 1})}, {"a", I({1}, {0})}, {"st", I({1}, {-2})}});
  expect_near(sl, {4, 2, 0});
  Value pd = run1("Pad", F({1, 2}, {1, 2}), {{"p", I({4}, {0, 1, 0, 2})}, {"v", F({}, {9})}});
  expect_near(pd, {9, 1, 2, 9, 9});
  Value pr = run1("Pad", F({1, 3}, {1, 2, 3}), {{"p", I({4}, {0, 2, 0, 2})}}, {{"mode", [] { Attr a; a.kind = Attr::Kind::String; a.s = "reflect"; return a; }()}});
  expect_near(pr, {3, 2, 1, 2, 3, 2, 1});
  Value rs = run1("Reshape", F({2, 3}, {1, 2, 3, 4, 5, 6}), {{"s", I({2}, {3, -1})}});
  EXPECT_EQ(rs.shape, (Shape{3, 2}));
  EXPECT_THROW(run1("Reshape", F({2, 3}, {1, 2, 3, 4, 5, 6}), {{"s", I({2}, {4, -1})}}), Error);
  Value cc = run1("Concat", F({1, 2}, {1, 2}), {{"b", F({1, 1}, {3})}}, {{"axis", ai(1)}});
  expect_near(cc, {1, 2, 3});
}

TEST(Ops, GroupedStridedDilatedConv) {
  // Depthwise 3x3 conv, stride 2, dilation 1, pad 1 on a 4x4 two-channel image vs a direct loop.
  Value x = Value::floats({1, 2, 4, 4});
  for (int k = 0; k < 32; ++k) (*x.f)[k] = static_cast<float>(k % 7) - 3;
  Value w = Value::floats({2, 1, 3, 3});
  for (int k = 0; k < 18; ++k) (*w.f)[k] = static_cast<float>(k % 5) * 0.25f - 0.5f;
  for (int dil : {1, 2}) {
    Value y = run1("Conv", x, {{"w", w}}, {{"group", ai(2)}, {"strides", ais({2, 2})}, {"pads", ais({1, 1, 1, 1})}, {"dilations", ais({dil, dil})}});
    const int P = (4 + 2 - (dil * 2 + 1)) / 2 + 1;
    ASSERT_EQ(y.shape, (Shape{1, 2, P, P}));
    for (int c = 0; c < 2; ++c)
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < P; ++q) {
          float acc = 0;
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
              const int h = p * 2 - 1 + i * dil, ww = q * 2 - 1 + j * dil;
              if (h >= 0 && h < 4 && ww >= 0 && ww < 4) acc += (*x.f)[(c * 4 + h) * 4 + ww] * (*w.f)[c * 9 + i * 3 + j];
            }
          EXPECT_NEAR(y.fp()[(c * P + p) * P + q], acc, 1e-5f);
        }
  }
}

TEST(Ops, RepositorySeedModelRuns) {
  Graph g = load_onnx(QCAST_SOURCE_DIR "/fuzz/seeds/onnx/tiny.onnx");
  Value x = Value::floats({3, 1, 4, 4}, 1.0f);
  auto y = g.run({x});
  ASSERT_EQ(y[0].shape, (Shape{3, 3}));
  EXPECT_TRUE(std::isfinite(y[0].fp()[0]));
  EXPECT_THROW(g.run({Value::floats({3, 2, 4, 4})}), Error);  // wrong channel count
  EXPECT_THROW(g.run({}), Error);
}

TEST(Ops, SymbolicInputDimsBindFromTheActualInput) {
  // x [?, ?] -> Reshape(x, Concat([-1], Unsqueeze(Gather(Shape(x), 1)))): the target shape is computed from
  // the input's shape, so it is known during shape inference only once the symbolic dims are bound.
  Graph g;
  g.source = "dyn";
  const int x = g.value_id("x");
  g.inputs.push_back({x, {-1, -1}});
  auto node = [&](const std::string& op, std::vector<int> in, const std::string& out, std::map<std::string, Attr> at = {}) {
    Node n;
    n.name = out;
    n.op = op;
    n.inputs = std::move(in);
    n.outputs = {g.value_id(out)};
    n.attrs = std::move(at);
    g.nodes.push_back(n);
    return n.outputs[0];
  };
  auto cst = [&](const std::string& name, Value v) { const int id = g.value_id(name); g.constants[id] = std::move(v); return id; };
  const int s = node("Shape", {x}, "s");
  const int d = node("Gather", {s, cst("one", I({}, {1}))}, "d");
  const int du = node("Unsqueeze", {d, cst("ax0", I({1}, {0}))}, "du");
  const int shp = node("Concat", {cst("m1", I({1}, {-1})), du}, "shp", {{"axis", ai(0)}});
  const int y = node("Reshape", {x, shp}, "y");
  const int z = node("ReduceMean", {y}, "z", {{"axes", ais({-1})}, {"keepdims", ai(0)}});
  g.outputs = {z};
  g.opset = 13;
  g.finalize();
  EXPECT_EQ(g.infer_shapes(std::vector<Shape>{{3, 8}})[y], (Shape{3, 8}));
  EXPECT_EQ(g.infer_shapes(std::vector<Shape>{{3, 8}})[z], (Shape{3}));
  EXPECT_THROW(g.infer_shapes(std::vector<Shape>{{3, 8, 1}}), Error);
  auto out = g.run({F({2, 3}, {1, 2, 3, 4, 5, 9})});
  expect_near(out[0], {2, 6});
}

TEST(Ops, MobileNetActivationsResizeAndConvTranspose) {
  Value x = F({4}, {-4, -1, 0, 2});
  expect_near(run1("HardSigmoid", x), {0, 0.3f, 0.5f, 0.9f});
  expect_near(run1("HardSwish", x), {0, -1.0f / 3, 0, 2 * 5.0f / 6});
  expect_near(run1("Elu", x), {std::expm1(-4.0f), std::expm1(-1.0f), 0, 2});
  expect_near(run1("PRelu", x, {{"s", F({1}, {0.5f})}}), {-2, -0.5f, 0, 2});
  // Mish (opset 18, newer than Debian's ONNX node tests): x tanh(ln(1 + e^x)), values from PyTorch's mish.
  expect_near(run1("Mish", F({3}, {-1, 1, 2})), {-0.30340144f, 0.86509836f, 1.94395900f}, 2e-6f);
  // Nearest 2x upsampling (asymmetric coordinates, floor), as in YOLO / U-Net exports.
  Value r = run1("Resize", F({1, 1, 1, 2}, {1, 2}), {{"roi", F({0}, {})}, {"sc", F({4}, {1, 1, 2, 2})}},
                 {{"coordinate_transformation_mode", [] { Attr a; a.kind = Attr::Kind::String; a.s = "asymmetric"; return a; }()},
                  {"nearest_mode", [] { Attr a; a.kind = Attr::Kind::String; a.s = "floor"; return a; }()}});
  EXPECT_EQ(r.shape, (Shape{1, 1, 2, 4}));
  expect_near(r, {1, 1, 2, 2, 1, 1, 2, 2});
  // Stride-2 2x2 transposed convolution: each input pixel writes its own 2x2 block of the output.
  Value ct = run1("ConvTranspose", F({1, 1, 1, 2}, {1, 2}), {{"w", F({1, 1, 2, 2}, {1, 2, 3, 4})}}, {{"strides", ais({2, 2})}});
  EXPECT_EQ(ct.shape, (Shape{1, 1, 2, 4}));
  expect_near(ct, {1, 2, 2, 4, 3, 4, 6, 8});
}

TEST(Ops, OneDimensionalConvAndItsLayerInfo) {
  // Conv1d: x [1, 2, 5], w [3, 2, 3], stride 2, pads [1, 1] vs a direct loop; layer_info reports it as
  // a 2-D problem with H = P = R = 1.
  Value x = Value::floats({1, 2, 5});
  for (int k = 0; k < 10; ++k) (*x.f)[k] = static_cast<float>(k % 4) - 1.5f;
  Value w = Value::floats({3, 2, 3});
  for (int k = 0; k < 18; ++k) (*w.f)[k] = static_cast<float>(k % 5) * 0.5f - 1;
  Graph g;
  g.source = "conv1d";
  const int xi = g.value_id("x"), wi = g.value_id("w"), yi = g.value_id("y");
  g.inputs.push_back({xi, {-1, 2, 5}});
  g.constants[wi] = w;
  Node n;
  n.name = "c";
  n.op = "Conv";
  n.inputs = {xi, wi};
  n.outputs = {yi};
  n.attrs = {{"strides", ais({2})}, {"pads", ais({1, 1})}};
  g.nodes.push_back(n);
  g.outputs = {yi};
  g.finalize();
  Value y = g.run({x})[0];
  ASSERT_EQ(y.shape, (Shape{1, 3, 3}));
  for (int m = 0; m < 3; ++m)
    for (int q = 0; q < 3; ++q) {
      float acc = 0;
      for (int c = 0; c < 2; ++c)
        for (int j = 0; j < 3; ++j) {
          const int i = q * 2 - 1 + j;
          if (i >= 0 && i < 5) acc += (*x.f)[c * 5 + i] * (*w.f)[(m * 2 + c) * 3 + j];
        }
      EXPECT_NEAR(y.fp()[m * 3 + q], acc, 1e-5f);
    }
  auto L = layer_info(g, 4);
  ASSERT_EQ(L.size(), 1u);
  EXPECT_EQ(L[0].N, 4);
  EXPECT_EQ(L[0].H, 1);
  EXPECT_EQ(L[0].Q, 3);
  EXPECT_EQ(L[0].S, 3);
  EXPECT_EQ(L[0].macs, 4 * 3 * 3 * 2 * 3);
}

// QuantizeLinear: round half to even of x / scale, plus the zero point, saturated to the output type that the
// importer records from the zero point's element type (kQuantizeRange); NaN gives the zero point. The round
// trip through DequantizeLinear is (code - zero) * scale.
TEST(Ops, QuantizeLinearRoundsHalfEvenAndSaturatesToItsType) {
  Attr s8;
  s8.kind = Attr::Kind::Ints;
  s8.ints = {-128, 127};
  Attr u4 = s8;
  u4.ints = {0, 15};
  const Value x = F({8}, {0.5f, 1.5f, 2.5f, -2.5f, 1000.0f, -1000.0f, NAN, INFINITY});
  const Value q = run1("QuantizeLinear", x, {{"s", F({}, {1.0f})}, {"z", I({}, {0})}}, {{kQuantizeRange, s8}});
  ASSERT_TRUE(q.is_int);
  EXPECT_EQ(std::vector<std::int64_t>(q.ip(), q.ip() + 8), (std::vector<std::int64_t>{0, 2, 2, -2, 127, -128, 0, 127}));
  const Value u = run1("QuantizeLinear", x, {{"s", F({}, {0.5f})}, {"z", I({}, {3})}}, {{kQuantizeRange, u4}});
  EXPECT_EQ(std::vector<std::int64_t>(u.ip(), u.ip() + 8), (std::vector<std::int64_t>{4, 6, 8, 0, 15, 0, 3, 15}));
  // Per axis: one scale and zero point per channel of axis 1.
  const Value pa = run1("QuantizeLinear", F({1, 2, 2}, {1, 2, 3, 4}), {{"s", F({2}, {1.0f, 2.0f})}, {"z", I({2}, {0, 10})}},
                        {{kQuantizeRange, s8}, {"axis", ai(1)}});
  EXPECT_EQ(std::vector<std::int64_t>(pa.ip(), pa.ip() + 4), (std::vector<std::int64_t>{1, 2, 12, 12}));
  // Without the recorded range (a graph not from the importer) it is an error, not a guess.
  EXPECT_THROW(run1("QuantizeLinear", x, {{"s", F({}, {1.0f})}}), Error);
}

TEST(Ops, BadOperandsOfNewOperatorsAreErrors) {
  Value x = F({1, 1, 2, 2}, {1, 2, 3, 4});
  EXPECT_THROW(run1("Tile", x, {{"r", I({4}, {1, 1, INT64_MAX / 2, 3})}}), Error);
  EXPECT_THROW(run1("Tile", x, {{"r", I({2}, {1, 1})}}), Error);
  EXPECT_THROW(run1("Resize", x, {{"roi", F({0}, {})}, {"sc", F({4}, {1, 1, 1e30f, 1})}}), Error);
  EXPECT_THROW(run1("Resize", x, {{"roi", F({0}, {})}, {"sc", F({2}, {1, 1})}}), Error);
  EXPECT_THROW(run1("DepthToSpace", x, {}, {{"blocksize", ai(INT64_MAX)}}), Error);
  EXPECT_THROW(run1("DepthToSpace", x, {}, {{"blocksize", ai(2)}}), Error);  // 1 channel, not divisible by 4
  EXPECT_THROW(run1("Split", F({4}, {1, 2, 3, 4}), {{"s", I({1}, {INT64_MAX})}}), Error);
  EXPECT_THROW(run1("TopK", F({3}, {1, 2, 3}), {{"k", I({1}, {4})}}), Error);
  EXPECT_THROW(run1("Range", F({}, {0}), {{"l", F({}, {1e30f})}, {"d", F({}, {1e-30f})}}), Error);
  EXPECT_THROW(run1("Expand", x, {{"s", I({2}, {3, 3})}}), Error);  // [.., 2, 2] vs [3, 3]
  EXPECT_THROW(run1("ConvTranspose", x, {{"w", F({1, 1, 1, 1}, {1})}}, {{"strides", ais({INT64_MAX, 1})}}), Error);
  EXPECT_THROW(run1("Where", x, {{"a", F({1}, {1})}, {"b", F({1}, {2})}}), Error);  // float condition
  EXPECT_THROW(run1("MaxPool", I({1, 1, 2, 2}, {1, 2, 3, 4}), {}, {{"kernel_shape", ais({2, 2})}}), Error);  // int input
  // Integer arithmetic wraps instead of overflowing (no undefined behaviour).
  EXPECT_EQ(run1("Neg", I({1}, {INT64_MIN})).ip()[0], INT64_MIN);
  // A float operand where an integer is meant, NaN or beyond int64: an error, not an undefined
  // conversion (the ONNX fuzzer's hour-long run found Clip's; the others share the helper).
  EXPECT_THROW(run1("Clip", I({2}, {1, 2}), {{"lo", F({}, {NAN})}}), Error);
  EXPECT_THROW(run1("Clip", I({2}, {1, 2}), {{"lo", F({}, {0})}, {"hi", F({}, {1e30f})}}), Error);
  EXPECT_THROW(run1("Gather", F({3}, {1, 2, 3}), {{"i", F({1}, {NAN})}}), Error);
  EXPECT_THROW(run1("Reshape", F({4}, {1, 2, 3, 4}), {{"s", F({2}, {2, INFINITY})}}), Error);
  EXPECT_THROW(run1("TopK", F({3}, {1, 2, 3}), {{"k", F({1}, {NAN})}}), Error);
  // Indexing operators: indices out of range, shapes that do not fit, sizes beyond the limit.
  Attr eq;
  eq.kind = Attr::Kind::String;
  EXPECT_THROW(run1("GatherND", x, {{"i", I({1, 2}, {0, 5})}}), Error);
  EXPECT_THROW(run1("GatherND", x, {{"i", I({1, 5}, {0, 0, 0, 0, 0})}}), Error);  // more index entries than dimensions
  EXPECT_THROW(run1("GatherND", x, {{"i", I({1, 1}, {INT64_MAX})}}), Error);          // no round trip through double (UBSan)
  EXPECT_THROW(run1("ScatterND", x, {{"i", I({1, 1}, {INT64_MIN})}, {"u", F({1, 1, 2, 2}, {0, 0, 0, 0})}}), Error);
  {
    // Float indices beyond any int64 (and NaN) match no position: all "off".
    Value oh = run1("OneHot", F({3}, {1e30f, NAN, 1}), {{"d", F({}, {2})}, {"v", F({2}, {5, 7})}});
    EXPECT_EQ(std::vector<float>(oh.fp(), oh.fp() + 6), (std::vector<float>{5, 5, 5, 5, 5, 7}));
  }
  EXPECT_THROW(run1("ScatterND", x, {{"i", I({1, 1}, {-3})}, {"u", F({1, 1, 2, 2}, {0, 0, 0, 0})}}), Error);
  EXPECT_THROW(run1("ScatterND", x, {{"i", I({1, 1}, {0})}, {"u", F({2}, {0, 0})}}), Error);  // updates' shape
  EXPECT_THROW(run1("ScatterElements", x, {{"i", I({1, 1, 1, 1}, {2})}, {"u", F({1, 1, 1, 1}, {0})}}, {{"axis", ai(2)}}), Error);
  EXPECT_THROW(run1("OneHot", I({2}, {0, 1}), {{"d", F({}, {-1})}, {"v", F({2}, {0, 1})}}), Error);
  EXPECT_THROW(run1("OneHot", I({2}, {0, 1}), {{"d", F({}, {1e30f})}, {"v", F({2}, {0, 1})}}), Error);
  EXPECT_THROW(run1("OneHot", I({2}, {0, 1}), {{"d", F({}, {NAN})}, {"v", F({2}, {0, 1})}}), Error);
  for (const char* bad : {"ab->ab", "abcd,ab->a", "ab.cd->a", "......->", "abcd->z", "abcd->aa", "ab1d->a", "a...b...->a"}) {
    eq.s = bad;
    EXPECT_THROW(run1("Einsum", x, {}, {{"equation", eq}}), Error) << bad;
  }
  eq.s = "...ij->...ji";
  Value t = run1("Einsum", x, {}, {{"equation", eq}});
  EXPECT_EQ(t.shape, (Shape{1, 1, 2, 2}));
  EXPECT_EQ(std::vector<float>(t.fp(), t.fp() + 4), (std::vector<float>{1, 3, 2, 4}));
  eq.s = "abii";  // the trace of the last two axes, implicit output "ab"
  EXPECT_EQ(run1("Einsum", x, {}, {{"equation", eq}}).fp()[0], 5.0f);
  Value nz = run1("NonZero", F({2, 2}, {0, 3, 0, 4}));
  EXPECT_EQ(nz.shape, (Shape{2, 2}));
  EXPECT_EQ(std::vector<std::int64_t>(nz.ip(), nz.ip() + 4), (std::vector<std::int64_t>{0, 1, 1, 1}));
}

// Einsum of two operands (the GEMM route for batch / row / column / contracted labels, the generic loop
// otherwise) against a brute-force sum over every label assignment, written here independently.
TEST(Ops, EinsumMatchesABruteForceSum) {
  struct Case { std::string eq; Shape a, b; };
  const std::vector<Case> cases = {
      {"bhqd,bhkd->bhqk", {2, 3, 4, 5}, {2, 3, 6, 5}},  // attention scores
      {"bhqk,bhkd->bhqd", {2, 3, 4, 6}, {2, 3, 6, 5}},  // attention output
      {"ij,jk", {3, 4}, {4, 5}},                        // implicit output "ik"
      {"abc,cd->dba", {2, 3, 4}, {4, 5}},               // permuted output
      {"i,i->", {7}, {7}},                              // inner product
      {"ij,kl->ljki", {2, 3}, {4, 2}},                  // outer product, permuted
      {"ii,ij->j", {3, 3}, {3, 4}},                     // a diagonal: the generic loop
      {"ij,j->", {3, 4}, {4}},                          // i summed in A alone: the generic loop
  };
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& cs : cases) {
    Value a = Value::floats(cs.a), b = Value::floats(cs.b);
    for (float& v : *a.f) v = nd(rng);
    for (float& v : *b.f) v = nd(rng);
    Attr eq;
    eq.kind = Attr::Kind::String;
    eq.s = cs.eq;
    const Value y = run1("Einsum", a, {{"b", b}}, {{"equation", eq}});
    // Reference: the labels, the output's labels (implicit: those used once, alphabetically), a sum.
    const auto arrow = cs.eq.find("->");
    const std::string lhs = cs.eq.substr(0, arrow), ta = lhs.substr(0, lhs.find(',')), tb = lhs.substr(lhs.find(',') + 1);
    std::string out;
    if (arrow != std::string::npos) out = cs.eq.substr(arrow + 2);
    else for (char ch = 'a'; ch <= 'z'; ++ch) if (std::count(lhs.begin(), lhs.end(), ch) == 1) out += ch;
    std::map<char, std::int64_t> ext;
    for (std::size_t d = 0; d < ta.size(); ++d) ext[ta[d]] = cs.a[d];
    for (std::size_t d = 0; d < tb.size(); ++d) ext[tb[d]] = cs.b[d];
    std::vector<char> labels;
    for (auto& [ch, e] : ext) labels.push_back(ch);
    std::int64_t total = 1;
    for (char ch : labels) total *= ext[ch];
    std::int64_t n_out = 1;
    for (char ch : out) n_out *= ext[ch];
    std::vector<double> want(static_cast<std::size_t>(n_out), 0.0);
    for (std::int64_t t = 0; t < total; ++t) {
      std::map<char, std::int64_t> at;
      std::int64_t rem = t;
      for (auto it = labels.rbegin(); it != labels.rend(); ++it) { at[*it] = rem % ext[*it]; rem /= ext[*it]; }
      auto flat = [&](const std::string& term, const Shape& sh) {
        std::int64_t o = 0;
        for (std::size_t d = 0; d < term.size(); ++d) o = o * sh[d] + at[term[d]];
        return o;
      };
      // A label repeated in one term (a diagonal) takes the same index at both places through `at`.
      std::int64_t o = 0;
      for (char ch : out) o = o * ext[ch] + at[ch];
      want[static_cast<std::size_t>(o)] += static_cast<double>(a.fp()[flat(ta, cs.a)]) * b.fp()[flat(tb, cs.b)];
    }
    ASSERT_EQ(y.numel(), n_out) << cs.eq;
    for (std::int64_t k = 0; k < n_out; ++k) EXPECT_NEAR(y.fp()[k], want[static_cast<std::size_t>(k)], 1e-4) << cs.eq << " element " << k;
  }
}
