// Tensor-level quantization: scaling layouts, NaN/Inf blocks, determinism, encode/decode = fake_quant.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "qcast/error.hpp"
#include "qcast/half.hpp"
#include "qcast/quantize.hpp"

using namespace qcast;

namespace {

std::vector<float> gaussian_data(std::size_t n, std::uint32_t seed, bool heavy = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = nd(rng);
    if (heavy && rng() % 50 == 0) x *= 40.0f;
  }
  return v;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (a[i] != b[i]) return false;
  }
  return true;
}

}  // namespace

TEST(Quantize, IntPerChannelMatchesTheDirectFormula) {
  const std::int64_t rows = 64, cols = 200;
  auto x = gaussian_data(rows * cols, 7, true);
  std::vector<float> q(x.size());
  fake_quant(Format::parse("int8@fp32/ch0"), x.data(), q.data(), {rows, cols});
  for (std::int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (std::int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
    const float s = amax / 127.0f;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float want = std::clamp(std::nearbyint(x[r * cols + c] / s), -127.0f, 127.0f) * s;
      ASSERT_EQ(q[r * cols + c], want) << r << "," << c;
    }
  }
}

TEST(Quantize, IntAsymGroupsWithFp16ScalesMatchTheDirectFormula) {
  const std::int64_t rows = 8, cols = 100;  // ragged last group of 100 % 32 = 4
  auto x = gaussian_data(rows * cols, 11);
  for (auto& v : x) v += 0.7f;  // skewed: zero points matter
  std::vector<float> q(x.size());
  fake_quant(Format::parse("int4@fp16/g32/asym"), x.data(), q.data(), {rows, cols});
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t g0 = 0; g0 < cols; g0 += 32) {
      const std::int64_t g1 = std::min<std::int64_t>(cols, g0 + 32);
      float lo = 0, hi = 0;
      for (std::int64_t c = g0; c < g1; ++c) {
        lo = std::min(lo, x[r * cols + c]);
        hi = std::max(hi, x[r * cols + c]);
      }
      const float s = f16_to_f32(f32_to_f16(static_cast<float>((static_cast<double>(hi) - lo) / 15.0)));
      const float zp = std::clamp(std::nearbyint(-lo / s), 0.0f, 15.0f);
      for (std::int64_t c = g0; c < g1; ++c) {
        const float qi = std::clamp(std::nearbyint(x[r * cols + c] / s) + zp, 0.0f, 15.0f);
        ASSERT_EQ(q[r * cols + c], (qi - zp) * s) << r << "," << c;
      }
    }
}

TEST(Quantize, MxBlocksFollowTheOcpScaleRule) {
  // One block of 32: amax 5.0 -> shared exponent floor(log2 5) - emax(e2m1)=2 -> 2^0, elements on the e2m1 grid.
  std::vector<float> x(32, 0.0f), q(32);
  x[0] = 5.0f;
  x[1] = -0.3f;
  x[2] = 2.6f;
  fake_quant(Format::parse("mxfp4"), x.data(), q.data(), {32});
  EXPECT_EQ(q[0], 4.0f);  // 5 is a tie between 4 and 6 -> even mantissa (4)
  EXPECT_EQ(q[1], -0.5f);
  EXPECT_EQ(q[2], 3.0f);
  // Blocks along axis 0 when asked.
  std::vector<float> y(64 * 2), qy(64 * 2), qt(64 * 2), yt(64 * 2);
  auto r = gaussian_data(128, 3);
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 2; ++j) y[i * 2 + j] = yt[j * 64 + i] = r[i * 2 + j];
  QuantOptions o;
  o.axis = 0;
  fake_quant(Format::parse("mxfp4"), y.data(), qy.data(), {64, 2}, o);
  fake_quant(Format::parse("mxfp4"), yt.data(), qt.data(), {2, 64});
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 2; ++j) ASSERT_EQ(qy[i * 2 + j], qt[j * 64 + i]);
}

