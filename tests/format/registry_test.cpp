// Tests generated from the named-format table (the ggml test-quantize-fns way): every row parses to its
// composition, every alias and spelling reaches the same value, every row that claims the SIMD kernels
// takes them (and every row that does not, does not) with results equal to the scalar reference; plus
// regression tests for the Format-as-a-mutable-struct bugs and the ml_dtypes aliases against ml_dtypes'
// published type properties.
#include <gtest/gtest.h>

#include <limits>

#include <cctype>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <unordered_set>

#include "kernels/fast_path.hpp"
#include "qcast/gguf.hpp"
#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast {
namespace {

std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string error_of(const std::string& name) {
  try {
    Format::parse(name);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A tensor whose rows are whole blocks of every block size in the table, with values spread over many
// binades, ties, zeros and a zero block.
std::vector<float> sample(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const int regime = static_cast<int>(rng() % 10);
    x[i] = regime < 6 ? g(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 20) - 10)
         : regime < 9 ? std::ldexp(static_cast<float>(static_cast<int>(rng() % 33) - 16), static_cast<int>(rng() % 8) - 4)
                      : 0.0f;
  }
  for (std::int64_t i = 0; i < 64 && i < cols; ++i) x[static_cast<std::size_t>(i)] = 0.0f;  // an all-zero block
  return x;
}

TEST(FormatTable, RowsParseToTheirCompositionUnderEverySpelling) {
  std::set<std::string> spellings;
  for (const auto& row : format_table()) {
    SCOPED_TRACE(row.name);
    const Format f = Format::parse(row.name);
    EXPECT_EQ(f.name(), row.name);
    EXPECT_TRUE(f == Format::parse(row.composition));
    EXPECT_EQ(f.hash(), Format::parse(row.composition).hash());
    EXPECT_EQ(named_row_of(f), &row) << "two rows share a composition";
    EXPECT_EQ(Format::parse(upper(row.name)).name(), row.name) << "names are case-insensitive";
    EXPECT_TRUE(spellings.insert(row.name).second) << "name used twice";
    for (const auto& a : row.aliases) {
      SCOPED_TRACE(a);
      EXPECT_TRUE(spellings.insert(a).second) << "alias used twice";
      EXPECT_EQ(Format::parse(a).name(), row.name);
      EXPECT_TRUE(Format::parse(upper(a)) == f);
    }
    // The expanded spelling means the same value and parses back to it.
    EXPECT_TRUE(Format::parse(f.expanded()) == f);
    EXPECT_FALSE(row.description.empty());
  }
  EXPECT_EQ(named_formats().size(), format_table().size());
}

TEST(FormatTable, FastPathClaimsHoldBothWaysAndEqualTheReference) {
  const std::int64_t rows = 6, cols = 256;
  const std::vector<float> x = sample(rows, cols, 7);
  const Shape shape{rows, cols};
  for (const auto& row : format_table()) {
    SCOPED_TRACE(row.name);
    const Format f = Format::parse(row.name);
    QuantOptions opt;
    opt.threads = 2;
    std::vector<float> fast(x.size()), ref(x.size());
    const bool took = kern::fast_fake_quant(f, x.data(), fast.data(), shape, opt);
    EXPECT_EQ(took, row.fast) << "fake-quant: the table's fast column says " << row.fast;
    Encoded fe, re;
    const bool took_enc = kern::fast_encode(f, x.data(), shape, opt, fe);
    EXPECT_EQ(took_enc, row.fast) << "encode";
    if (!row.fast) continue;
    reference_fake_quant(f, x.data(), ref.data(), shape, opt);
    for (std::size_t i = 0; i < x.size(); ++i)
      ASSERT_EQ(bits_of(fast[i]), bits_of(ref[i])) << "element " << i << " of " << x[i];
    re = reference_encode(f, x.data(), shape, opt);
    EXPECT_TRUE(fe.codes == re.codes && fe.scales == re.scales) << "encoded bytes differ from the reference";
    std::vector<float> dec(x.size()), ref_dec(x.size());
    EXPECT_TRUE(kern::fast_decode(f, re, dec.data(), 2)) << "decode";
    reference_decode(re, ref_dec.data());
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(bits_of(dec[i]), bits_of(ref_dec[i])) << "decoded element " << i;
  }
}

// The table's ggml column is what the GGUF writer stores each named format as (rows of whole 256-blocks).
TEST(FormatTable, GgmlColumnMatchesTheGgufWriter) {
  int with_ggml = 0;
  for (const auto& row : format_table()) {
    SCOPED_TRACE(row.name);
    const auto t = gguf::ggml_type_for(Format::parse(row.name), {4, 256});
    if (row.ggml.empty()) {
      EXPECT_EQ(t, gguf::GgmlType::F32) << "the writer stores it as " << gguf::type_name(t) << " but the table says none";
    } else {
      ++with_ggml;
      EXPECT_EQ(gguf::type_name(t), row.ggml);
    }
  }
  EXPECT_GE(with_ggml, 14);
}

// Regression (cd3353f): Format was a mutable struct that carried its name and the SIMD plan cache was
// keyed by that name. Editing a parsed mxfp4 into an e4m3 block format and fake-quantizing once left the
// e4m3 plan under the name "mxfp4": later genuine mxfp4 casts matched the reference in 6 of 32 values.
TEST(FormatValue, PlanCacheIsKeyedByValueNotName) {
  const Format mxfp4 = Format::parse("mxfp4");
  const Format e4m3_blocks = Format::make(Element::parse("e4m3"), mxfp4.scaling());
  EXPECT_FALSE(e4m3_blocks == mxfp4);
  EXPECT_EQ(e4m3_blocks.name(), "e4m3@e8m0/b32/floor");
  const std::vector<float> x = sample(1, 32, 3);
  const Shape shape{1, 32};
  QuantOptions opt;
  std::vector<float> y(32), want(32);
  ASSERT_TRUE(kern::fast_fake_quant(e4m3_blocks, x.data(), y.data(), shape, opt));
  ASSERT_TRUE(kern::fast_fake_quant(mxfp4, x.data(), y.data(), shape, opt));
  reference_fake_quant(mxfp4, x.data(), want.data(), shape, opt);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(bits_of(y[i]), bits_of(want[i])) << i;
  // Two spellings of one value share one plan and agree.
  const Format spelt = Format::parse("E2M1@E8M0/B32/FLOOR");
  EXPECT_TRUE(spelt == mxfp4);
  EXPECT_EQ(spelt.hash(), mxfp4.hash());
  std::unordered_set<std::size_t> hashes;
  for (const auto& n : named_formats()) hashes.insert(Format::parse(n).hash());
  EXPECT_EQ(hashes.size(), named_formats().size()) << "distinct rows should not collide";
}

// Regression (cd3353f): a Format built field by field had an empty name; encode accepted it and decode
// then refused the file it wrote.
TEST(FormatValue, FormatsBuiltFromPartsAreNamedAndRoundTrip) {
  Element e;
  e.kind = Element::Kind::Float;
  e.ebits = 2;
  e.mbits = 1;
  e.bias = 1;
  e.bits = 4;
  e.variant = FloatVariant::Finite;  // e2m1 without a name
  Scaling s;
  s.kind = ScaleKind::Block;
  s.block = 32;
  s.scale_elem = Element::parse("e8m0");
  s.rule = ScaleRule::Floor;
  const Format f = Format::make(e, s);
  EXPECT_EQ(f.name(), "e2m1@e8m0/b32/floor");
  EXPECT_TRUE(f == Format::parse("mxfp4"));
  const std::vector<float> x = sample(2, 64, 5);
  const Encoded enc = encode(f, x.data(), {2, 64});
  EXPECT_FALSE(enc.format.empty());
  std::vector<float> back(x.size()), want(x.size());
  decode(enc, back.data());
  fake_quant(f, x.data(), want.data(), {2, 64});
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(bits_of(back[i]), bits_of(want[i])) << i;
  // Parts that a composition string could not hold are refused as the parser refuses them.
  Scaling bad = s;
  bad.block = 0;
  EXPECT_THROW(Format::make(e, bad), Error);
  Scaling asym = s;
  asym.asym = true;
  EXPECT_THROW(Format::make(e, asym), Error);
  // Unscaled formats ignore leftover scaling fields: one value, one hash.
  Scaling none;
  none.block = 99;
  EXPECT_TRUE(Format::make(Element::parse("e4m3"), none) == Format::parse("e4m3"));
  EXPECT_EQ(Format::make(Element::parse("e4m3"), none).hash(), Format::parse("e4m3").hash());
  // So do scaled ones: a block size left on a channel scale, an axis left on a tile, a channel scale with no
  // axis named; each equals (and hashes as) the format parsed back from its own name.
  Scaling channel = s;
  channel.kind = ScaleKind::Channel;  // block = 32 stays behind
  Scaling tile = s;
  tile.kind = ScaleKind::Tile;
  tile.tile_rows = tile.tile_cols = 8;
  tile.axis = 1;
  for (const Scaling& leftover : {channel, tile}) {
    const Format g = Format::make(e, leftover);
    SCOPED_TRACE(g.name());
    EXPECT_TRUE(Format::parse(g.name()) == g);
    EXPECT_EQ(Format::parse(g.name()).hash(), g.hash());
  }
}

TEST(FormatValue, WithScalingKeepsTheElement) {
  const Format f = Format::parse("int4@fp16/g32");
  Scaling s = f.scaling();
  s.kind = ScaleKind::Tensor;
  const Format t = f.with_scaling(s);
  EXPECT_EQ(t.name(), "int4@fp16/tensor/amax");
  EXPECT_TRUE(f.scaling().kind == ScaleKind::Block);  // the original is unchanged
}

TEST(FormatNames, UnknownNamesSuggestTheNearest) {
  EXPECT_NE(error_of("mxfp5").find("mxfp4"), std::string::npos) << error_of("mxfp5");
  EXPECT_NE(error_of("NVFP").find("nvfp4"), std::string::npos) << error_of("NVFP");
  EXPECT_NE(error_of("float8_e4m3fm").find("float8_e4m3fn"), std::string::npos) << error_of("float8_e4m3fm");
  EXPECT_NE(error_of("mxfp5").find("qcast formats"), std::string::npos);
  // A bad part of a composition still names the part, not a list of names.
  EXPECT_NE(error_of("int4@fp16/q7").find("q7"), std::string::npos);
}

TEST(FormatNames, ElementCanonicalNamesParseBack) {
  for (const char* n : {"e4m3", "e4m3ieee", "e4m3fnuz", "e4m3b11fnuz", "e5m2fnuz", "e3m4", "e3m4fn", "e2m2fin", "int5",
                        "uint3", "int8f6", "nf4", "ternary", "pot3", "cb:-0.5,0,0.25,1"}) {
    SCOPED_TRACE(n);
    const Element e = Element::parse(n);
    EXPECT_TRUE(Element::parse(e.canonical_name()) == e) << e.canonical_name();
  }
  EXPECT_EQ(Element::parse("e4m3b7ieee").canonical_name(), "e4m3ieee");
  EXPECT_EQ(Element::parse("e4m3b8fnuz").canonical_name(), "e4m3fnuz");
  EXPECT_THROW(Element::parse("e4m3b999"), Error);
}

// qcast computes in float32, so a minifloat whose values fall outside it is refused (the format-name fuzzer
// found e6m2b212, all of whose values lie below 2^-149: fake-quant gave -2^-149, decode(encode) -inf).
TEST(FormatNames, MinifloatsMustLieWithinFloat32) {
  for (const char* n : {"e6m2b212", "e3m2b149", "e8m3fn", "e8m3b1"}) EXPECT_THROW(Element::parse(n), Error) << n;
  EXPECT_NE(error_of("e6m2b212").find("2^-149"), std::string::npos) << error_of("e6m2b212");
  // The edges that fit: float32 itself (smallest subnormal 2^-149, largest FLT_MAX), bias + mantissa = 150.
  for (const char* n : {"e8m23", "e3m2b148", "e2m1b149", "e8m3", "e8m7fnuz"}) EXPECT_NO_THROW(Element::parse(n)) << n;
  EXPECT_EQ(Element::parse("e8m23").max_value(), static_cast<double>(std::numeric_limits<float>::max()));
}

// The ml_dtypes aliases against the properties ml_dtypes documents for its types (its README's table and
// `ml_dtypes.finfo`): exponent bias, largest finite value, smallest normal and subnormal, whether inf and
// NaN exist, and where NaN sits. Values below are those published figures, not derived from qcast.
struct MlDtype {
  const char* name;
  double max, min_normal, min_subnormal;
  bool inf, nan;
  int bits;
};
TEST(FormatNames, MlDtypesAliasesHaveMlDtypesProperties) {
  const MlDtype types[] = {
      {"float8_e3m4", 15.5, 0.25, 0.015625, true, true, 8},
      {"float8_e4m3", 240.0, 0.015625, 0.001953125, true, true, 8},
      {"float8_e4m3fn", 448.0, 0.015625, 0.001953125, false, true, 8},
      {"float8_e4m3fnuz", 240.0, 0.0078125, 0.0009765625, false, true, 8},
      {"float8_e4m3b11fnuz", 30.0, 0.0009765625, 0.0001220703125, false, true, 8},
      {"float8_e5m2", 57344.0, 6.103515625e-05, 1.52587890625e-05, true, true, 8},
      {"float8_e5m2fnuz", 57344.0, 3.0517578125e-05, 7.62939453125e-06, false, true, 8},
      {"float6_e2m3fn", 7.5, 1.0, 0.125, false, false, 6},
      {"float6_e3m2fn", 28.0, 0.25, 0.0625, false, false, 6},
      {"float4_e2m1fn", 6.0, 1.0, 0.5, false, false, 4},
  };
  for (const auto& t : types) {
    SCOPED_TRACE(t.name);
    const Element e = Format::parse(t.name).elem();
    EXPECT_EQ(e.bits, t.bits);
    EXPECT_EQ(e.max_value(), t.max);
    EXPECT_EQ(e.min_positive(), t.min_subnormal);
    EXPECT_EQ(e.decode(1u << e.mbits), t.min_normal) << "smallest normal";
    EXPECT_EQ(e.has_inf(), t.inf);
    EXPECT_EQ(e.has_nan(), t.nan);
  }
  // fnuz: one NaN, the negative-zero code 0x80; no -0.
  for (const char* n : {"float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3b11fnuz"}) {
    const Element e = Format::parse(n).elem();
    EXPECT_TRUE(std::isnan(e.decode(0x80))) << n;
    EXPECT_EQ(e.encode(-0.0f), 0u) << n;
  }
  // IEEE-style float8_e4m3: 0x78 is +inf, 0x79..0x7f NaN; float8_e4m3fn: 0x7f alone is NaN, 0x7e = 448.
  const Element ieee = Format::parse("float8_e4m3").elem();
  EXPECT_TRUE(std::isinf(ieee.decode(0x78)));
  EXPECT_TRUE(std::isnan(ieee.decode(0x79)));
  const Element fn = Format::parse("float8_e4m3fn").elem();
  EXPECT_EQ(fn.decode(0x7e), 448.0f);
  EXPECT_TRUE(std::isnan(fn.decode(0x7f)));
  // float8_e8m0fnu: powers of two 2^-127..2^127, 0xff NaN.
  const Element e8 = Format::parse("float8_e8m0fnu").elem();
  EXPECT_EQ(e8.decode(0), std::ldexp(1.0f, -127));
  EXPECT_EQ(e8.decode(254), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(e8.decode(255)));
}

}  // namespace
}  // namespace qcast

