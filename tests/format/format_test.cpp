// The format grammar: named formats, compositions, canonical names, and errors naming the bad part.
#include <gtest/gtest.h>

#include "qcast/error.hpp"
#include "qcast/format.hpp"

using namespace qcast;

static bool same(const Format& a, const Format& b) {
  return a.expanded() == b.expanded() && a.elem().bits == b.elem().bits && a.scaling().block == b.scaling().block &&
         a.scaling().axis == b.scaling().axis && a.scaling().kind == b.scaling().kind && a.scaling().rule == b.scaling().rule &&
         a.scaling().asym == b.scaling().asym && a.scaling().tensor_scale == b.scaling().tensor_scale;
}

TEST(Format, NamedFormatsAndTheirBits) {
  EXPECT_DOUBLE_EQ(Format::parse("mxfp4").bits_per_element(), 4.25);
  EXPECT_DOUBLE_EQ(Format::parse("mxfp6_e2m3").bits_per_element(), 6.25);
  EXPECT_DOUBLE_EQ(Format::parse("mxfp8").bits_per_element(), 8.25);
  EXPECT_DOUBLE_EQ(Format::parse("mxint8").bits_per_element(), 8.25);
  EXPECT_DOUBLE_EQ(Format::parse("nvfp4").bits_per_element(), 4.5);
  EXPECT_DOUBLE_EQ(Format::parse("nf4").bits_per_element(), 4.5);
  EXPECT_DOUBLE_EQ(Format::parse("int4@fp16/g128").bits_per_element(), 4.125);
  EXPECT_DOUBLE_EQ(Format::parse("int4@fp16/g128/asym").bits_per_element(), 4.0 + 20.0 / 128);
  EXPECT_DOUBLE_EQ(Format::parse("e4m3@e8m0/t32x32").bits_per_element(), 8.0 + 8.0 / 1024);
  EXPECT_EQ(Format::parse("mxfp4").expanded(), "e2m1@e8m0/b32/floor");
  EXPECT_EQ(Format::parse("mxfp8").expanded(), Format::parse("mxfp8_e4m3").expanded());
  EXPECT_EQ(Format::parse("nvfp4").expanded(), "e2m1@ue4m3+fp32/b16/amax");
}

TEST(Format, EveryNameRoundTripsThroughTheParser) {
  std::vector<std::string> names = named_formats();
  for (const char* n : {"int4@fp16/g128", "int4@fp16/g128/asym", "e2m1@e8m0/b32", "int8@fp32/ch0", "e4m3@e8m0/t32x32",
                        "int3@fp16/g32/mse", "e3m4fnuz@bf16/b64/ax0", "nf4@fp16/b64", "cb:-1,0,1@fp32/ch1", "uint4@fp16/g64/asym/ceil",
                        "pot4@e8m0/b16/midmax", "int8@fp32/tensor", "e5m2@e8m0/b32/ceil"}) names.push_back(n);
  for (const auto& n : names) {
    SCOPED_TRACE(n);
    const Format f = Format::parse(n);
    EXPECT_TRUE(same(Format::parse(f.canonical()), f));
    EXPECT_TRUE(same(Format::parse(f.expanded()), f));
    EXPECT_EQ(Format::parse(f.canonical()).canonical(), f.canonical());
  }
  EXPECT_EQ(Format::parse("e2m1@e8m0/b32").canonical(), "e2m1@e8m0/b32/floor");
  EXPECT_EQ(Format::parse("int4@fp16/g128").canonical(), "int4@fp16/b128/amax");
}

TEST(Format, BadNamesGiveErrorsNamingThePart) {
  auto msg = [](const std::string& n) {
    try {
      Format::parse(n);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(msg("mxfp5").find("mxfp5"), std::string::npos);
  EXPECT_NE(msg("int4@fp16/b0").find("block size"), std::string::npos);
  EXPECT_NE(msg("int4@fp16/q7").find("q7"), std::string::npos);
  EXPECT_NE(msg("int17").find("int17"), std::string::npos);
  EXPECT_NE(msg("e1m3").find("no finite normal values"), std::string::npos);  // subnormals only
  EXPECT_NE(msg("e1m0fn").find("no finite non-zero values"), std::string::npos);  // 0 and NaN only
  EXPECT_NE(msg("e9m2").find("e9m2"), std::string::npos);
  EXPECT_NE(msg("e4m3xx").find("xx"), std::string::npos);
  EXPECT_NE(msg("e2m1@int8/b32").find("scale element"), std::string::npos);
  EXPECT_NE(msg("e2m1/asym").find("asym"), std::string::npos);
  EXPECT_NE(msg("cb:1").find("two"), std::string::npos);
  EXPECT_NE(msg("cb:1,x").find("x"), std::string::npos);
  EXPECT_NE(msg("").find("empty"), std::string::npos);
  // An axis means something for block (and channel) scales only; elsewhere it would vanish from the name.
  EXPECT_NE(msg("int3@fp16/ax1").find("per-tensor"), std::string::npos);  // found by the format_name fuzzer
  EXPECT_NE(msg("int4@fp16/t8x8/ax0").find("tile"), std::string::npos);
  EXPECT_NE(msg("int4/ax1").find("no scale"), std::string::npos);
  EXPECT_EQ(Format::parse("int4@fp16/ch0/ax1").canonical(), Format::parse("int4@fp16/ch1").canonical());
  EXPECT_NE(msg("e4m3b1@e5m13/b1/ch5").find("two scale granularities"), std::string::npos);  // the fuzzer, too (e8m3b1 itself is now refused: beyond float32)
  EXPECT_NE(msg("int4@fp16/g32/tensor").find("'g32' and 'tensor'"), std::string::npos);
  EXPECT_THROW(parse_round_mode("sideways"), Error);
}
