// Highway kernels of the low-bit products (qcast/kernels/lowbit.hpp): each block's products in 16-bit lanes,
// summed pairwise into 32-bit lanes (pmaddwd-style: exact), converted to float and multiplied by the block's
// scale into float lanes that are summed once per row at the end. That order differs from the scalar
// reference (one rounded term per block), within the bound the tests state; it depends on the target's
// lane count but never on the thread count. Four weight rows share each activation block's loads.
#include "kernels/simd_targets.hpp"  // before any Highway header

#include <cstring>

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
    const V16 mask = hn::Set(d16, 0x0f), eight = hn::Set(d16, 8);
    for (std::size_t k = 0; k < kLowbitBlock / 2; k += N) {
      const V16 xlo = Widen(xq + k), xhi = Widen(xq + kLowbitBlock / 2 + k);
      for (int i = 0; i < R; ++i) {
        const V16 b = hn::BitCast(d16, hn::PromoteTo(DU16(), hn::LoadU(DU8(), w[i] + 2 + k)));
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
  constexpr std::size_t kBytes = kType == LowbitType::Q8_0 ? 34 : 18;
  const DF df;
  const std::int64_t nb = w.cols / kLowbitBlock;
  const std::uint8_t* row[R];
  const float* dw[R];
  for (int i = 0; i < R; ++i) {
    row[i] = w.blocks.data() + static_cast<std::size_t>(r + i) * static_cast<std::size_t>(nb) * kBytes;
    dw[i] = w.d.data() + (r + i) * nb;
  }
  const std::int8_t* xq = x.q.data() + t * w.cols;
  const float* xd = x.d.data() + t * nb;
  hn::Vec<DF> acc[R];
  for (int i = 0; i < R; ++i) acc[i] = hn::Zero(df);
  float scale[R];
  constexpr std::int64_t kPrefetchEvery = kType == LowbitType::Q8_0 ? 1 : 3;  // about once per 64-byte line
  for (std::int64_t b = 0; b < nb; ++b) {
    // The weights stream from memory once per token: ask for them a few cache lines ahead (without this
    // the kernel ran at half its in-cache speed on a model larger than the caches).
    if ((b & kPrefetchEvery) == 0)
      for (int i = 0; i < R; ++i) hwy::Prefetch(row[i] + kPrefetchBytes);
    for (int i = 0; i < R; ++i) scale[i] = dw[i][b] * xd[b];
    BlockDots<kType, R>(row, xq + b * kLowbitBlock, scale, acc);
    for (int i = 0; i < R; ++i) row[i] += kBytes;
  }
  for (int i = 0; i < R; ++i) y[t * w.rows + r + i] = hn::GetLane(hn::SumOfLanes(df, acc[i]));
}

template <LowbitType kType>
void Rows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1) {
  constexpr int kTile = 4;
  std::int64_t r = r0;
  for (; r + kTile <= r1; r += kTile)
    for (std::int64_t t = 0; t < x.rows; ++t) DotRows<kType, kTile>(w, x, r, t, y);
  for (; r < r1; ++r)
    for (std::int64_t t = 0; t < x.rows; ++t) DotRows<kType, 1>(w, x, r, t, y);
}

void LowbitRows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1) {
  if (w.type == LowbitType::Q8_0)
    Rows<LowbitType::Q8_0>(w, x, y, r0, r1);
  else
    Rows<LowbitType::Q4_0>(w, x, y, r0, r1);
}

}  // namespace qcast::kern::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qcast::kern {

HWY_EXPORT(LowbitRows);

void lowbit_rows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1) {
  HWY_DYNAMIC_DISPATCH(LowbitRows)(w, x, y, r0, r1);
}

}  // namespace qcast::kern
#endif
