#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "ptq_support.hpp"
#include "qcast/ptq/gptq.hpp"
#include "qcast/ptq/rtn.hpp"
#include "qcast/ptq/search.hpp"

using namespace qcast;
using namespace qcast::ptq;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr std::int64_t kDim = 128, kTokens = 512;
#else
constexpr std::int64_t kDim = 512, kTokens = 2048;
#endif

struct Layer {
  std::vector<float> W, X;
  HessianAccumulator acc{kDim};
  Layer() {
    W = test::randn(kDim * kDim, 7, 0.05f);
    X = test::correlated_inputs(kTokens, kDim, 11);
    // Streamed in batches, as calibration is.
    for (std::int64_t t = 0; t < kTokens; t += 256) acc.add(X.data() + t * kDim, std::min<std::int64_t>(256, kTokens - t));
  }
};

const Layer& layer() {
  static Layer l;
  return l;
}

void expect_decodes_to_values(const QuantizedWeight& q) {
  const Encoded e = q.encode();
  std::vector<float> back(q.values.size());
  decode(e, back.data());
  for (std::size_t i = 0; i < back.size(); ++i) ASSERT_EQ(back[i], q.values[i]) << q.format.name() << " at " << i;
}

}  // namespace

TEST(PtqHessian, StreamingEqualsOneShot) {
  const auto& L = layer();
  HessianAccumulator once(kDim);
  once.add(L.X.data(), kTokens);
  double maxd = 0, maxv = 0;
  for (std::size_t i = 0; i < once.H().size(); ++i) {
    maxd = std::max(maxd, static_cast<double>(std::fabs(once.H()[i] - L.acc.H()[i])));
    maxv = std::max(maxv, static_cast<double>(std::fabs(once.H()[i])));
  }
  EXPECT_LT(maxd, 1e-4 * maxv);
  EXPECT_EQ(L.acc.samples(), kTokens);
}

TEST(PtqRtn, EqualsFakeQuant) {
  const auto& L = layer();
  for (const char* name : {"int4/g32", "mxfp4", "nvfp4", "int4/g32/asym", "int8/ch0", "nf4@fp16/g64", "e4m3"}) {
    const Format f = Format::parse(name);
    const auto q = rtn(f, L.W.data(), kDim, kDim);
    std::vector<float> fq(L.W.size());
    fake_quant(f, L.W.data(), fq.data(), Shape{kDim, kDim});
    for (std::size_t i = 0; i < fq.size(); ++i) ASSERT_EQ(fq[i], q.values[i]) << name;
    expect_decodes_to_values(q);
  }
}

