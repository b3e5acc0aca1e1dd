// The SIMD + threaded kernels against the scalar reference, bit for bit, on every dispatch target this
// machine supports (each one forced in turn): exhaustive code sets (every code, every midpoint and its
// float neighbours, at several scales) and large random inputs with subnormals, ties, NaN/Inf blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/simd.hpp"
#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr std::int64_t kRandomN = 200000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr std::int64_t kRandomN = 200000;
#else
constexpr std::int64_t kRandomN = 10000000;
#endif
#else
constexpr std::int64_t kRandomN = 10000000;
#endif

const std::vector<std::string> kScaledFormats = {
    "mxfp8", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8", "nvfp4", "nf4", "mxfp4_rceil", "mxfp8_rceil",
    "e3m2@e8m0/b16/rceil", "int8f6@e8m0/b32/rceil",
    "int8@fp32/ch0", "int4@fp32/g32", "int8@fp16/g32", "int4@fp16/g128/asym", "int8@fp32/g64/asym",
    "int4@bf16/g16", "e4m3@fp16/g32", "uint4@fp32/g32/asym"};
const std::vector<std::string> kElementwise = {"e4m3", "e5m2", "e2m1", "e3m2", "e2m3", "bf16", "fp16", "int8", "int4"};
const std::vector<RoundMode> kModes = {RoundMode::Even, RoundMode::Away, RoundMode::Zero, RoundMode::Floor, RoundMode::Ceil};

std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float from_bits(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// 64-byte aligned storage for kernel outputs: outputs of >= 4M floats are then written with the
// kernels' non-temporal stores, which need vector-aligned addresses (fast_path.cpp, stream_output).
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
};
using OutVec = std::vector<float, Aligned64<float>>;

// First index where a and b differ bitwise, or -1.
template <class A, class B>
std::int64_t first_diff(const A& a, const B& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (bits_of(a[i]) != bits_of(b[i])) return static_cast<std::int64_t>(i);
  return -1;
}

// Every code value of the element, the midpoints of neighbours and the floats right beside them.
std::vector<float> special_values(const Element& el) {
  std::vector<float> vals;
  std::vector<float> codes;
  if (el.kind == Element::Kind::Codebook) {
    codes = el.values;
  } else if (el.bits <= 8) {
    for (std::uint32_t c = 0; c < el.num_codes(); ++c) {
      const float v = el.decode(c);
      if (std::isfinite(v)) codes.push_back(v);
    }
  } else {
    // 16-bit elements: a spread of codes (all exponents, a few mantissas) is enough here.
    for (std::uint32_t c = 0; c < el.num_codes(); c += 37) {
      const float v = el.decode(c);
      if (std::isfinite(v)) codes.push_back(v);
    }
  }
  std::sort(codes.begin(), codes.end());
  codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
  for (std::size_t i = 0; i < codes.size(); ++i) {
    vals.push_back(codes[i]);
    if (i + 1 < codes.size()) {
      const float mid = static_cast<float>((static_cast<double>(codes[i]) + codes[i + 1]) / 2);
      vals.push_back(mid);
      vals.push_back(std::nextafter(mid, -INFINITY));
      vals.push_back(std::nextafter(mid, INFINITY));
    }
  }
  const float mx = static_cast<float>(el.max_value());
  for (float v : {0.0f, -0.0f, mx * 1.01f, -mx * 1.01f, mx * 1.5f, -mx * 3.0f, 1e-40f, -1e-42f, 1.2e-38f})
    vals.push_back(v);
  return vals;
}

