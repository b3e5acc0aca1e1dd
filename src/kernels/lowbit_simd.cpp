// Highway kernels of the low-bit products (qcast/kernels/lowbit.hpp). Each block's products are summed
// exactly into 32-bit lanes, converted to float and multiplied by the block's scale into float lanes that
// are summed once per row at the end: an order that differs from the scalar reference (one rounded term per
// block) within the bound the tests state, depends on the target's lane count, and never on the thread
// count or on how many activation rows come at once. x86 AVX2 / AVX-512 use vpmaddubsw tiles (TileX86);
// other targets widen to 16-bit lanes (DotRows). Q4_MIN's constant term, c_w * d_x * (sum of the activation
// block's codes), is summed in a scalar float per row and subtracted at the end.
#include "kernels/simd_targets.hpp"  // before any Highway header

#include <cstring>
#include <type_traits>

#include "hwy/base.h"
#if HWY_ARCH_X86
#include <immintrin.h>
#endif

#include "kernels/lowbit_simd.hpp"
#include "qcast/half.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/lowbit_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace qcast::kern::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <LowbitType kType>
constexpr std::size_t kBlockBytes = kType == LowbitType::Q8_0 ? 34 : kType == LowbitType::Q4_0 ? 18 : 16;
template <LowbitType kType>
constexpr std::size_t kCodesAt = kType == LowbitType::Q4_MIN ? 0 : 2;  // Q4_MIN's scale is not in the block

// At most 16 lanes of int16: one block's half (Q4_0) or a whole half-block step fits any target.
using D16 = hn::CappedTag<std::int16_t, 16>;
using D32 = hn::Repartition<std::int32_t, D16>;
using DI8 = hn::Rebind<std::int8_t, D16>;
using DU8 = hn::Rebind<std::uint8_t, D16>;
using DU16 = hn::RebindToUnsigned<D16>;
using V16 = hn::Vec<D16>;
using V32 = hn::Vec<D32>;
using DF = hn::Repartition<float, D16>;

constexpr std::size_t kPrefetchBytes = 512;

// The first block and scale of weight rows r .. r + R - 1.
template <int R>
HWY_INLINE void FirstBlocks(const LowbitMatrix& w, std::int64_t r, std::size_t bytes, const std::uint8_t** row, const float** dw) {
  const std::int64_t nb = w.cols / kLowbitBlock;
  for (int i = 0; i < R; ++i) {
    row[i] = w.blocks.data() + static_cast<std::size_t>(r + i) * static_cast<std::size_t>(nb) * bytes;
    dw[i] = w.d.data() + (r + i) * nb;
  }
}

HWY_INLINE V16 Widen(const std::int8_t* p) { return hn::PromoteTo(D16(), hn::LoadU(DI8(), p)); }

