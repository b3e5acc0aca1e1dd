// Issue 19: results that were silently wrong. decode takes exactly the code / scale / zero-point bytes the
// metadata implies (a buffer long enough for another format was accepted), infer writes the file type its
// output name says (it wrote .npy bytes under a .safetensors name), and ONNX Cast to a type the runtime
// cannot represent is refused (it was cast to int64).
#include <string>

#include "onnx_builder.hpp"
#include "packed_edit.hpp"
#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/onnx.hpp"
#include "test_support.hpp"

using qcast::test::run_cli;

namespace {

void write_inputs(const qcast::test::TempDir& d) {
  qcast::Tensor x = qcast::Tensor::zeros_f32({8, 4});
  for (int k = 0; k < 32; ++k) x.mutable_f32()[k] = static_cast<float>(k % 7) - 3.0f;
  qcast::write_npy(d.file("x.npy"), x);
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::linear_classifier());
}

}  // namespace

TEST(HardeningWrongResults, DecodeRefusesAnotherFormatAndExtraBytes) {
  qcast::test::TempDir d;
  // int8 codes (256 bytes) relabelled as int4: long enough for int4, but not what was written.
  qcast::test::write_packed_edited(d.file("a.safetensors"), "int8", [](qcast::PackedFile& pf) { pf.quantized[0].second.format = "int4"; });
  auto r = run_cli("decode " + d.file("a.safetensors") + " " + d.file("o.safetensors"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("take 128"), std::string::npos) << r.err;
  // Extra code bytes.
  qcast::test::write_packed_edited(d.file("b.safetensors"), "int4", [](qcast::PackedFile& pf) { pf.quantized[0].second.codes.push_back(0); });
  r = run_cli("decode " + d.file("b.safetensors") + " " + d.file("o.safetensors"));
  EXPECT_EQ(r.rc, 2) << r.err;
  // Extra scale bytes of a block format.
  qcast::test::write_packed_edited(d.file("c.safetensors"), "mxfp4", [](qcast::PackedFile& pf) { pf.quantized[0].second.scales.push_back(0); });
  r = run_cli("decode " + d.file("c.safetensors") + " " + d.file("o.safetensors"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("scales hold"), std::string::npos) << r.err;
  EXPECT_FALSE(qcast::test::exists(d.file("o.safetensors")));
  // Untouched files still decode.
  qcast::test::write_packed_edited(d.file("ok.safetensors"), "mxfp4", [](qcast::PackedFile&) {});
  r = run_cli("decode " + d.file("ok.safetensors") + " " + d.file("o.safetensors"));
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(HardeningWrongResults, InferWritesTheTypeItsOutputNameSays) {
  qcast::test::TempDir d;
  write_inputs(d);
  auto r = run_cli("infer " + d.file("m.onnx") + " " + d.file("x.npy") + " -o " + d.file("y.safetensors"));
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto st = qcast::read_safetensors(d.file("y.safetensors"));
  ASSERT_EQ(st.tensors.size(), 1u);
  EXPECT_EQ(st.tensors[0].name, "y");
  EXPECT_EQ(st.tensors[0].tensor.shape, (qcast::Shape{8, 3}));
  r = run_cli("infer " + d.file("m.onnx") + " " + d.file("x.npy") + " -o " + d.file("y.npy"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(qcast::read_npy(d.file("y.npy")).shape, (qcast::Shape{8, 3}));
  r = run_cli("infer " + d.file("m.onnx") + " " + d.file("x.npy") + " -o " + d.file("y.txt"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_FALSE(qcast::test::exists(d.file("y.txt")));
}

TEST(HardeningWrongResults, CastToAnUnknownTypeIsRefused) {
  namespace o = qcast::test::onnx;
  qcast::test::TempDir d;
  for (std::int64_t to : {99, 8, 14, 17}) {  // unknown, string, complex64, float8e4m3fn
    o::save(d.file("cast.onnx"), o::model({o::node("Cast", {"x"}, {"y"}, {o::int_attr("to", to)})}, {}, {o::value_info("x", {1, 4})},
                                          {o::value_info("y", {1, 4})}));
    try {
      qcast::nn::load_onnx(d.file("cast.onnx"));
      ADD_FAILURE() << "Cast to " << to << " accepted";
    } catch (const qcast::Error& e) {
      EXPECT_NE(std::string(e.what()).find("data type " + std::to_string(to)), std::string::npos) << e.what();
    }
  }
  for (std::int64_t to : {1, 7, 10, 16}) {  // float, int64, float16, bfloat16
    o::save(d.file("cast.onnx"), o::model({o::node("Cast", {"x"}, {"y"}, {o::int_attr("to", to)})}, {}, {o::value_info("x", {1, 4})},
                                          {o::value_info("y", {1, 4})}));
    EXPECT_NO_THROW(qcast::nn::load_onnx(d.file("cast.onnx"))) << to;
  }
}
