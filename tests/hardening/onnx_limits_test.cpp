// Issue 19: ONNX constant folding has a total size cap (a 119-byte model must not allocate gigabytes);
// beyond it the model is refused with a message naming the limit and how to raise it.
#include <string>

#include "onnx_builder.hpp"
#include "test_support.hpp"

namespace o = qcast::test::onnx;

namespace {

// ConstantOfShape of a constant [rows, cols]: folded at load time into a rows x cols float tensor.
std::string constant_of_shape_model(std::int64_t rows, std::int64_t cols) {
  return o::model({o::node("ConstantOfShape", {"s"}, {"big"}), o::node("Add", {"x", "big"}, {"y"})}, {o::int64_tensor("s", {2}, {rows, cols})},
                  {o::value_info("x", {1, 1})}, {o::value_info("y", {rows, cols})});
}

}  // namespace

TEST(HardeningOnnx, ConstantFoldingIsCapped) {
  QCAST_SKIP_ADDRESS_LIMIT_TEST();
  qcast::test::TempDir d;
  o::save(d.file("big.onnx"), constant_of_shape_model(20000, 20000));  // 1.6 GB when folded
  auto r = qcast::test::run_binary("ulimit -v 4000000; exec " QCAST_CLI_PATH, "inspect " + d.file("big.onnx"));
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("QCAST_FOLD_LIMIT_MB"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ConstantOfShape"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("256 MiB"), std::string::npos) << r.err;
  // Within the default limit: loads.
  o::save(d.file("small.onnx"), constant_of_shape_model(100, 100));
  r = qcast::test::run_cli("inspect " + d.file("small.onnx"));
  EXPECT_EQ(r.rc, 0) << r.err;
  // The limit can be lowered (and so raised) with the environment variable it names.
  r = qcast::test::run_binary("QCAST_FOLD_LIMIT_MB=0 " QCAST_CLI_PATH, "inspect " + d.file("small.onnx"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("QCAST_FOLD_LIMIT_MB=0"), std::string::npos) << r.err;
  r = qcast::test::run_binary("QCAST_FOLD_LIMIT_MB=lots " QCAST_CLI_PATH, "inspect " + d.file("small.onnx"));
  EXPECT_EQ(r.rc, 2) << r.err;
}