// One 32-block of R weight rows (w[i] at that block) against one activation block: each row's products
// summed pairwise into 32-bit lanes (exact), the lanes converted to float and added, times the block's
// scale d_w * d_x, into that row's float lanes `acc`.
template <LowbitType kType, int R>
HWY_INLINE void BlockDots(const std::uint8_t* const* w, const std::int8_t* xq, const float* scale, hn::Vec<DF>* acc) {
  const D16 d16;
  const D32 d32;
  const DF df;
  const std::size_t N = hn::Lanes(d16);
  V32 s0[R], s1[R];
  for (int i = 0; i < R; ++i) s0[i] = s1[i] = hn::Zero(d32);
  if constexpr (kType == LowbitType::Q8_0) {
    for (std::size_t k = 0; k < kLowbitBlock; k += N) {
      const V16 x = Widen(xq + k);
      for (int i = 0; i < R; ++i)
        s0[i] = hn::ReorderWidenMulAccumulate(d32, Widen(reinterpret_cast<const std::int8_t*>(w[i] + 2) + k), x, s0[i], s1[i]);
    }
  } else {
    const V16 mask = hn::Set(d16, 0x0f), eight = hn::Set(d16, kType == LowbitType::Q4_0 ? 8 : 0);
    for (std::size_t k = 0; k < kLowbitBlock / 2; k += N) {
      const V16 xlo = Widen(xq + k), xhi = Widen(xq + kLowbitBlock / 2 + k);
      for (int i = 0; i < R; ++i) {
        const V16 b = hn::BitCast(d16, hn::PromoteTo(DU16(), hn::LoadU(DU8(), w[i] + kCodesAt<kType> + k)));
        s0[i] = hn::ReorderWidenMulAccumulate(d32, hn::Sub(hn::And(b, mask), eight), xlo, s0[i], s1[i]);
        s0[i] = hn::ReorderWidenMulAccumulate(d32, hn::Sub(hn::ShiftRight<4>(b), eight), xhi, s0[i], s1[i]);
      }
    }
  }
  for (int i = 0; i < R; ++i) acc[i] = hn::MulAdd(hn::ConvertTo(df, hn::Add(s0[i], s1[i])), hn::Set(df, scale[i]), acc[i]);
}