// Found by the format_name fuzzer (2026-12-08): a tensor scale that overflows float32. pot4 elements (at
// most 1) under e4m3 scales with bias 136 (at most 2^-121 x 1.75) put the data's amax / (1 x 3.5e-37) beyond
// FLT_MAX: the tensor scale was +inf, fake_quant gave 0 and decode(encode) 0 x inf = NaN. The scale now
// saturates at the largest float, the same in every path, and everything stays finite.
TEST(FormatNames, TensorScaleThatOverflowsFloat32Saturates) {
  const qcast::Shape shape = {4, 64};
  std::vector<float> in(256), out(256), back(256);
  for (int i = 0; i < 256; ++i) in[i] = std::ldexp(static_cast<float>((i * 37) % 101 - 50), (i % 9) - 4);
  for (const char* name : {"pot4@e4m3b136+fp32/tensor/amax", "pot4@e4m3b136+fp32/b16", "e2m1@e4m3b136+fp32/b32"}) {
    const qcast::Format f = qcast::Format::parse(name);
    for (int threads : {1, 2}) {
      qcast::QuantOptions opt;
      opt.threads = threads;
      qcast::fake_quant(f, in.data(), out.data(), shape, opt);
      const qcast::Encoded e = qcast::encode(f, in.data(), shape, opt);
      qcast::decode(e, back.data());
      std::vector<float> ref(256);
      qcast::reference_fake_quant(f, in.data(), ref.data(), shape, opt);
      for (int i = 0; i < 256; ++i) {
        ASSERT_TRUE(std::isfinite(out[i])) << name << " " << i;
        ASSERT_EQ(out[i], back[i]) << name << " element " << i;
        ASSERT_EQ(out[i], ref[i]) << name << " element " << i << " (scalar reference)";
      }
    }
  }
}