TEST(PtqRtn, SearchedGgmlTypesDecodeTheirBlocksToTheFakeQuantBits) {
  // rtn of llama.cpp's searched types decodes the blocks it found instead of searching twice: the values
  // must still be fake_quant's, bit for bit (signs of zeros included), whole blocks or fallback rows.
  const auto& L = layer();
  for (const char* name : {"q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "mxfp4_ggml", "nvfp4_ggml"})
    for (std::int64_t cols : {256, 64}) {  // whole 256-blocks, and rows of 32-blocks (the k-quants' fallback types)
      SCOPED_TRACE(std::string(name) + " cols=" + std::to_string(cols));
      const Format f = Format::parse(name);
      const std::int64_t rows = static_cast<std::int64_t>(L.W.size()) / cols;  // the first rows * cols weights
      const auto q = rtn(f, L.W.data(), rows, cols, 2);
      std::vector<float> fq(static_cast<std::size_t>(rows * cols));
      fake_quant(f, L.W.data(), fq.data(), Shape{rows, cols});
      ASSERT_EQ(std::memcmp(fq.data(), q.values.data(), fq.size() * sizeof(float)), 0);
      expect_decodes_to_values(q);
    }
}

TEST(PtqRtn, ThreadedFastPathEqualsTheReference) {
  // The threaded overload (encode's SIMD kernels) against the scalar reference: values, scale codes, tensor
  // scale and packed bytes, bit for bit, at 1 and 3 threads; its kept codes are what encode() returns.
  const auto& L = layer();
  for (const char* name : {"int4/g32", "mxfp4", "nvfp4", "int4/g32/asym", "int8/ch0", "nf4@fp16/g64", "e4m3", "int4@fp16/b32",
                           "q4_0_ggml", "mxfp6_e2m3", "int8@fp32/tensor"}) {
    SCOPED_TRACE(name);
    const Format f = Format::parse(name);
    const auto want = rtn(f, L.W.data(), kDim, kDim);
    const Encoded we = want.encode();
    for (int threads : {1, 3}) {
      const auto got = rtn(f, L.W.data(), kDim, kDim, threads);
      ASSERT_EQ(got.values.size(), want.values.size());
      EXPECT_EQ(std::memcmp(got.values.data(), want.values.data(), want.values.size() * sizeof(float)), 0);
      EXPECT_EQ(got.scale_codes, want.scale_codes);
      EXPECT_EQ(got.zeros, want.zeros);
      EXPECT_EQ(std::memcmp(&got.tensor_scale, &want.tensor_scale, sizeof(float)), 0);
      const Encoded ge = got.encode();
      EXPECT_EQ(ge.codes, we.codes);
      EXPECT_EQ(ge.scales, we.scales);
      EXPECT_EQ(ge.zeros, we.zeros);
      expect_decodes_to_values(got);
    }
  }
  // Kept codes that no longer decode to the values (a caller changed them) are not returned.
  auto q = rtn(Format::parse("int4/g32"), L.W.data(), kDim, kDim, 2);
  ASSERT_NE(q.packed, nullptr);
  q.values[5] = 0.0f;
  expect_decodes_to_values(q);
}

TEST(PtqHessian, ErrorIsThreadIndependentAndZeroMeansNoWeight) {
  const auto& L = layer();
  const auto q = rtn(Format::parse("int4/g32"), L.W.data(), kDim, kDim);
  const double e1 = hessian_error(L.W.data(), q.values.data(), kDim, kDim, L.acc.H().data(), 1);
  EXPECT_EQ(e1, hessian_error(L.W.data(), q.values.data(), kDim, kDim, L.acc.H().data(), 3));
  const std::vector<float> zero(L.W.size(), 0.0f);
  EXPECT_EQ(hessian_error(L.W.data(), zero.data(), kDim, kDim, L.acc.H().data(), 2),
            hessian_error(L.W.data(), nullptr, kDim, kDim, L.acc.H().data(), 1));
  EXPECT_GT(e1, 0.0);
  // With few inputs the error comes from the inputs themselves: the same value as from H, to float rounding.
  HessianAccumulator few(kDim);
  few.add(L.X.data(), kDim / 8);
  const double from_x = few.error(L.W.data(), q.values.data(), kDim, 1);
  const double from_h = hessian_error(L.W.data(), q.values.data(), kDim, kDim, few.H().data(), 1);
  EXPECT_NEAR(from_x, from_h, 1e-4 * from_h);
  EXPECT_EQ(from_x, few.error(L.W.data(), q.values.data(), kDim, 3));
  few.add(L.X.data(), kDim / 2);  // past dim / 4 inputs: H again
  EXPECT_EQ(few.error(L.W.data(), q.values.data(), kDim, 2), hessian_error(L.W.data(), q.values.data(), kDim, kDim, few.H().data(), 1));
}

TEST(PtqGptq, BeatsRtnOnOutputError) {
  const auto& L = layer();
  int k = -1;
  for (const char* name : {"int4/g32", "mxfp4", "nvfp4", "int3/g32", "int4/g32/asym", "int8/ch0", "nf4@fp16/g64"}) {
    const Format f = Format::parse(name);
    const auto r = rtn(f, L.W.data(), kDim, kDim);
    const double e_rtn = output_error(L.W.data(), r.values.data(), kDim, kDim, L.X.data(), kTokens);
    ++k;
    // The four acceptance formats in every mode; the others in one mode each.
    for (int mode = 0; mode < 3; ++mode) {
      if (k >= 4 && mode != k % 3) continue;
      GptqOptions o;
      o.act_order = mode >= 1;
      o.static_groups = mode == 2;
      o.threads = 2;
      const auto g = gptq(f, L.W.data(), kDim, kDim, L.acc.H().data(), o);
      const double e = output_error(L.W.data(), g.q.values.data(), kDim, kDim, L.X.data(), kTokens);
      std::printf("  gptq %-14s act_order=%d static=%d  ||WX-QX||^2 / rtn = %.3f\n", name, o.act_order, o.static_groups, e / e_rtn);
      EXPECT_LT(e, 0.8 * e_rtn) << name << " mode " << mode << " gptq " << e << " rtn " << e_rtn;
      expect_decodes_to_values(g.q);
    }
  }
}

TEST(PtqGptq, ThreadCountDoesNotChangeResult) {
  const auto& L = layer();
  const Format f = Format::parse("mxfp4");
  GptqOptions o;
  o.act_order = true;
  o.threads = 1;
  const auto a = gptq(f, L.W.data(), kDim, kDim, L.acc.H().data(), o);
  o.threads = 2;
  const auto b = gptq(f, L.W.data(), kDim, kDim, L.acc.H().data(), o);
  // BLAS may reorder sums across thread counts; the quantized grids must agree almost everywhere.
  std::size_t diff = 0;
  for (std::size_t i = 0; i < a.q.values.size(); ++i) diff += a.q.values[i] != b.q.values[i];
  EXPECT_LT(diff, a.q.values.size() / 100);
}

TEST(PtqGptq, ActOrderPermutationIsUndone) {
  // With independent inputs H is diagonal, so GPTQ has nothing to propagate and must equal RTN
  // element for element, in the original column order, whatever order it processes columns in.
  const std::int64_t n = 64, rows = 16;
  auto W = test::randn(rows * n, 3);
  std::vector<float> H(n * n, 0.0f);
  for (std::int64_t j = 0; j < n; ++j) H[j * n + j] = 0.5f + static_cast<float>((j * 37) % n);
  for (const char* name : {"int4/ch0", "mxfp4", "int4/g16", "e2m1", "int4@fp16/t8x16", "int4/g16/ax0"}) {
    const Format f = Format::parse(name);
    GptqOptions o;
    o.act_order = true;
    o.static_groups = true;
    o.block_size = 16;
    const auto g = gptq(f, W.data(), rows, n, H.data(), o);
    const auto r = rtn(f, W.data(), rows, n);
    ASSERT_EQ(g.perm.size(), static_cast<std::size_t>(n));
    for (std::int64_t k = 1; k < n; ++k) EXPECT_GE(H[g.perm[k - 1] * n + g.perm[k - 1]], H[g.perm[k] * n + g.perm[k]]);
    EXPECT_NE(g.perm[0], 0);
    for (std::size_t i = 0; i < W.size(); ++i) ASSERT_EQ(g.q.values[i], r.values[i]) << name << " at " << i;
  }
}

TEST(PtqGptq, DeadColumnsAreZeroed) {
  const std::int64_t n = 64, rows = 32, tokens = 256;
  auto W = test::randn(rows * n, 5);
  auto X = test::correlated_inputs(tokens, n, 9);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t j : {3, 40, 63}) X[t * n + j] = 0.0f;
  HessianAccumulator acc(n);
  acc.add(X.data(), tokens);
  const auto g = gptq(Format::parse("int4/g32"), W.data(), rows, n, acc.H().data());
  EXPECT_EQ(g.dead, (std::vector<std::int64_t>{3, 40, 63}));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j : {3, 40, 63}) EXPECT_EQ(g.q.values[r * n + j], 0.0f);
  for (float v : g.q.values) ASSERT_TRUE(std::isfinite(v));
}