TEST(Quantize, NanOrInfPoisonsOnlyItsBlock) {
  auto x = gaussian_data(96, 5);
  x[40] = NAN;
  x[70] = -INFINITY;
  std::vector<float> q(96);
  fake_quant(Format::parse("mxfp8"), x.data(), q.data(), {96});
  for (int i = 0; i < 32; ++i) EXPECT_FALSE(std::isnan(q[i]));
  for (int i = 32; i < 96; ++i) EXPECT_TRUE(std::isnan(q[i])) << i;
  const Encoded e = encode(Format::parse("mxfp8"), x.data(), {96});
  EXPECT_EQ(e.scales[0] != 0xFF, true);
  EXPECT_EQ(e.scales[1], 0xFF);
  EXPECT_EQ(e.scales[2], 0xFF);
}

TEST(Quantize, RaggedLastBlockIsPaddedForAmaxOnly) {
  std::vector<float> x = {1.0f, 2.0f, 3.0f, 100.0f, 0.1f};  // blocks of 4: [1,2,3,100], [0.1]
  std::vector<float> q(5);
  fake_quant(Format::parse("e2m1@e8m0/b4"), x.data(), q.data(), {5});
  EXPECT_EQ(q[4], 0.09375f);  // its own scale: floor(log2 0.1) - 2 = -6 -> 0.1 * 64 = 6.4 -> 6 -> 6/64
  EXPECT_EQ(q[3], 96.0f);
}

TEST(Quantize, TilesAndChannelsUseTheRightGroups) {
  // 4x4 matrix, tiles 2x2: the big value only affects its own tile.
  std::vector<float> x(16, 1.0f), q(16);
  x[0] = 1000.0f;
  fake_quant(Format::parse("int4@fp32/t2x2"), x.data(), q.data(), {4, 4});
  EXPECT_EQ(q[1], 0.0f);    // same tile as 1000: 1 / (1000/7) rounds to 0
  EXPECT_EQ(q[5], 0.0f);
  EXPECT_EQ(q[2], 1.0f);    // other tiles are exact
  EXPECT_EQ(q[10], 1.0f);
  // Channel axis 1 of [3, 2]: column scales.
  std::vector<float> y = {1.0f, 100.0f, 0.5f, 50.0f, 0.25f, 25.0f}, qy(6);
  fake_quant(Format::parse("int8@fp32/ch1"), y.data(), qy.data(), {3, 2});
  EXPECT_NEAR(qy[4], 0.25f, 1.0f / 127);
  EXPECT_NEAR(qy[5], 25.0f, 100.0f / 254);
}

TEST(Quantize, ResultsDoNotDependOnThreadCountIncludingStochastic) {
  auto x = gaussian_data(33 * 1000 + 7, 9, true);
  for (const char* fmt : {"mxfp4", "nvfp4", "int4@fp16/g32/asym", "e4m3", "nf4", "int8@fp32/ch0"}) {
    SCOPED_TRACE(fmt);
    const Format f = Format::parse(fmt);
    for (RoundMode m : {RoundMode::Even, RoundMode::Stochastic}) {
      std::vector<std::vector<float>> outs;
      for (int t : {1, 2, 7}) {
        QuantOptions o;
        o.round = m;
        o.seed = 42;
        o.threads = t;
        std::vector<float> q(x.size());
        const Shape shape = f.scaling().kind == ScaleKind::Channel ? Shape{33, 1000 + 0} : Shape{static_cast<std::int64_t>(x.size())};
        if (f.scaling().kind == ScaleKind::Channel) q.resize(33000);
        fake_quant(f, x.data(), q.data(), shape, o);
        outs.push_back(q);
      }
      EXPECT_TRUE(bit_equal(outs[0], outs[1]));
      EXPECT_TRUE(bit_equal(outs[0], outs[2]));
    }
  }
  // A different seed changes stochastic results.
  QuantOptions a, b;
  a.round = b.round = RoundMode::Stochastic;
  a.seed = 1;
  b.seed = 2;
  std::vector<float> qa(x.size()), qb(x.size());
  fake_quant(Format::parse("mxfp4"), x.data(), qa.data(), {static_cast<std::int64_t>(x.size())}, a);
  fake_quant(Format::parse("mxfp4"), x.data(), qb.data(), {static_cast<std::int64_t>(x.size())}, b);
  EXPECT_FALSE(bit_equal(qa, qb));
}

