// Element codecs: exhaustive round trips and a brute-force rounding oracle at every midpoint +- 1 ulp.
#include <gtest/gtest.h>
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/half.hpp"

using namespace qcast;

namespace {

std::vector<std::string> small_elements() {
  std::vector<std::string> v = {"e5m2", "e4m3", "e3m2", "e2m3", "e2m1", "e8m0", "ue4m3", "nf4", "binary", "ternary", "pot4",
                                "pot3", "cb:-3,-1,0,0.5,2", "e4m3fnuz", "e5m2fnuz", "e3m4", "e2m2fin", "e1m2fin", "e3m3fn", "e5m0",
                                "e6m1fn", "e4m2fin", "e2m5"};
  for (int b = 2; b <= 8; ++b) {
    v.push_back("int" + std::to_string(b));
    v.push_back("uint" + std::to_string(b));
  }
  v.push_back("int8f6");
  // Every minifloat eXmY of at most 8 bits in each variant the parser accepts (ieee, fn, fnuz, fin).
  for (int x = 1; x <= 7; ++x) {
    for (int y = 0; x + y <= 7; ++y) {
      for (const char* variant : {"", "fn", "fnuz", "fin"}) {
        const std::string name = "e" + std::to_string(x) + "m" + std::to_string(y) + variant;
        if (std::find(v.begin(), v.end(), name) != v.end()) continue;
        try {
          (void)Element::parse(name);
          v.push_back(name);
        } catch (const Error&) {
          // combinations with no finite values (e.g. a 1-bit IEEE exponent) are rejected by the parser
        }
      }
    }
  }
  return v;
}

std::uint32_t ncodes(const Element& e) { return e.num_codes(); }

float next_up(float x) { return std::nextafter(x, std::numeric_limits<float>::infinity()); }
float next_down(float x) { return std::nextafter(x, -std::numeric_limits<float>::infinity()); }

// The finite values of an element with the code producing each (NaN codes skipped; -0 kept apart from +0).
struct Grid {
  std::vector<double> values;
  std::vector<std::uint32_t> codes;
};

Grid grid_of(const Element& e) {
  Grid g;
  for (std::uint32_t c = 0; c < ncodes(e); ++c) {
    const float v = e.decode(c);
    if (!std::isfinite(v)) continue;
    if (v == 0 && std::signbit(v)) continue;
    g.values.push_back(v);
    g.codes.push_back(c);
  }
  return g;
}

// Brute-force oracle: the value an exact rounding of x onto the element's finite grid must give.
double oracle(const Element& e, const Grid& g, double x, RoundMode m) {
  double lo = -INFINITY, hi = INFINITY;
  for (double v : g.values) {
    if (v <= x) lo = std::max(lo, v);
    if (v >= x) hi = std::min(hi, v);
  }
  if (std::isinf(lo)) return hi;  // below the grid: saturate to its smallest value
  if (std::isinf(hi)) return lo;  // above: saturate
  if (lo == hi) return lo;
  const double dlo = x - lo, dhi = hi - x;
  switch (m) {
    case RoundMode::Floor: return lo;
    case RoundMode::Ceil: return hi;
    case RoundMode::Zero: return std::fabs(lo) < std::fabs(hi) ? lo : hi;
    case RoundMode::Away:
      if (dlo != dhi) return dlo < dhi ? lo : hi;
      return std::fabs(lo) > std::fabs(hi) ? lo : hi;
    case RoundMode::Even: {
      if (dlo != dhi) return dlo < dhi ? lo : hi;
      if (e.kind == Element::Kind::Codebook) {
        // codebook ties go to the even index
        auto idx = [&](double v) { return std::find(e.values.begin(), e.values.end(), static_cast<float>(v)) - e.values.begin(); };
        return idx(lo) % 2 == 0 ? lo : hi;
      }
      // No mantissa bits (e5m0, E8M0): the significand integer is 1 or 2, and the tie 1.5 goes to 2.
      // Between 0 and the smallest value the integers are 0 and 1: the tie goes to 0.
      if (e.kind == Element::Kind::Float && e.mbits == 0) {
        if (lo == 0 || hi == 0) return 0.0;
        return std::fabs(lo) > std::fabs(hi) ? lo : hi;
      }
      // floats and ints: the neighbour whose code (magnitude bits) is even
      auto code = [&](double v) { return e.encode(static_cast<float>(v)); };
      return (code(lo) & 1u) == 0 ? lo : hi;
    }
    default: return lo;
  }
}

}  // namespace