TEST(PtqGptq, StaticGroupsEqualPrecomputedScales) {
  const auto& L = layer();
  for (const char* name : {"mxfp4", "nvfp4", "int4/g32", "int4/g32/asym"}) {
    const Format f = Format::parse(name);
    const auto r = rtn(f, L.W.data(), kDim, kDim);  // group_params of the unquantized W
    GptqOptions o;
    o.act_order = true;
    o.static_groups = true;
    const auto g = gptq(f, L.W.data(), kDim, kDim, L.acc.H().data(), o);
    EXPECT_EQ(g.q.scale_codes, r.scale_codes) << name;
    EXPECT_EQ(g.q.zeros, r.zeros) << name;
    EXPECT_EQ(g.q.tensor_scale, r.tensor_scale) << name;
  }
}

TEST(PtqSearch, BeatsRtnAndStaysRepresentable) {
  const auto& L = layer();
  InputStats st(kDim);
  st.add(L.X.data(), kTokens);
  const auto imp = st.second_moment();
  for (const char* name : {"int4/g32", "mxfp4", "nvfp4", "int3/g32", "int4/g32/asym", "nf4@fp16/g64", "mxfp6_e2m3"}) {
    const Format f = Format::parse(name);
    const auto r = rtn(f, L.W.data(), kDim, kDim);
    SearchOptions so;
    so.threads = 2;
    const auto s = search(f, L.W.data(), kDim, kDim, imp.data(), so);
    const double e_rtn = output_error(L.W.data(), r.values.data(), kDim, kDim, L.X.data(), kTokens);
    const double e_s = output_error(L.W.data(), s.values.data(), kDim, kDim, L.X.data(), kTokens);
    std::printf("  search %-14s ||WX-QX||^2 / rtn = %.3f\n", name, e_s / e_rtn);
    EXPECT_LT(e_s, e_rtn) << name;
    expect_decodes_to_values(s);
  }
}