// Exhaustive input for a format: blocks that start with the element max times a scale (so the block
// scale is that scale) followed by all special values times the same scale.
std::vector<float> exhaustive_input(const Format& f, std::int64_t cols, std::int64_t& rows) {
  const std::vector<float> sv = special_values(f.elem());
  std::vector<float> out;
  const std::int64_t blk = f.scaling().kind == ScaleKind::Block ? f.scaling().block : cols;
  const float mx = static_cast<float>(f.elem().max_value());
  for (double s : {1.0, 0.25, 1024.0, std::ldexp(1.0, -120), 0.7, 3.3e-3, 6.1e4}) {
    std::size_t k = 0;
    while (k < sv.size()) {
      for (std::int64_t i = 0; i < blk; ++i) {
        float v;
        if (i == 0) v = static_cast<float>(mx * s);
        else v = static_cast<float>(sv[k++ % sv.size()] * s);
        out.push_back(v);
      }
    }
  }
  while (out.size() % static_cast<std::size_t>(cols)) out.push_back(0.5f);
  rows = static_cast<std::int64_t>(out.size()) / cols;
  return out;
}

std::vector<float> random_input(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> x(static_cast<std::size_t>(n));
  std::normal_distribution<float> gauss;
  std::uniform_int_distribution<int> regime_d(0, 99);
  for (std::int64_t b = 0; b < n; b += 16) {
    const int regime = regime_d(rng);
    const std::int64_t e = std::min<std::int64_t>(n, b + 16);
    const float mag = std::ldexp(1.0f, static_cast<int>(rng() % 60) - 30);
    for (std::int64_t i = b; i < e; ++i) {
      float v;
      if (regime < 40) {
        v = gauss(rng) * mag;
      } else if (regime < 55) {  // any finite float
        v = from_bits(static_cast<std::uint32_t>(rng()) & 0xff7fffffu);
      } else if (regime < 65) {  // fp32 subnormals
        v = from_bits((static_cast<std::uint32_t>(rng()) & 0x807fffffu));
      } else if (regime < 90) {  // dyadic values: ties of every grid
        v = std::ldexp(static_cast<float>(static_cast<int>(rng() % 257) - 128), static_cast<int>(rng() % 24) - 12);
      } else if (regime < 95) {
        v = (rng() & 1) ? 0.0f : -0.0f;
      } else {
        v = gauss(rng);
      }
      x[static_cast<std::size_t>(i)] = v;
    }
    if (regime >= 95) {  // a NaN or Inf somewhere in this stretch
      const std::uint64_t r = rng();
      const float special[] = {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY, -std::numeric_limits<float>::quiet_NaN()};
      x[static_cast<std::size_t>(b + static_cast<std::int64_t>(r % static_cast<std::uint64_t>(e - b)))] = special[(r >> 8) % 4];
    }
  }
  return x;
}

struct TargetGuard {
  ~TargetGuard() { kern::force_target(0); }
};

void expect_encoded_eq(const Encoded& a, const Encoded& b, const std::string& what) {
  EXPECT_EQ(a.format, b.format) << what;
  EXPECT_EQ(a.shape, b.shape) << what;
  EXPECT_EQ(a.axis, b.axis) << what;
  EXPECT_EQ(a.num_groups, b.num_groups) << what;
  EXPECT_EQ(bits_of(a.tensor_scale), bits_of(b.tensor_scale)) << what;
  EXPECT_TRUE(a.scales == b.scales) << what << ": scales differ";
  EXPECT_TRUE(a.zeros == b.zeros) << what << ": zero points differ";
  if (a.codes != b.codes) {
    std::size_t i = 0;
    while (i < std::min(a.codes.size(), b.codes.size()) && a.codes[i] == b.codes[i]) ++i;
    ADD_FAILURE() << what << ": codes differ at byte " << i << " of " << a.codes.size() << " / " << b.codes.size();
  }
}

