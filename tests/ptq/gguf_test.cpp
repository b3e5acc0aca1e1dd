#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "ptq_support.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/gguf.hpp"
#include "qcast/quantize.hpp"
#include "test_support.hpp"

using namespace qcast;
namespace gg = qcast::ptq::gguf;

TEST(PtqGguf, FormatToGgmlType) {
  EXPECT_EQ(gg::ggml_type_for(Format::parse("int8@fp16/b32"), {4, 64}), gg::GgmlType::Q8_0);
  EXPECT_EQ(gg::ggml_type_for(Format::parse("int4@fp16/g32"), {4, 64}), gg::GgmlType::Q4_0);
  EXPECT_EQ(gg::ggml_type_for(Format::parse("mxfp4"), {4, 64}), gg::GgmlType::MXFP4);
  EXPECT_EQ(gg::ggml_type_for(Format::parse("mxfp4"), {4, 48}), gg::GgmlType::F32);         // ragged rows
  EXPECT_EQ(gg::ggml_type_for(Format::parse("int4@fp16/g32/asym"), {4, 64}), gg::GgmlType::F32);
  EXPECT_EQ(gg::ggml_type_for(Format::parse("int4/g32"), {4, 64}), gg::GgmlType::F32);      // fp32 scales
  EXPECT_EQ(gg::ggml_type_for(Format::parse("nvfp4"), {4, 64}), gg::GgmlType::F32);
}

TEST(PtqGguf, RoundTripTensorsAndMetadata) {
  test::TempDir dir;
  gg::File f;
  f.metadata.emplace_back("general.architecture", gg::Value::of("llama"));
  f.metadata.emplace_back("general.name", gg::Value::of(std::string("qcast-test")));
  f.metadata.emplace_back("llama.block_count", gg::Value::of(std::uint32_t{2}));
  f.metadata.emplace_back("llama.context_length", gg::Value::of(std::uint64_t{256}));
  f.metadata.emplace_back("llama.rope.freq_base", gg::Value::of(10000.0f));
  f.metadata.emplace_back("test.flag", gg::Value::of(true));
  f.metadata.emplace_back("test.i64", gg::Value{gg::ValueType::I64, std::int64_t{-5}, {}, {}});
  f.metadata.emplace_back("test.f64", gg::Value{gg::ValueType::F64, 2.5, {}, {}});
  gg::add_tokenizer(f, "llama", {"<unk>", "<s>", "</s>", "hello", " world"}, {0.f, 0.f, 0.f, -1.5f, -2.25f},
                    {2, 3, 3, 1, 1}, 1, 2, 0);
  const std::int64_t rows = 8, cols = 64;
  auto W = test::randn(rows * cols, 3, 0.1f);
  struct Case {
    const char* fmt;
    gg::GgmlType type;
  };
  for (const Case& c : {Case{"int8@fp16/b32", gg::GgmlType::Q8_0}, Case{"int4@fp16/g32", gg::GgmlType::Q4_0},
                        Case{"mxfp4", gg::GgmlType::MXFP4}, Case{"nvfp4", gg::GgmlType::F32}}) {
    auto t = gg::make_tensor(std::string("blk.0.") + c.fmt, W.data(), {rows, cols}, Format::parse(c.fmt));
    EXPECT_EQ(t.type, c.type) << c.fmt;
    EXPECT_EQ(t.ne, (std::vector<std::uint64_t>{64, 8}));
    // The ggml encoding decodes to exactly qcast's fake-quant values.
    std::vector<float> fq(W.size());
    fake_quant(Format::parse(c.fmt), W.data(), fq.data(), {rows, cols});
    const auto back = gg::dequantize(t);
    ASSERT_EQ(back.size(), fq.size());
    for (std::size_t i = 0; i < fq.size(); ++i) ASSERT_EQ(back[i], fq[i]) << c.fmt << " at " << i;
    f.tensors.push_back(std::move(t));
  }
  gg::TensorData norm;
  norm.name = "blk.0.attn_norm.weight";
  norm.ne = {7};
  norm.type = gg::GgmlType::F32;
  norm.data.resize(28, 0x3f);
  f.tensors.push_back(norm);

  for (std::uint32_t align : {32u, 64u}) {
    f.alignment = align;
    const std::string path = dir.file("m" + std::to_string(align) + ".gguf");
    gg::write(path, f);
    const gg::File r = gg::read(path);
    EXPECT_EQ(r.version, 3u);
    EXPECT_EQ(r.alignment, align);
    ASSERT_EQ(r.tensors.size(), f.tensors.size());
    for (std::size_t i = 0; i < f.tensors.size(); ++i) EXPECT_EQ(r.tensors[i], f.tensors[i]) << f.tensors[i].name;
    for (const auto& [k, v] : f.metadata) {
      const gg::Value* got = r.find(k);
      ASSERT_NE(got, nullptr) << k;
      EXPECT_EQ(*got, v) << k;
    }
    EXPECT_EQ(r.metadata.size(), f.metadata.size() + (align != 32 ? 1 : 0));
    // Spec layout checks: magic, version, counts; data section aligned.
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(bytes.substr(0, 4), "GGUF");
    std::uint32_t ver;
    std::uint64_t nt, nkv;
    std::memcpy(&ver, bytes.data() + 4, 4);
    std::memcpy(&nt, bytes.data() + 8, 8);
    std::memcpy(&nkv, bytes.data() + 16, 8);
    EXPECT_EQ(ver, 3u);
    EXPECT_EQ(nt, f.tensors.size());
    EXPECT_EQ(nkv, r.metadata.size());
    EXPECT_EQ(bytes.size() % align, 0u);
    // Truncations are rejected with an error, never a crash.
    for (std::size_t cut : {std::size_t{3}, std::size_t{20}, std::size_t{100}, std::size_t{400}, bytes.size() - 2 * align})
      EXPECT_THROW(gg::parse(reinterpret_cast<const std::uint8_t*>(bytes.data()), cut, "cut.gguf"), Error) << cut;
  }
}