TEST(PtqGptq, LazyBatchesEqualColumnByColumn) {
  // Lazy batching only reorders the same updates: batch widths 1, 7 and 128 give the same result
  // (up to float rounding flipping a rare rounding tie).
  const std::int64_t n = 96, rows = 48, tokens = 400;
  auto W = test::randn(rows * n, 51, 0.05f);
  auto X = test::correlated_inputs(tokens, n, 52);
  HessianAccumulator acc(n);
  acc.add(X.data(), tokens);
  for (const char* name : {"int4/g32", "mxfp4"}) {
    GptqOptions o;
    o.act_order = true;
    o.block_size = 1;
    const auto a = gptq(Format::parse(name), W.data(), rows, n, acc.H().data(), o);
    for (int bs : {7, 128}) {
      o.block_size = bs;
      o.static_groups = true;  // dynamic groups legitimately depend on the batch start
      const auto b = gptq(Format::parse(name), W.data(), rows, n, acc.H().data(), o);
      o.block_size = 1;
      const auto a1 = gptq(Format::parse(name), W.data(), rows, n, acc.H().data(), o);
      o.static_groups = false;
      std::size_t diff = 0;
      for (std::size_t i = 0; i < W.size(); ++i) diff += a1.q.values[i] != b.q.values[i];
      EXPECT_LE(diff, W.size() / 200) << name << " block " << bs;
      EXPECT_NEAR(a1.loss, b.loss, 1e-3 * a1.loss) << name;
    }
    EXPECT_GT(a.loss, 0);
  }
}

TEST(PtqGptq, MatchesNaiveInverseHessianUpdates) {
  // Independent double-precision GPTQ without the Cholesky reformulation: after quantizing column q,
  // w -= (w_q - Q(w_q)) / Hinv_qq * Hinv[q, :] and Hinv -= Hinv[:, q] Hinv[q, :] / Hinv_qq (OBS update).
  const std::int64_t n = 64, rows = 32, tokens = 300;
  auto W = test::randn(rows * n, 61, 0.05f);
  auto X = test::correlated_inputs(tokens, n, 62);
  HessianAccumulator acc(n);
  acc.add(X.data(), tokens);
  const Format f = Format::parse("int4/ch0");
  const auto rq = rtn(f, W.data(), rows, n);  // per-row scales from the unquantized W (static)
  std::vector<double> H(acc.H().begin(), acc.H().end());
  double md = 0;
  for (std::int64_t j = 0; j < n; ++j) md += H[j * n + j];
  for (std::int64_t j = 0; j < n; ++j) H[j * n + j] += 0.01 * md / n;
  // Invert by Gauss-Jordan.
  std::vector<double> A = H, Hi(n * n, 0.0);
  for (std::int64_t j = 0; j < n; ++j) Hi[j * n + j] = 1;
  for (std::int64_t c = 0; c < n; ++c) {
    const double p = A[c * n + c];
    for (std::int64_t k = 0; k < n; ++k) A[c * n + k] /= p, Hi[c * n + k] /= p;
    for (std::int64_t r = 0; r < n; ++r)
      if (r != c) {
        const double m = A[r * n + c];
        for (std::int64_t k = 0; k < n; ++k) A[r * n + k] -= m * A[c * n + k], Hi[r * n + k] -= m * Hi[c * n + k];
      }
  }
  std::vector<float> Qn(rows * n);
  for (std::int64_t r = 0; r < rows; ++r) {
    std::vector<double> w(W.begin() + r * n, W.begin() + (r + 1) * n), Hr = Hi;
    const float s = rq.group_scale(r);
    for (std::int64_t q = 0; q < n; ++q) {
      const float qv = f.elem().quantize(static_cast<float>(w[q]) / s) * s;
      Qn[r * n + q] = qv;
      const double d = Hr[q * n + q], e = (w[q] - qv) / d;
      for (std::int64_t k = q; k < n; ++k) w[k] -= e * Hr[q * n + k];
      std::vector<double> row(Hr.begin() + q * n, Hr.begin() + (q + 1) * n);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < n; ++k) Hr[i * n + k] -= row[i] * row[k] / d;
    }
  }
  GptqOptions o;
  o.static_groups = true;
  o.block_size = 16;
  const auto g = gptq(f, W.data(), rows, n, acc.H().data(), o);
  std::size_t diff = 0;
  for (std::size_t i = 0; i < Qn.size(); ++i) diff += Qn[i] != g.q.values[i];
  EXPECT_LE(diff, Qn.size() / 100) << "of " << Qn.size();
}
