#include <cmath>
#include <fstream>

#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/onnx.hpp"
#include "test_support.hpp"

using namespace qcast;
using namespace qcast::nn;

namespace {

void check_reference(const std::string& model, int threads) {
  const std::string dir = test::shared_dir() + "/models/";
  Graph g = load_onnx(dir + model + ".onnx");
  Value in = Value::from_tensor(read_npy(dir + model + ".ref-input.npy"));
  Tensor ref = read_npy(dir + model + ".ref-logits.npy");
  auto out = g.run({in}, threads);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].shape, ref.shape);
  const float* r = ref.f32();
  double maxref = 0, maxdiff = 0;
  for (std::int64_t k = 0; k < ref.numel(); ++k) {
    maxref = std::max(maxref, std::fabs(static_cast<double>(r[k])));
    maxdiff = std::max(maxdiff, std::fabs(static_cast<double>(r[k]) - out[0].fp()[k]));
  }
  EXPECT_LE(maxdiff, 1e-4 * maxref) << model << " max abs diff " << maxdiff << " (max |logit| " << maxref << ")";
}

}  // namespace

TEST(Onnx, Lenet5MatchesReferenceLogits) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  check_reference("lenet5-mnist", 1);
  check_reference("lenet5-mnist", 2);
}

TEST(Onnx, Resnet20MatchesReferenceLogits) {
  QCAST_REQUIRE_SHARED("models/resnet20-cifar10.onnx");
  check_reference("resnet20-cifar10", 2);
}

TEST(Onnx, Resnet56MatchesReferenceLogits) {
  QCAST_REQUIRE_SHARED("models/resnet56-cifar10.onnx");
  check_reference("resnet56-cifar10", 2);
}

namespace {
std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}
Graph parse_bytes(const std::string& b) { return parse_onnx(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), "x.onnx"); }
}  // namespace

TEST(Onnx, MalformedFilesAreErrors) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  const std::string bytes = slurp(test::shared_dir() + "/models/lenet5-mnist.onnx");
  EXPECT_NO_THROW(parse_bytes(bytes));
  EXPECT_THROW(parse_bytes(bytes.substr(0, bytes.size() / 2)), Error);
  EXPECT_THROW(parse_bytes(bytes.substr(0, 100)), Error);
  EXPECT_THROW(parse_bytes("not an onnx file at all"), Error);
  EXPECT_THROW(parse_bytes(""), Error);
  EXPECT_THROW(load_onnx("/nonexistent/model.onnx"), Error);
  // An operator we do not implement: the message names the op and the node.
  std::string b2 = bytes;
  std::size_t p = 0;
  while ((p = b2.find("\x22\x04Relu", p)) != std::string::npos) { b2.replace(p + 2, 4, "Relx"); p += 6; }
  try {
    parse_bytes(b2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Relx"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/convnet/relu1/Relu"), std::string::npos) << e.what();
  }
  // A missing initializer: rename one so the Conv input is undefined.
  std::string b3 = bytes;
  p = b3.rfind("convnet.c1.bias");
  ASSERT_NE(p, std::string::npos);
  b3.replace(p, 15, "convnet.c1.bia_");
  EXPECT_THROW(parse_bytes(b3), Error);
}

TEST(Onnx, ShapeInferenceAndLayerInfo) {
  QCAST_REQUIRE_SHARED("models/lenet5-mnist.onnx");
  Graph g = load_onnx(test::shared_dir() + "/models/lenet5-mnist.onnx");
  auto shapes = g.infer_shapes(7);
  EXPECT_EQ(shapes[g.outputs[0]], (Shape{7, 10}));
  auto layers = layer_info(g, 1);
  ASSERT_FALSE(layers.empty());
  EXPECT_EQ(layers[0].op, "Conv");
  EXPECT_EQ(layers[0].M, 6);
  EXPECT_EQ(layers[0].P, 28);
  EXPECT_EQ(layers[0].R, 5);
  EXPECT_EQ(layers[0].macs, 6 * 28 * 28 * 25);
  std::int64_t params = 0;
  for (auto& l : layers) params += l.params;
  EXPECT_EQ(params, 61706);
}