TEST(Element, EveryCodeRoundTrips) {
  // 33 named / codebook / integer elements + about a hundred generated eXmY variants.
  EXPECT_GE(small_elements().size(), 120u);
  for (const auto& name : small_elements()) {
    SCOPED_TRACE(name);
    const Element e = Element::parse(name);
    ASSERT_LE(e.bits, 8);
    int nans = 0;
    for (std::uint32_t c = 0; c < ncodes(e); ++c) {
      const float v = e.decode(c);
      if (std::isnan(v)) {
        ++nans;
        ASSERT_TRUE(std::isnan(e.decode(e.encode(v)))) << "code " << c;
        continue;
      }
      ASSERT_EQ(e.encode(v), c) << "code " << c << " value " << v;
      ASSERT_EQ(e.quantize(v), v);
    }
    EXPECT_EQ(nans > 0, e.has_nan());
  }
}

TEST(Element, KnownCodesAndLimits) {
  EXPECT_EQ(Element::parse("e4m3").max_value(), 448.0);
  EXPECT_EQ(Element::parse("e5m2").max_value(), 57344.0);
  EXPECT_EQ(Element::parse("e2m1").max_value(), 6.0);
  EXPECT_EQ(Element::parse("e2m3").max_value(), 7.5);
  EXPECT_EQ(Element::parse("e3m2").max_value(), 28.0);
  EXPECT_EQ(Element::parse("e4m3fnuz").max_value(), 240.0);
  EXPECT_EQ(Element::parse("e5m2fnuz").max_value(), 57344.0);
  EXPECT_EQ(Element::parse("int8f6").max_value(), 127.0 / 64);
  EXPECT_EQ(Element::parse("e4m3").encode(448.0f), 0x7Eu);
  EXPECT_EQ(Element::parse("e4m3").encode(NAN), 0x7Fu);
  EXPECT_EQ(Element::parse("e4m3fnuz").encode(NAN), 0x80u);
  EXPECT_EQ(Element::parse("e5m2").encode(INFINITY, RoundMode::Even), 0x7Cu);
  EXPECT_EQ(Element::parse("e2m1").encode(-6.0f), 0xFu);
  EXPECT_EQ(Element::parse("e2m1").encode(0.25f), 0x0u);  // tie between 0 and 0.5 goes to even (0)
  EXPECT_EQ(Element::parse("e2m1").encode(0.75f), 0x2u);  // tie between 0.5 (code 1) and 1.0 (code 2): even
  EXPECT_EQ(Element::parse("e8m0").encode(1.0f), 127u);
  EXPECT_EQ(Element::parse("e8m0").decode(0), std::ldexp(1.0f, -127));
  EXPECT_TRUE(std::isnan(Element::parse("e8m0").decode(255)));
  EXPECT_EQ(Element::parse("ue4m3").encode(-3.0f), 0u);
  EXPECT_EQ(Element::parse("int4").decode(0x8), -8.0f);
  EXPECT_THROW(Element::parse("e2m1").encode(NAN), Error);
  // Saturation by default, inf/NaN on request.
  EXPECT_EQ(Element::parse("e4m3").quantize(1e6f), 448.0f);
  EXPECT_TRUE(std::isnan(Element::parse("e4m3").quantize(1e6f, RoundMode::Even, 0, Overflow::Inf)));
  EXPECT_EQ(Element::parse("e5m2").quantize(1e6f), 57344.0f);
  EXPECT_TRUE(std::isinf(Element::parse("e5m2").quantize(1e6f, RoundMode::Even, 0, Overflow::Inf)));
  EXPECT_EQ(Element::parse("e5m2").quantize(61440.0f - 1, RoundMode::Even, 0, Overflow::Inf), 57344.0f);
}