TEST(Quantize, EncodeThenDecodeEqualsFakeQuantForEveryNamedFormat) {
  // Rows of 768: whole blocks of 8 .. 48 and whole 256-blocks for the k-quants.
  auto x = gaussian_data(4 * 768, 13, true);
  x[7] = 0.0f;
  x[8] = -0.0f;
  x[9] = 1e-30f;
  std::vector<std::string> names = named_formats();
  for (const char* n : {"int4@fp16/g32/asym", "int3@fp16/g32", "e4m3@e8m0/t2x32", "int8@fp32/ch0", "pot4@e8m0/b16", "e3m2@bf16/b48/mse",
                        "cb:-2,-1,0,1,2@fp16/b8", "uint4@fp32/b32/asym/ceil", "e2m1@e8m0/b32/midmax", "int4@fp16/b32/mse"})
    names.push_back(n);
  for (const auto& n : names) {
    SCOPED_TRACE(n);
    const Format f = Format::parse(n);
    if (f.elem().is_unsigned() && f.scaling().kind == ScaleKind::None) continue;  // cannot hold negative data by design
    std::vector<float> q(x.size()), d(x.size());
    fake_quant(f, x.data(), q.data(), {4, 768});
    const Encoded e = encode(f, x.data(), {4, 768});
    EXPECT_EQ(e.codes.size(), (x.size() * f.elem().bits + 7) / 8);
    decode(e, d.data());
    ASSERT_TRUE(bit_equal(q, d));
  }
}

TEST(Quantize, PackingIsTightAndLsbFirst) {
  std::vector<std::uint32_t> c4 = {0x1, 0x2, 0xF, 0x0};
  auto p4 = pack_bits(c4.data(), 4, 4);
  ASSERT_EQ(p4.size(), 2u);
  EXPECT_EQ(p4[0], 0x21);
  EXPECT_EQ(p4[1], 0x0F);
  std::vector<std::uint32_t> c6 = {0x3F, 0x00, 0x15, 0x2A};
  auto p6 = pack_bits(c6.data(), 4, 6);
  ASSERT_EQ(p6.size(), 3u);  // four 6-bit codes in three bytes
  std::mt19937 rng(1);
  for (int bits = 1; bits <= 16; ++bits) {
    std::vector<std::uint32_t> c(1001), back(1001);
    for (auto& v : c) v = rng() & ((1u << bits) - 1);
    auto p = pack_bits(c.data(), c.size(), bits);
    ASSERT_EQ(p.size(), (c.size() * bits + 7) / 8);
    unpack_bits(p.data(), p.size(), c.size(), bits, back.data());
    ASSERT_EQ(c, back) << bits;
  }
  EXPECT_THROW(unpack_bits(p4.data(), 1, 4, 4, c4.data()), Error);
}

TEST(Quantize, BadShapesAndAxesAreErrors) {
  std::vector<float> x(8), q(8);
  QuantOptions o;
  o.axis = 2;
  EXPECT_THROW(fake_quant(Format::parse("mxfp4"), x.data(), q.data(), {2, 4}, o), Error);
  EXPECT_THROW(fake_quant(Format::parse("int8@fp32/ch3"), x.data(), q.data(), {2, 4}), Error);
  EXPECT_NO_THROW(fake_quant(Format::parse("int8@fp32/ch1"), x.data(), q.data(), {2, 4}));
}

TEST(Quantize, BlocksAlongAnInnerAxisMatchTheReference) {
  // NCHW activations blocked along channels (axis 1): the SIMD path works on a transposed copy.
  const Shape shape = {3, 70, 5, 7};
  auto x = gaussian_data(3 * 70 * 35, 21, true);
  x[100] = NAN;
  for (const char* fmt : {"mxfp8", "mxfp4", "nvfp4", "int8@fp16/g32", "mxint8"}) {
    SCOPED_TRACE(fmt);
    QuantOptions o;
    o.axis = 1;
    o.threads = 2;
    std::vector<float> fast(x.size()), ref(x.size());
    fake_quant(Format::parse(fmt), x.data(), fast.data(), shape, o);
    reference_fake_quant(Format::parse(fmt), x.data(), ref.data(), shape, o);
    EXPECT_TRUE(bit_equal(fast, ref));
  }
}