// Rows [r, r + R) against activation row t.
template <LowbitType kType, int R>
HWY_INLINE void DotRows(const LowbitMatrix& w, const Q8Activations& x, std::int64_t r, std::int64_t t, float* y) {
  constexpr std::size_t kBytes = kBlockBytes<kType>;
  const DF df;
  const std::int64_t nb = w.cols / kLowbitBlock;
  const std::uint8_t* row[R];
  const float* dw[R];
  FirstBlocks<R>(w, r, kBytes, row, dw);
  const std::int8_t* xq = x.q.data() + t * w.cols;
  const float* xd = x.d.data() + t * nb;
  const std::int32_t* xs = x.sum.data() + t * nb;
  hn::Vec<DF> acc[R];
  for (int i = 0; i < R; ++i) acc[i] = hn::Zero(df);
  float scale[R], cacc[R] = {};
  constexpr std::int64_t kPrefetchEvery = kType == LowbitType::Q8_0 ? 1 : 3;  // about once per 64-byte line
  for (std::int64_t b = 0; b < nb; ++b) {
    // The weights stream from memory once per token: ask for them a few cache lines ahead (without this
    // the kernel ran at half its in-cache speed on a model larger than the caches).
    if ((b & kPrefetchEvery) == 0)
      for (int i = 0; i < R; ++i) hwy::Prefetch(row[i] + kPrefetchBytes);
    for (int i = 0; i < R; ++i) scale[i] = dw[i][b] * xd[b];
    BlockDots<kType, R>(row, xq + b * kLowbitBlock, scale, acc);
    if constexpr (kType == LowbitType::Q4_MIN)
      for (int i = 0; i < R; ++i) cacc[i] += w.c[static_cast<std::size_t>((r + i) * nb + b)] * xd[b] * static_cast<float>(xs[b]);
    for (int i = 0; i < R; ++i) row[i] += kBytes;
  }
  for (int i = 0; i < R; ++i) y[t * w.rows + r + i] = hn::GetLane(hn::SumOfLanes(df, acc[i])) - cacc[i];
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
// AVX2 and AVX-512 targets: llama.cpp's way, 32 products a block in one u8 x i8 multiply (vpmaddubsw) and
// one pairwise add (vpmaddwd). Q4_0's nibbles go in unsigned (0..15) and the offset of 8 comes back as
// -8 * the activation block's code sum in lane 0; Q8_0 moves the weight's sign onto the activation (whose
// codes stay within +-127, so the sign flip cannot overflow). A tile of R weight rows x C activation rows
// unpacks each weight block once for C tokens (prompt processing) and loads each activation block once for
// R rows. Every (row, token) pair goes through the same operations in the same order whatever the tile, so
// the result depends neither on the tiling nor on the thread count.
template <LowbitType kType, int R, int C>
HWY_INLINE void TileX86(const LowbitMatrix& w, const Q8Activations& x, std::int64_t r, std::int64_t t, float* y) {
  constexpr std::size_t kBytes = kBlockBytes<kType>;
  const std::int64_t nb = w.cols / kLowbitBlock;
  const std::uint8_t* row[R];
  const float* dw[R];
  FirstBlocks<R>(w, r, kBytes, row, dw);
  const std::int8_t* xq[C];
  const float* xd[C];
  const std::int32_t* xs[C];
  for (int c = 0; c < C; ++c) {
    xq[c] = x.q.data() + (t + c) * w.cols;
    xd[c] = x.d.data() + (t + c) * nb;
    xs[c] = x.sum.data() + (t + c) * nb;
  }
  const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0f);
  __m256 acc[R][C];
  float cacc[R][C] = {};
  const float* cw[R];
  for (int i = 0; i < R; ++i) cw[i] = kType == LowbitType::Q4_MIN ? w.c.data() + (r + i) * nb : nullptr;
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) acc[i][c] = _mm256_setzero_ps();
  constexpr std::int64_t kPrefetchEvery = kType == LowbitType::Q8_0 ? 1 : 3;
  for (std::int64_t b = 0; b < nb; ++b) {
    if ((b & kPrefetchEvery) == 0)
      for (int i = 0; i < R; ++i) hwy::Prefetch(row[i] + kPrefetchBytes);
    __m256i xv[C], offset[C];
    for (int c = 0; c < C; ++c) {
      xv[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[c] + b * kLowbitBlock));
      if constexpr (kType == LowbitType::Q4_0) offset[c] = _mm256_setr_epi32(-8 * xs[c][b], 0, 0, 0, 0, 0, 0, 0);
    }
    for (int i = 0; i < R; ++i) {
      __m256i wv;
      if constexpr (kType != LowbitType::Q8_0) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[i] + kCodesAt<kType>));
        wv = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), low4);
      } else {
        wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row[i] + 2));
      }
      const __m256i wabs = kType == LowbitType::Q8_0 ? _mm256_abs_epi8(wv) : wv;
      for (int c = 0; c < C; ++c) {
        __m256i p;
        if constexpr (kType == LowbitType::Q4_0)
          p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv[c]), ones), offset[c]);
        else if constexpr (kType == LowbitType::Q4_MIN)
          p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv[c]), ones);
        else
          p = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv[c], wv)), ones);
        acc[i][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw[i][b] * xd[c][b]), acc[i][c]);
        if constexpr (kType == LowbitType::Q4_MIN) cacc[i][c] += cw[i][b] * xd[c][b] * static_cast<float>(xs[c][b]);
      }
      row[i] += kBytes;
    }
  }
  for (int i = 0; i < R; ++i)
    for (int c = 0; c < C; ++c) {
      const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc[i][c]), _mm256_extractf128_ps(acc[i][c], 1));
      const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
      y[(t + c) * w.rows + r + i] = _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1))) - cacc[i][c];
    }
}

template <LowbitType kType>
void Rows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1) {
  const std::int64_t T = x.rows;
  std::int64_t r = r0;
  if (T == 1) {  // generation: four rows share each activation block
    for (; r + 4 <= r1; r += 4) TileX86<kType, 4, 1>(w, x, r, 0, y);
    for (; r < r1; ++r) TileX86<kType, 1, 1>(w, x, r, 0, y);
    return;
  }
  auto tokens = [&](auto rows_tag, std::int64_t rr) {  // prompt processing: 4 tokens share each weight block
    constexpr int kR = decltype(rows_tag)::value;
    std::int64_t t = 0;
    for (; t + 4 <= T; t += 4) TileX86<kType, kR, 4>(w, x, rr, t, y);
    for (; t < T; ++t) TileX86<kType, kR, 1>(w, x, rr, t, y);
  };
  for (; r + 2 <= r1; r += 2) tokens(std::integral_constant<int, 2>(), r);
  for (; r < r1; ++r) tokens(std::integral_constant<int, 1>(), r);
}
#else
template <LowbitType kType>
void Rows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1) {
  constexpr int kTile = 4;
  std::int64_t r = r0;
  for (; r + kTile <= r1; r += kTile)
    for (std::int64_t t = 0; t < x.rows; ++t) DotRows<kType, kTile>(w, x, r, t, y);
  for (; r < r1; ++r)
    for (std::int64_t t = 0; t < x.rows; ++t) DotRows<kType, 1>(w, x, r, t, y);
}
#endif