TEST(Element, MidpointsPlusMinusOneUlpMatchTheOracle) {
  const RoundMode modes[] = {RoundMode::Even, RoundMode::Away, RoundMode::Zero, RoundMode::Floor, RoundMode::Ceil};
  for (const auto& name : small_elements()) {
    SCOPED_TRACE(name);
    const Element e = Element::parse(name);
    const Grid g = grid_of(e);
    std::vector<double> sorted = g.values;
    std::sort(sorted.begin(), sorted.end());
    std::vector<float> probes;
    for (std::size_t i = 0; i + 1 < sorted.size(); ++i) {
      const float mid = static_cast<float>((sorted[i] + sorted[i + 1]) / 2);
      if (e.kind != Element::Kind::Codebook) {
        ASSERT_EQ(static_cast<double>(mid), (sorted[i] + sorted[i + 1]) / 2);  // exact in float
      }
      probes.insert(probes.end(), {mid, next_up(mid), next_down(mid), static_cast<float>(sorted[i])});
    }
    probes.push_back(static_cast<float>(sorted.back() * 1.7));
    probes.push_back(static_cast<float>(sorted.front() * 1.7 - 1));
    for (float x : probes) {
      for (RoundMode m : modes) {
        const double want = oracle(e, g, x, m);
        const float got = e.quantize(x, m);
        ASSERT_EQ(static_cast<double>(got), want) << "x=" << x << " mode " << round_mode_name(m);
        if (!(e.kind == Element::Kind::Float && e.variant == FloatVariant::Fnuz) && !(want == 0)) {
          ASSERT_EQ(e.decode(e.encode(x, m)), got);
        }
      }
    }
  }
}

TEST(Element, StochasticRoundingIsUnbiasedAndUsesOnlyNeighbours) {
  const Element e = Element::parse("e2m1");
  const float x = 2.6f;  // between 2 and 3
  std::mt19937 rng(5);
  double sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const float q = e.quantize(x, RoundMode::Stochastic, rng());
    ASSERT_TRUE(q == 2.0f || q == 3.0f);
    sum += q;
  }
  EXPECT_NEAR(sum / n, 2.6, 0.01);
  EXPECT_EQ(e.quantize(2.0f, RoundMode::Stochastic, 0xffffffffu), 2.0f);  // exact values never move
}

// The CPU's own conversions (F16C's vcvtps2ph / vcvtph2ps, round to nearest even) as the outside reference:
// GCC's _Float16 would do, but clang 14 (the sanitizer build's compiler) has no _Float16 on x86.
__attribute__((target("f16c"))) std::uint16_t hw_f32_to_f16(float x) {
  return static_cast<std::uint16_t>(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hw_f16_to_f32(std::uint16_t h) { return _cvtsh_ss(h); }

TEST(Half, Fp16MatchesTheCpuConversionOn2To24RandomFloats) {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;  // CPUID leaf 1, ECX bit 29: F16C (clang 14 lacks the builtin's name)
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 29))) GTEST_SKIP() << "this CPU has no F16C conversions to compare with";
  std::mt19937 rng(1234);
  const Element fp16 = Element::parse("fp16");
  const int n = 1 << 24;
  for (int i = 0; i < n; ++i) {
    std::uint32_t bits = rng();
    // Bias half of the samples into fp16's range so normals, subnormals and overflow all get exercised.
    if (i & 1) bits = (bits & 0x807fffffu) | ((100u + (bits >> 24) % 60u) << 23);
    const float x = bits_f32(bits);
    const std::uint16_t hb = hw_f32_to_f16(x);
    const std::uint16_t mine = f32_to_f16(x);
    if (std::isnan(x)) {
      ASSERT_TRUE(std::isnan(f16_to_f32(mine)));
      continue;
    }
    ASSERT_EQ(mine, hb) << "x=" << x;
    ASSERT_EQ(f16_to_f32(mine), hw_f16_to_f32(hb));
    if ((i & 15) == 0) {
      ASSERT_EQ(fp16.quantize(x, RoundMode::Even, 0, Overflow::Inf), f16_to_f32(mine)) << x;
    }
  }
}

TEST(Half, Bf16BitTrickMatchesExactRounding) {
  std::mt19937 rng(99);
  const Element bf16 = Element::parse("bf16");
  const int n = 1 << 22;
  for (int i = 0; i < n; ++i) {
    const float x = bits_f32(rng());
    if (std::isnan(x)) continue;
    ASSERT_EQ(bf16_to_f32(f32_to_bf16(x)), bf16.quantize(x, RoundMode::Even, 0, Overflow::Inf)) << x;
  }
  // ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> even (1)
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
}
