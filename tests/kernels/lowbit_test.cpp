// The low-bit products on packed ggml blocks: activation quantization equal to qcast's q8_0_ggml format
// (llama.cpp's quantize_row_q8_0_ref), the scalar reference against a double-precision product of the
// blocks as ggml dequantizes them, and the SIMD kernels within a few roundings of the reference on every
// target this machine supports, bit-identical across thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/simd.hpp"
#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/gguf.hpp"
#include "qcast/half.hpp"
#include "qcast/kernels/lowbit.hpp"
#include "qcast/quantize.hpp"

namespace qcast {
namespace {

using kern::LowbitMatrix;
using kern::LowbitType;
using kern::Q8Activations;

std::vector<float> random_values(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Random blocks as a GGUF would hold them: fp16 scales of several magnitudes, every code. Q4_MIN: ggml Q4_K
// blocks of random weights (llama.cpp's quantizer), unpacked.
LowbitMatrix random_matrix(LowbitType type, std::int64_t rows, std::int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  if (type == LowbitType::Q4_MIN) {
    const std::vector<float> v = random_values(static_cast<std::size_t>(rows * cols), seed, 0.05f);
    const gguf::TensorData t = gguf::make_tensor("w", v.data(), {rows, cols}, Format::parse("q4_k"));
    return kern::lowbit_q4_min(true, rows, cols, t.data.data(), t.data.size());
  }
  LowbitMatrix w;
  w.type = type;
  w.rows = rows;
  w.cols = cols;
  const std::size_t bytes = kern::lowbit_block_bytes(type);
  w.blocks.resize(static_cast<std::size_t>(rows * cols / 32) * bytes);
  for (std::size_t b = 0; b < w.blocks.size() / bytes; ++b) {
    std::uint8_t* p = w.blocks.data() + b * bytes;
    const float d = std::ldexp(1.0f + static_cast<float>(rng() % 1000) / 1000.0f, static_cast<int>(rng() % 12) - 14) *
                    ((rng() & 1) ? -1.0f : 1.0f);
    const std::uint16_t h = f32_to_f16(d);
    std::memcpy(p, &h, 2);
    for (std::size_t j = 2; j < bytes; ++j) p[j] = static_cast<std::uint8_t>(rng());
  }
  w.finish();
  return w;
}

TEST(Lowbit, ActivationsQuantizeAsTheQ8_0GgmlFormat) {
  // Normal values, a zero block, a block with one huge value, tiny values near fp16's subnormal scale.
  std::vector<float> x = random_values(32 * 40, 1);
  for (int j = 0; j < 32; ++j) x[32 + j] = 0.0f;
  x[64 + 5] = 3.0e4f;
  for (int j = 0; j < 32; ++j) x[96 + j] *= 1e-6f;
  // Ties: values that land exactly on k + 0.5 after scaling (a block with amax 127 has id 1), both signs.
  for (int j = 0; j < 32; ++j) x[128 + j] = (j == 0) ? 127.0f : static_cast<float>(j % 9 - 4) + ((j & 1) ? 0.5f : -0.5f);
  std::vector<float> want(x.size());
  fake_quant(Format::parse("q8_0_ggml"), x.data(), want.data(), {4, 320});
  struct Guard {
    ~Guard() { kern::force_target(0); }
  } guard;
  for (std::int64_t target : kern::available_targets()) {
    SCOPED_TRACE(kern::target_name(target));
    kern::force_target(target);
    Q8Activations q;
    kern::quantize_q8_0(x.data(), 4, 320, q);
    ASSERT_EQ(q.q.size(), x.size());
    ASSERT_EQ(q.d.size(), x.size() / 32);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const float got = static_cast<float>(q.q[i]) * q.d[i / 32];
      ASSERT_EQ(f32_bits(got), f32_bits(want[i])) << i << ": " << got << " vs " << want[i];
    }
    for (std::size_t b = 0; b < q.sum.size(); ++b) {
      std::int32_t sum = 0;
      for (int j = 0; j < 32; ++j) sum += q.q[b * 32 + static_cast<std::size_t>(j)];
      ASSERT_EQ(q.sum[b], sum) << b;
    }
  }
  Q8Activations q;
  EXPECT_THROW(kern::quantize_q8_0(x.data(), 1, 48, q), Error);
}

TEST(Lowbit, ReferenceIsTheProductOfTheDequantizedBlocks) {
  for (LowbitType type : {LowbitType::Q8_0, LowbitType::Q4_0, LowbitType::Q4_MIN}) {
    SCOPED_TRACE(kern::lowbit_name(type));
    const std::int64_t rows = 7, cols = 256, T = 3;
    const LowbitMatrix w = random_matrix(type, rows, cols, 2);
    const std::vector<float> xv = random_values(static_cast<std::size_t>(T * cols), 3);
    Q8Activations x;
    kern::quantize_q8_0(xv.data(), T, cols, x);
    std::vector<float> y(static_cast<std::size_t>(T * rows));
    kern::lowbit_gemm_reference(w, x, y.data());
    // The matrix's weights: ggml's own decoding of its blocks (checked against llama.cpp's), bit for bit.
    std::vector<float> wf(static_cast<std::size_t>(rows * cols));
    kern::lowbit_decode(w, wf.data());
    if (type != LowbitType::Q4_MIN) {
      std::vector<float> g(wf.size());
      gguf::dequantize_row(type == LowbitType::Q8_0 ? gguf::GgmlType::Q8_0 : gguf::GgmlType::Q4_0, w.blocks.data(), g.data(), rows * cols);
      ASSERT_EQ(0, std::memcmp(g.data(), wf.data(), g.size() * 4));
    }
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t r = 0; r < rows; ++r) {
        double exact = 0.0, mag = 0.0;
        for (std::int64_t j = 0; j < cols; ++j) {
          const double xj = static_cast<double>(x.q[static_cast<std::size_t>(t * cols + j)]) * x.d[static_cast<std::size_t>((t * cols + j) / 32)];
          exact += static_cast<double>(wf[static_cast<std::size_t>(r * cols + j)]) * xj;
          mag += std::fabs(static_cast<double>(wf[static_cast<std::size_t>(r * cols + j)]) * xj);
        }
        EXPECT_NEAR(y[static_cast<std::size_t>(t * rows + r)], exact, 1e-6 * mag + 1e-30) << t << "," << r;
      }
  }
}

// Sum over the row's blocks of |float(isum) * d_w * d_x|: the scale of the rounding errors. For Q4_MIN the
// product and the constant term are separate float terms, so their magnitudes add: |d q| + |c| <= |value| + 2|c|.
std::vector<double> magnitudes(const LowbitMatrix& w, const Q8Activations& x) {
  std::vector<float> wf(static_cast<std::size_t>(w.rows * w.cols));
  kern::lowbit_decode(w, wf.data());
  if (w.type == LowbitType::Q4_MIN)
    for (std::size_t i = 0; i < wf.size(); ++i) wf[i] = std::fabs(wf[i]) + 2 * std::fabs(w.c[i / 32]);
  std::vector<double> mag(static_cast<std::size_t>(x.rows * w.rows));
  for (std::int64_t t = 0; t < x.rows; ++t)
    for (std::int64_t r = 0; r < w.rows; ++r)
      for (std::int64_t j = 0; j < w.cols; ++j)
        mag[static_cast<std::size_t>(t * w.rows + r)] += std::fabs(static_cast<double>(wf[static_cast<std::size_t>(r * w.cols + j)]) *
                                                                   x.q[static_cast<std::size_t>(t * w.cols + j)] *
                                                                   x.d[static_cast<std::size_t>((t * w.cols + j) / 32)]);
  return mag;
}

// The ggml-block SIMD kernels (every Highway target this machine has; the tiles dropped so that
// lowbit_gemm uses them): within a few roundings of the reference, bit-identical across thread counts and
// between a batch and one row at a time.
TEST(Lowbit, SimdIsTheReferenceUpToRoundingOnEveryTargetAndIndependentOfThreadsAndBatch) {
  struct Guard {
    ~Guard() { kern::force_target(0); }
  } guard;
  for (LowbitType type : {LowbitType::Q8_0, LowbitType::Q4_0, LowbitType::Q4_MIN}) {
    // 4-row tiles and a ragged tail (rows % 4 == 3), one and several activation rows; an odd block count
    // (Q4_MIN comes from Q4_K, whose rows are whole 256-blocks: 24 blocks).
    const std::int64_t rows = 67, cols = type == LowbitType::Q4_MIN ? 256 * 3 : 32 * 13;
    LowbitMatrix w = random_matrix(type, rows, cols, 4);
    w.tiles.clear();
    for (std::int64_t T : {1, 5}) {
      const std::vector<float> xv = random_values(static_cast<std::size_t>(T * cols), 5, 3.0f);
      Q8Activations x;
      kern::quantize_q8_0(xv.data(), T, cols, x);
      std::vector<float> want(static_cast<std::size_t>(T * rows));
      kern::lowbit_gemm_reference(w, x, want.data());
      const std::vector<double> mag = magnitudes(w, x);
      for (std::int64_t target : kern::available_targets()) {
        kern::force_target(target);
        std::vector<float> first;
        for (int threads : {1, 2, 3}) {
          SCOPED_TRACE(std::string(kern::lowbit_name(type)) + " T=" + std::to_string(T) + " " + kern::target_name(target) +
                       " threads=" + std::to_string(threads));
          std::vector<float> y(want.size(), -1.0f);
          kern::lowbit_gemm(w, x, y.data(), threads);
          // Each of the 13 block terms and the sums of up to 16 lanes round once or twice: 64 float epsilons
          // of the row's magnitude bound the difference with room.
          for (std::size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 64 * 6e-8 * mag[i]) << i;
          if (first.empty()) first = y;
          for (std::size_t i = 0; i < y.size(); ++i) ASSERT_EQ(f32_bits(y[i]), f32_bits(first[i])) << i;
        }
        // One activation row at a time (generation) gives each token what the batch (prompt) gave it.
        for (std::int64_t t = 0; t < T; ++t) {
          Q8Activations one;
          kern::quantize_q8_0(xv.data() + t * cols, 1, cols, one);
          std::vector<float> y1(static_cast<std::size_t>(rows));
          kern::lowbit_gemm(w, one, y1.data(), 1);
          for (std::int64_t r = 0; r < rows; ++r)
            ASSERT_EQ(f32_bits(y1[static_cast<std::size_t>(r)]), f32_bits(first[static_cast<std::size_t>(t * rows + r)])) << t << "," << r;
        }
      }
    }
  }
}

// The tiled kernel (AVX-512 VNNI CPUs): the reference bit for bit, for a padded last group (rows % 16),
// every token-tile size (8, 4, 2, 1 and their mixes) and any thread count. Extreme codes included: Q8_0's
// -128 and +127 (the +128 offset's ends), every nibble, scales of both signs.
TEST(Lowbit, TiledKernelIsTheReferenceBitForBit) {
  if (!kern::lowbit_tiles_supported()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI: the tiled kernel is not used here";
  // The 8-bit types with half-block scales, with and without minimums: every tile size and thread count.
  for (const char* f : {"q6_k", "q2_k"}) {
    SCOPED_TRACE(f);
    for (std::int64_t rows : {16, 37}) {
      const std::int64_t cols = 512;
      const std::vector<float> v = random_values(static_cast<std::size_t>(rows * cols), 31, 0.05f);
      const gguf::TensorData t = gguf::make_tensor("w", v.data(), {rows, cols}, Format::parse(f));
      const LowbitMatrix w = kern::lowbit_from_ggml(gguf::type_name(t.type), rows, cols, t.data.data(), t.data.size());
      for (std::int64_t T : {1, 2, 3, 7, 8, 15}) {
        const std::vector<float> xv = random_values(static_cast<std::size_t>(T * cols), 32 + static_cast<unsigned>(T), 3.0f);
        Q8Activations x;
        kern::quantize_q8_0(xv.data(), T, cols, x);
        std::vector<float> want(static_cast<std::size_t>(T * rows));
        kern::lowbit_gemm_reference(w, x, want.data());
        for (int threads : {1, 3}) {
          std::vector<float> y(want.size());
          kern::lowbit_gemm(w, x, y.data(), threads);
          for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(f32_bits(y[i]), f32_bits(want[i])) << i << " T=" << T;
        }
      }
    }
  }
  for (LowbitType type : {LowbitType::Q8_0, LowbitType::Q4_0, LowbitType::Q4_MIN}) {
    for (std::int64_t rows : {16, 37, 5}) {
      const std::int64_t cols = type == LowbitType::Q4_MIN ? 512 : 32 * 11;
      LowbitMatrix w = random_matrix(type, rows, cols, 8 + static_cast<unsigned>(rows));
      if (type == LowbitType::Q8_0) {  // both ends of the code range in every row's first block
        for (std::int64_t r = 0; r < rows; ++r) {
          w.blocks[static_cast<std::size_t>(r * cols / 32) * 34 + 2] = 0x80;
          w.blocks[static_cast<std::size_t>(r * cols / 32) * 34 + 3] = 0x7f;
        }
        w.finish();
      }
      ASSERT_EQ(w.tiles.size(), static_cast<std::size_t>((rows + 15) / 16 * cols / 32) * kern::lowbit_tile_bytes(type));
      for (std::int64_t T : {1, 2, 3, 7, 8, 15, 21}) {
        SCOPED_TRACE(std::string(kern::lowbit_name(type)) + " rows=" + std::to_string(rows) + " T=" + std::to_string(T));
        const std::vector<float> xv = random_values(static_cast<std::size_t>(T * cols), 9 + static_cast<unsigned>(T), 3.0f);
        Q8Activations x;
        kern::quantize_q8_0(xv.data(), T, cols, x);
        std::vector<float> want(static_cast<std::size_t>(T * rows));
        kern::lowbit_gemm_reference(w, x, want.data());
        for (int threads : {1, 2, 3}) {
          // A sentinel past the end: the padded group's rows must not be written.
          std::vector<float> y(want.size() + 16, -7.0f);
          kern::lowbit_gemm(w, x, y.data(), threads);
          for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(f32_bits(y[i]), f32_bits(want[i])) << i << " threads=" << threads;
          for (std::size_t i = want.size(); i < y.size(); ++i) ASSERT_EQ(y[i], -7.0f) << "wrote past the output";
        }
      }
    }
  }
}

// Every other ggml type the kernels take, from blocks llama.cpp's own quantizers write (qcast's formats of
// them, bit for bit llama.cpp's: llamacpp.ggml_ref): unpacked, they decode to ggml's dequantized values bit
// for bit; the reference is the product of those values; the tiled kernel is the reference bit for bit.
TEST(Lowbit, EveryGgmlTypeUnpacksToGgmlsValuesAndRunsOnTheTiledKernel) {
  const struct {
    const char* format;
    const char* ggml;
    LowbitType type;
  } cases[] = {
      {"q5_0", "Q5_0", LowbitType::Q8_S16},          {"q5_1", "Q5_1", LowbitType::Q8_S16_MIN},
      {"q2_k", "Q2_K", LowbitType::Q8_S16_MIN},      {"q3_k", "Q3_K", LowbitType::Q8_S16},
      {"q5_k", "Q5_K", LowbitType::Q8_S16_MIN},      {"q6_k", "Q6_K", LowbitType::Q8_S16},
      {"iq4_nl", "IQ4_NL", LowbitType::Q8_S16},      {"mxfp4_ggml", "MXFP4", LowbitType::Q8_S16},
      {"nvfp4_ggml", "NVFP4", LowbitType::Q8_S16},   {"q4_k", "Q4_K", LowbitType::Q4_MIN},
      {"q4_1", "Q4_1", LowbitType::Q4_MIN},          {"q8_0_ggml", "Q8_0", LowbitType::Q8_0},
      {"q4_0_ggml", "Q4_0", LowbitType::Q4_0},
  };
  const std::int64_t rows = 21, cols = 512, T = 11;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.format);
    const std::vector<float> v = random_values(static_cast<std::size_t>(rows * cols), 21, 0.05f);
    const gguf::TensorData t = gguf::make_tensor("w", v.data(), {rows, cols}, Format::parse(c.format));
    ASSERT_EQ(gguf::type_name(t.type), c.ggml);
    ASSERT_TRUE(kern::lowbit_takes_ggml(c.ggml));
    const LowbitMatrix w = kern::lowbit_from_ggml(c.ggml, rows, cols, t.data.data(), t.data.size());
    ASSERT_EQ(w.type, c.type);
    std::vector<float> got(v.size()), want(v.size());
    kern::lowbit_decode(w, got.data());
    gguf::dequantize_row(t.type, t.data.data(), want.data(), rows * cols);
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(f32_bits(got[i]), f32_bits(want[i])) << i;
    const std::vector<float> xv = random_values(static_cast<std::size_t>(T * cols), 22, 2.0f);
    Q8Activations x;
    kern::quantize_q8_0(xv.data(), T, cols, x);
    std::vector<float> ref(static_cast<std::size_t>(T * rows));
    kern::lowbit_gemm_reference(w, x, ref.data());
    for (std::int64_t tt = 0; tt < T; ++tt)
      for (std::int64_t r = 0; r < rows; ++r) {
        double exact = 0.0, mag = 0.0;
        for (std::int64_t j = 0; j < cols; ++j) {
          const double p = static_cast<double>(want[static_cast<std::size_t>(r * cols + j)]) *
                           x.q[static_cast<std::size_t>(tt * cols + j)] * x.d[static_cast<std::size_t>((tt * cols + j) / 32)];
          exact += p;
          mag += std::fabs(p);
        }
        // The minimum's term is summed apart from the product's (value = d q - c): its magnitude counts too.
        if (w.type == LowbitType::Q8_S16_MIN || w.type == LowbitType::Q4_MIN)
          for (std::int64_t j = 0; j < cols; ++j) {
            const std::size_t k = static_cast<std::size_t>((r * cols + j) / (w.type == LowbitType::Q4_MIN ? 32 : 16));
            mag += 2 * std::fabs(static_cast<double>(w.c[k]) * x.q[static_cast<std::size_t>(tt * cols + j)] *
                                 x.d[static_cast<std::size_t>((tt * cols + j) / 32)]);
          }
        ASSERT_NEAR(ref[static_cast<std::size_t>(tt * rows + r)], exact, 64 * 6e-8 * mag + 1e-30) << tt << "," << r;
      }
    std::vector<float> y(ref.size() + 16, -3.0f);
    // The tiled kernel where the CPU has it, and the reference for the Q8_S16 types where it does not: both
    // the reference's bits. Q8_0 / Q4_0 / Q4_MIN without tiles run on the Highway kernels (their own test).
    kern::lowbit_gemm(w, x, y.data(), 2);
    const bool exact = !w.tiles.empty() || w.type == LowbitType::Q8_S16 || w.type == LowbitType::Q8_S16_MIN;
    for (std::size_t i = 0; exact && i < ref.size(); ++i) ASSERT_EQ(f32_bits(y[i]), f32_bits(ref[i])) << i;
    for (std::size_t i = ref.size(); i < y.size(); ++i) ASSERT_EQ(y[i], -3.0f);
  }
  EXPECT_FALSE(kern::lowbit_takes_ggml("F16"));
  EXPECT_FALSE(kern::lowbit_takes_ggml("IQ2_XS"));
  std::vector<std::uint8_t> bytes(100);
  EXPECT_THROW(kern::lowbit_from_ggml("Q6_K", 2, 256, bytes.data(), bytes.size()), Error);  // 2 blocks are 420 bytes
  EXPECT_THROW(kern::lowbit_from_ggml("Q5_0", 1, 48, bytes.data(), 33), Error);              // not whole blocks
  EXPECT_THROW(kern::lowbit_from_ggml("F32", 1, 25, bytes.data(), 100), Error);
}

TEST(Lowbit, MismatchedShapesAreErrors) {
  LowbitMatrix w = random_matrix(LowbitType::Q4_0, 4, 64, 6);
  Q8Activations x;
  const std::vector<float> xv = random_values(96, 7);
  kern::quantize_q8_0(xv.data(), 1, 96, x);
  std::vector<float> y(8);
  EXPECT_THROW(kern::lowbit_gemm(w, x, y.data()), Error);  // 96 activation columns, 64 weight columns
  w.blocks.pop_back();
  EXPECT_THROW(w.finish(), Error);  // a byte short
  kern::quantize_q8_0(xv.data(), 1, 64, x);
  EXPECT_THROW(kern::lowbit_gemm(w, x, y.data()), Error);
}

}  // namespace
}  // namespace qcast