// quantize_row_q8_0_ref per 32-block, in vector lanes: the block's largest magnitude (exact in any
// order), d = amax / 127 and its inverse as the scalar code computes them, codes roundf(x * id) (rounding
// half away from zero, built from Trunc since Round ties to even), their sum and the first half's sum.
// Bit for bit the scalar.
void QuantizeQ8Blocks(const float* x, std::int64_t nblocks, std::int8_t* q, float* dout, std::int32_t* sums, std::int32_t* sums16) {
  using DFq = hn::CappedTag<float, 16>;
  using DIq = hn::RebindToSigned<DFq>;
  using DI8q = hn::Rebind<std::int8_t, DFq>;
  const DFq df;
  const DIq di;
  const DI8q di8;
  const std::size_t N = hn::Lanes(df);
  const auto half = hn::Set(df, 0.5f), one = hn::Set(df, 1.0f);
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const float* v = x + b * kLowbitBlock;
    auto m = hn::Zero(df);
    for (std::size_t k = 0; k < kLowbitBlock; k += N) m = hn::Max(m, hn::Abs(hn::LoadU(df, v + k)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, m));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    dout[b] = f16_to_f32(f32_to_f16(d));
    const auto vid = hn::Set(df, id);
    auto s = hn::Zero(di);
    for (std::size_t k = 0; k < kLowbitBlock; k += N) {
      const auto p = hn::Mul(hn::LoadU(df, v + k), vid);
      const auto t = hn::Trunc(p);
      const auto r = hn::Add(t, hn::IfThenElseZero(hn::Ge(hn::Abs(hn::Sub(p, t)), half), hn::CopySign(one, p)));
      const auto ri = hn::ConvertTo(di, r);
      hn::StoreU(hn::DemoteTo(di8, ri), di8, q + b * kLowbitBlock + static_cast<std::int64_t>(k));
      s = hn::Add(s, ri);
      if (k + N == kLowbitBlock / 2) sums16[b] = hn::GetLane(hn::SumOfLanes(di, s));  // N divides 16
    }
    sums[b] = hn::GetLane(hn::SumOfLanes(di, s));
  }
}

void LowbitRows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1) {
  if (w.type == LowbitType::Q8_0)
    Rows<LowbitType::Q8_0>(w, x, y, r0, r1);
  else if (w.type == LowbitType::Q4_0)
    Rows<LowbitType::Q4_0>(w, x, y, r0, r1);
  else
    Rows<LowbitType::Q4_MIN>(w, x, y, r0, r1);
}

}  // namespace qcast::kern::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qcast::kern {

HWY_EXPORT(LowbitRows);
HWY_EXPORT(QuantizeQ8Blocks);

void quantize_q8_blocks(const float* x, std::int64_t nblocks, std::int8_t* q, float* d, std::int32_t* sums, std::int32_t* sums16) {
  HWY_DYNAMIC_DISPATCH(QuantizeQ8Blocks)(x, nblocks, q, d, sums, sums16);
}

void lowbit_rows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1) {
  HWY_DYNAMIC_DISPATCH(LowbitRows)(w, x, y, r0, r1);
}

}  // namespace qcast::kern
#endif