// Fast vs reference for one format / mode / input on every target and thread count.
void check_all(const Format& f, RoundMode mode, const std::vector<float>& x, const Shape& shape, bool encode_too,
               const std::string& label, bool all_threads_on_all_targets = true) {
  QuantOptions opt;
  opt.round = mode;
  opt.threads = 2;
  std::vector<float> want(x.size());
  reference_fake_quant(f, x.data(), want.data(), shape, opt);
  Encoded want_e;
  std::vector<float> want_d(x.size());
  bool encodable = encode_too;
  if (encode_too) {
    try {
      want_e = reference_encode(f, x.data(), shape, opt);
      reference_decode(want_e, want_d.data());
    } catch (const std::exception&) {
      encodable = false;  // e.g. NaN in an element without NaN: checked separately
    }
  }
  TargetGuard guard;
  const auto targets = kern::available_targets();
  for (std::int64_t t : targets) {
    kern::force_target(t);
    for (int threads : {1, 2, 3}) {
      if (!all_threads_on_all_targets && t != targets.front() && threads != 2) continue;
      const std::string what = label + " " + f.name() + " round=" + round_mode_name(mode) + " target=" +
                               kern::target_name(t) + " threads=" + std::to_string(threads);
      opt.threads = threads;
      OutVec got(x.size());
      fake_quant(f, x.data(), got.data(), shape, opt);
      const std::int64_t d = first_diff(got, want);
      EXPECT_EQ(d, -1) << what << ": x=" << (d >= 0 ? x[d] : 0.0f) << " got " << (d >= 0 ? got[d] : 0.0f) << " want "
                       << (d >= 0 ? want[d] : 0.0f) << " (0x" << std::hex << (d >= 0 ? bits_of(got[d]) : 0) << " vs 0x"
                       << (d >= 0 ? bits_of(want[d]) : 0) << ")";
      if (encodable && (threads != 3)) {
        const Encoded e = encode(f, x.data(), shape, opt);
        expect_encoded_eq(e, want_e, what + " encode");
        OutVec dec(x.size());
        decode(e, dec.data(), threads);
        EXPECT_EQ(first_diff(dec, want_d), -1) << what << " decode";
      }
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(SimdKernels, TargetsAvailable) {
  const auto targets = kern::available_targets();
  ASSERT_FALSE(targets.empty());
  std::string names;
  for (auto t : targets) names += kern::target_name(t) + " ";
  std::cout << "dispatch targets tested: " << names << "\n";
}

TEST(SimdKernels, ExhaustiveScaled) {
  for (const auto& name : kScaledFormats) {
    const Format f = Format::parse(name);
    for (RoundMode m : kModes) {
      // Ragged rows (generic group loop) and whole aligned blocks (the fixed-block kernel).
      for (std::int64_t extra : {3, 0}) {
        std::int64_t rows = 0;
        const std::int64_t cols = f.scaling().kind == ScaleKind::Channel ? 96 + extra : 4 * f.scaling().block + extra;
        const auto x = exhaustive_input(f, cols, rows);
        check_all(f, m, x, {rows, cols}, true, extra ? "exhaustive-ragged" : "exhaustive-aligned");
      }
      if (HasFailure()) return;
    }
  }
}

TEST(SimdKernels, ExhaustiveElementwise) {
  for (const auto& name : kElementwise) {
    const Format f = Format::parse(name);
    for (RoundMode m : kModes) {
      std::vector<float> x = special_values(f.elem());
      // Every float near each code value too (a few ulps either side).
      const std::size_t base = x.size();
      for (std::size_t i = 0; i < base; ++i)
        for (int k = 1; k <= 2; ++k) {
          x.push_back(from_bits(bits_of(x[i]) + k));
          x.push_back(from_bits(bits_of(x[i]) - k));
        }
      for (float v : {INFINITY, -INFINITY}) x.push_back(v);
      check_all(f, m, x, {static_cast<std::int64_t>(x.size())}, true, "exhaustive");
      // With a NaN: fake-quant gives NaN; encode either gives the NaN code or (no NaN code) throws.
      x.push_back(std::numeric_limits<float>::quiet_NaN());
      check_all(f, m, x, {static_cast<std::int64_t>(x.size())}, f.elem().has_nan(), "exhaustive+nan");
      if (HasFailure()) return;
    }
  }
}

TEST(SimdKernels, ElementwiseNaNWithoutNaNCodeThrows) {
  const float x[3] = {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f};
  for (const char* name : {"e2m1", "int8"}) EXPECT_THROW(encode(Format::parse(name), x, {3}), std::exception) << name;
}

TEST(SimdKernels, RandomLarge) {
  // 10^7 values through mxfp4 (fake-quant, encode, decode) and nvfp4 on every target; 2 x 10^6 through
  // the other headline formats.
  // Rows of 1024 values: whole aligned blocks, the shape real weights have.
  const std::int64_t cols = 1024;
  const std::int64_t rows = kRandomN / cols;
  const auto x = random_input(rows * cols, 42);
  for (const char* name : {"mxfp4", "nvfp4"}) {
    check_all(Format::parse(name), RoundMode::Even, x, {rows, cols}, std::string(name) == "mxfp4", "random", false);
    if (HasFailure()) return;
  }
  // The other headline formats on the first fifth (the scalar reference is the slow part of this test).
  const std::int64_t rows5 = rows / 5;
  const std::vector<float> x5(x.begin(), x.begin() + rows5 * cols);
  for (const char* name : {"mxfp8", "mxint8", "int8@fp32/ch0", "int4@fp32/g32", "mxfp6_e2m3"}) {
    check_all(Format::parse(name), RoundMode::Even, x5, {rows5, cols}, false, "random", false);
    if (HasFailure()) return;
  }
}

TEST(SimdKernels, StreamedOutputs) {
  // Outputs of >= 4M floats go through non-temporal stores (aligned full vectors of the output): the
  // fixed-block kernel (MX and amax scales), the generic group loop (per-channel rows) and decode.
  // 2^22 values, the smallest streamed size.
  const std::int64_t cols = 4096, rows = (std::int64_t{1} << 22) / cols;
  const auto x = random_input(rows * cols, 99);
  for (const char* name : {"mxfp6_e2m3", "int4@fp32/g32", "int8@fp32/ch0"}) {
    check_all(Format::parse(name), RoundMode::Even, x, {rows, cols}, true, "streamed", false);
    if (HasFailure()) return;
  }
}

TEST(SimdKernels, RandomAllModes) {
  for (std::int64_t cols : {256 + 17, 512}) {  // ragged and aligned
  const std::int64_t rows = std::max<std::int64_t>(8, kRandomN / 400 / cols);
  const auto x = random_input(rows * cols, 7 + cols);
  std::vector<std::string> all = kScaledFormats;
  all.insert(all.end(), kElementwise.begin(), kElementwise.end());
  for (const auto& name : all) {
    const Format f = Format::parse(name);
    std::vector<float> xs = x;
    if (f.scaling().kind == ScaleKind::None && !f.elem().has_nan())
      for (float& v : xs)
        if (std::isnan(v)) v = 1.0f;
    for (RoundMode m : kModes) {
      check_all(f, m, xs, {rows, cols}, true, "random");
      if (HasFailure()) return;
    }
  }
  }
}

TEST(SimdKernels, OddShapes) {
  // 1-D, 3-D, tiny and empty-ish shapes; channel and block axes the fast path must route correctly.
  const auto x = random_input(3 * 5 * 67, 3);
  for (const char* name : {"mxfp4", "nvfp4", "int8@fp32/ch0", "int4@fp16/g32/asym", "nf4", "e4m3"}) {
    const Format f = Format::parse(name);
    for (const Shape& s : std::vector<Shape>{{3 * 5 * 67}, {3, 5, 67}, {15, 67}, {67, 15}, {1, 1005}}) {
      check_all(f, RoundMode::Even, x, s, true, "shape");
      QuantOptions opt;
      opt.axis = 0;  // blocks along the first axis: reference path, still equal
      std::vector<float> a(x.size()), b(x.size());
      fake_quant(f, x.data(), a.data(), s, opt);
      reference_fake_quant(f, x.data(), b.data(), s, opt);
      EXPECT_EQ(first_diff(a, b), -1) << name << " axis 0";
    }
  }
}

TEST(SimdKernels, RowsShorterThanTheBlock) {
  // MX blocks of 32 along 16 or 8 channels (NHWC activations of a narrow layer): each row is one full
  // group of its own length, which takes the fixed-block kernel; fake-quant, encode and decode must still
  // equal the reference, specials and all-zero rows included.
  auto x = random_input(257 * 16, 5);
  for (std::size_t i = 0; i < 16; ++i) x[32 + i] = 0.0f;  // an all-zero row of 16
  x[100] = std::numeric_limits<float>::quiet_NaN();
  x[300] = std::numeric_limits<float>::infinity();
  x[501] = 3.4e38f;
  for (const char* name : {"mxfp8", "mxfp4", "mxint8", "nvfp4", "int4@fp16/g32", "int8@fp32/g64"}) {
    const Format f = Format::parse(name);
    for (const Shape& s : std::vector<Shape>{{257, 16}, {514, 8}, {2, 257, 8}}) {
      check_all(f, RoundMode::Even, x, s, true, "short rows");
      check_all(f, RoundMode::Away, x, s, false, "short rows");
    }
  }
}

TEST(SimdKernels, SingleElementGroups) {
  // MX blocks along an axis of extent 1 (the channel axis of a one-channel image) and /b1 blocks: every
  // group is one element (the vectorised per-lane scale path), including specials, subnormals, zeros,
  // and tails shorter than a vector.
  auto x = random_input(4099, 11);
  for (std::size_t i = 0; i < x.size(); i += 97) x[i] = 0.0f;
  x[5] = std::numeric_limits<float>::quiet_NaN();
  x[6] = -std::numeric_limits<float>::infinity();
  x[7] = 1e-45f;
  x[8] = -3e-39f;
  x[9] = 3.4e38f;
  for (const char* name : {"mxfp8", "mxfp4", "mxfp6_e3m2", "mxint8", "e4m3@e8m0/b1"}) {
    const Format f = Format::parse(name);
    check_all(f, RoundMode::Even, x, {4099, 1}, false, "len1");
    check_all(f, RoundMode::Away, x, {4099, 1}, false, "len1");
    check_all(f, RoundMode::Floor, x, {4099, 1}, false, "len1");
  }
}

TEST(SimdKernels, AmaxScaleQuotientsNearMidpoints) {
  // Amax scales are not powers of two, so x / scale is a real division whose rounding decides the element
  // near its midpoints. Here every block is built on its actual scale S (read back from the reference
  // encoding of its amax alone): its other values sit within 8 float ulps of m * S for every grid point
  // and midpoint m of the element, both signs; the random tests rarely land this close.
  std::mt19937_64 rng(7);
  for (const char* name : {"nvfp4", "e2m1@ue4m3/b16/amax", "e4m3@ue4m3/b16/amax", "e2m3@fp32/g32", "e3m2@bf16/g32"}) {
    const Format f = Format::parse(name);
    const std::int64_t blk = f.scaling().block, cols = 4 * blk, rows = 512;
    std::vector<float> grid;  // positive grid points and midpoints of the element
    std::vector<float> pos;
    for (std::uint32_t c = 0; c < f.elem().num_codes(); ++c) {
      const float v = f.elem().decode(c);
      if (std::isfinite(v) && v > 0) pos.push_back(v);
    }
    std::sort(pos.begin(), pos.end());
    for (std::size_t i = 0; i < pos.size(); ++i) {
      grid.push_back(pos[i]);
      if (i + 1 < pos.size()) grid.push_back(0.5f * (pos[i] + pos[i + 1]));
    }
    // Block scales over 2^40 with wide scale elements; over 2^8 with UE4M3 scales (448 down to 2^-9), which would
    // otherwise saturate or reach zero (both covered by the exhaustive tests).
    const int spread = f.scaling().scale_elem.bits == 8 ? 8 : 40;
    std::vector<float> x(static_cast<std::size_t>(rows * cols), 0.0f);
    for (std::int64_t b = 0; b < rows * cols; b += blk)
      x[static_cast<std::size_t>(b)] = static_cast<float>(f.elem().max_value()) *
                                       std::ldexp(1.0f + static_cast<float>(rng() % 1000) / 1000.0f, static_cast<int>(rng() % spread) - spread / 2);
    const Shape shape{rows, cols};
    QuantOptions opt;
    const Encoded amax_only = reference_encode(f, x.data(), shape, opt);
    const Element& se = f.scaling().scale_elem;
    for (std::int64_t g = 0; g < rows * cols / blk; ++g) {
      float sv;
      if (se.bits == 32) {
        std::memcpy(&sv, amax_only.scales.data() + 4 * g, 4);
      } else {
        std::uint32_t code = 0;
        for (int k = 0; k < se.bits / 8; ++k) code |= static_cast<std::uint32_t>(amax_only.scales[static_cast<std::size_t>(g * (se.bits / 8) + k)]) << (8 * k);
        sv = se.decode(code);
      }
      const float S = f.scaling().tensor_scale ? sv * amax_only.tensor_scale : sv;
      const float A = x[static_cast<std::size_t>(g * blk)];
      ASSERT_GT(S, 0.0f) << name;
      for (std::int64_t i = 1; i < blk; ++i) {
        float v = 0;
        for (int tries = 0; tries < 8; ++tries) {
          const float m = grid[rng() % grid.size()];
          const int k = static_cast<int>(rng() % 17) - 8;
          v = from_bits(static_cast<std::uint32_t>(static_cast<std::int64_t>(bits_of(m * S)) + k));
          if (v < 0.99f * A) break;  // keeps the block's amax, so its scale stays S
          v = 0;
        }
        x[static_cast<std::size_t>(g * blk + i)] = (rng() & 1) ? -v : v;
      }
    }
    check_all(f, RoundMode::Even, x, shape, true, "near-midpoints");
    if (HasFailure()) return;
  }
}

TEST(SimdKernels, TensorScaleFormatsWithStoredGroupMaxima) {
  // Formats with a tensor scale read their input twice; where the fixed-block kernel covers them, the
  // first read (the tensor amax) also stores every block's maximum for the second. Blocks of 1, 2, 4 and 8
  // vectors of every target, plus b8 (not whole vectors on AVX-512: no stored maxima there), with NaN /
  // Inf blocks; and blocks where a NaN or Inf sits beside the tensor's largest finite value, which must
  // still set the tensor scale.
  const std::int64_t cols = 1024, rows = 96;
  for (const char* name : {"nvfp4", "e2m1@ue4m3+fp32/b8", "e2m1@ue4m3+fp32/b32", "e4m3@ue4m3+fp32/b64", "e2m1@e4m3+fp32/b128"}) {
    auto x = random_input(rows * cols, 11);
    std::int64_t arg = 0;
    for (std::int64_t i = 0; i < rows * cols; ++i) {
      const float a = std::fabs(x[static_cast<std::size_t>(i)]);
      if (std::isfinite(a) && a > std::fabs(x[static_cast<std::size_t>(arg)])) arg = i;
    }
    const std::int64_t blk = Format::parse(name).scaling().block;
    const std::int64_t b0 = arg / blk * blk;
    const auto beside = static_cast<std::size_t>(arg == b0 ? b0 + 1 : b0);
    for (const float special : {std::numeric_limits<float>::quiet_NaN(), -INFINITY}) {
      x[beside] = special;
      check_all(Format::parse(name), RoundMode::Even, x, {rows, cols}, true, "stored-maxima");
      if (HasFailure()) return;
    }
  }
}

TEST(SimdKernels, DecodeEveryCode) {
  // Every code of each element, decoded by the kernels against the reference bit for bit, whichever way they
  // take: the element formulas (minifloat, bf16 bit shift, integer) with their table fallback for NaN / Inf
  // codes and the fnuz NaN in the -0 slot, in-register 4-bit tables, gathers, and the direct 4/6/8/16-bit code
  // loads. Rows of 1024 (groups start on bytes; the 6-bit loads meet the end of the stream) and of 1001
  // (they do not).
  for (const char* name : {"e4m3", "e5m2", "e4m3fnuz", "e5m2fnuz", "e3m2", "e2m3", "e2m1", "bf16", "fp16", "mxfp6_e2m3",
                           "mxfp6_e3m2", "mxfp8", "mxint8", "mxfp4", "nvfp4", "nf4", "int8@fp32/ch0", "int4@fp16/g32",
                           "e4m3@fp16/g32", "fp16@fp32/g64", "int8@fp32/g64/asym", "int6@fp32/g32"}) {
    const Format f = Format::parse(name);
    const std::uint32_t ncodes = f.elem().num_codes();
    for (const std::int64_t cols : {1024, 1001}) {
      const std::int64_t rows = std::max<std::int64_t>(4, 2 * ncodes / cols + 1);
      const auto x = random_input(rows * cols, 5);
      std::vector<float> xf(x.size());  // finite values: valid scales for every group
      for (std::size_t i = 0; i < x.size(); ++i) xf[i] = std::isfinite(x[i]) ? x[i] : 1.0f;
      QuantOptions opt;
      Encoded e = reference_encode(f, xf.data(), {rows, cols}, opt);
      std::vector<std::uint32_t> codes(static_cast<std::size_t>(rows * cols));
      for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::uint32_t>((i * 37 + i / ncodes) % ncodes);
      e.codes = pack_bits(codes.data(), codes.size(), f.elem().bits);
      std::vector<float> want(codes.size());
      reference_decode(e, want.data());
      TargetGuard guard;
      for (std::int64_t t : kern::available_targets()) {
        kern::force_target(t);
        for (int threads : {1, 2}) {
          std::vector<float> got(codes.size());
          decode(e, got.data(), threads);
          const std::int64_t d = first_diff(got, want);
          EXPECT_EQ(d, -1) << name << " cols=" << cols << " target=" << kern::target_name(t) << " threads=" << threads
                           << ": code " << (d >= 0 ? codes[static_cast<std::size_t>(d)] : 0) << " got 0x" << std::hex
                           << (d >= 0 ? bits_of(got[static_cast<std::size_t>(d)]) : 0) << " want 0x"
                           << (d >= 0 ? bits_of(want[static_cast<std::size_t>(d)]) : 0);
          if (HasFailure()) return;
        }
      }
    }
  }
}

TEST(SimdKernels, PackUnpackRoundTrip) {
  std::mt19937 rng(1);
  for (int bits : {1, 2, 3, 4, 5, 6, 7, 8, 12, 16}) {
    const std::int64_t n = 1000;
    std::vector<std::uint16_t> codes(n);
    for (auto& c : codes) c = static_cast<std::uint16_t>(rng() & ((1u << bits) - 1));
    Bytes bytes(static_cast<std::size_t>((n * bits + 7) / 8), 0);
    // Pack in uneven pieces, as threads would.
    std::int64_t pos = 0;
    for (std::int64_t step : {1, 7, 33, 100, 2, 500}) {
      const std::int64_t m = std::min(step, n - pos);
      kern::pack_codes(bytes.data(), pos, m, bits, codes.data() + pos);
      pos += m;
    }
    kern::pack_codes(bytes.data(), pos, n - pos, bits, codes.data() + pos);
    std::vector<std::uint32_t> c32(codes.begin(), codes.end());
    EXPECT_EQ(bytes, pack_bits(c32.data(), c32.size(), bits)) << bits;
    std::vector<std::uint16_t> back(n);
    kern::unpack_codes(bytes.data(), 0, 333, bits, back.data());
    kern::unpack_codes(bytes.data(), 333, n - 333, bits, back.data() + 333);
    EXPECT_EQ(back, codes) << bits;
  }
}

}  // namespace
}  // namespace qcast
