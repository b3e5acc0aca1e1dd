// Issue 19: labels outside [0, classes) are bad input wherever they are consumed (eval's accuracy and
// NLL, the calibration loss of mixed@BITS), not an out-of-bounds read, a crash or a silent nll of 0.
#include <string>

#include "onnx_builder.hpp"
#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/dataset.hpp"
#include "test_support.hpp"

using qcast::test::run_cli;

namespace {

// x.npy [4, 4] float32, y.npy [4] int64 with the given labels; model.onnx: a 3-class linear classifier.
void write_set(const qcast::test::TempDir& d, const std::vector<std::int64_t>& labels) {
  qcast::Tensor x = qcast::Tensor::zeros_f32({4, 4});
  for (int k = 0; k < 16; ++k) x.mutable_f32()[k] = static_cast<float>(k % 7) - 3.0f;
  qcast::write_npy(d.file("x.npy"), x);
  qcast::Tensor y;
  y.dtype = qcast::DType::I64;
  y.shape = {4};
  y.data = labels.data();
  qcast::write_npy(d.file("y.npy"), y);
  qcast::test::onnx::save(d.file("model.onnx"), qcast::test::onnx::linear_classifier());
}

}  // namespace

TEST(HardeningLabels, LabelCheckNamesLabelAndClassCount) {
  qcast::nn::ImageSet s;
  s.sample_shape = {1};
  s.data = {0, 0, 0};
  s.labels = {0, 2, 3};
  EXPECT_EQ(s.label(1, 3), 2);
  try {
    s.label(2, 3);
    FAIL() << "label 3 of 3 classes accepted";
  } catch (const qcast::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("label 3"), std::string::npos) << m;
    EXPECT_NE(m.find("3 classes"), std::string::npos) << m;
  }
  s.labels = {-1};
  EXPECT_THROW(s.label(0, 3), qcast::Error);
}

TEST(HardeningLabels, EvalRefusesLabelsOutsideTheClasses) {
  qcast::test::TempDir d;
  write_set(d, {0, 1, 7, 2});
  auto r = run_cli("eval " + d.file("model.onnx") + " --data npy:" + d.file("x.npy") + "," + d.file("y.npy") + " --json");
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("label 7"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 classes"), std::string::npos) << r.err;
  write_set(d, {0, -1, 1, 2});
  r = run_cli("eval " + d.file("model.onnx") + " --data npy:" + d.file("x.npy") + "," + d.file("y.npy") + " --json");
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("label -1"), std::string::npos) << r.err;
  write_set(d, {0, 1, 2, 2});  // in range: evaluates
  r = run_cli("eval " + d.file("model.onnx") + " --data npy:" + d.file("x.npy") + "," + d.file("y.npy") + " --json");
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(HardeningLabels, MixedCalibrationRefusesLabelsOutsideTheClasses) {
  qcast::test::TempDir d;
  for (std::int64_t bad : {std::int64_t(1000000), std::int64_t(-1)}) {
    write_set(d, {0, bad, 1, 2});
    auto r = run_cli("quantize " + d.file("model.onnx") + " --weights int8@fp32/ch0 --method mixed@6 --calib npy:" + d.file("x.npy") + "," +
                     d.file("y.npy") + " --out " + d.file("q.safetensors") + " --quiet");
    EXPECT_EQ(r.rc, 2) << bad << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("label " + std::to_string(bad)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("3 classes"), std::string::npos) << r.err;
    EXPECT_FALSE(qcast::test::exists(d.file("q.safetensors")));
  }
}
