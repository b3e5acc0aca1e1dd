// Direct 2-D convolution for small kernels (Highway, dispatched at run time): stride 1, no padding, no
// dilation, one group. Output rows are vectors over the output width; every output value is the bias
// plus the fused multiply-add chain over (channel, kernel row, kernel column) in that order, so results
// do not depend on the thread count. For LeNet-sized layers (C*kh*kw <= a few hundred, rows of 10-28
// values) this beats im2col + sgemm, whose copies and per-call packing dominated those layers.
#include "kernels/simd_targets.hpp"  // before any Highway header

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "qcast/kernels/conv_direct.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/conv_direct.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/simd_partial-inl.h"

HWY_BEFORE_NAMESPACE();
namespace qcast::kern::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

using qcast::simd::HWY_NAMESPACE::LoadFirst;
using qcast::simd::HWY_NAMESPACE::StoreFirst;

// A tile of MB output channels x PB output rows x one vector of output columns: MB * PB independent
// accumulators (a single chain would wait on the FMA latency), each x vector loaded once for MB channels
// and each weight broadcast once for PB rows.
template <int MB, int PB, bool kFull>
HWY_INLINE void Tile(const ConvDirectShape& s, const float* x, const float* w, const float* bias, float* y,
                     std::int64_t m0, std::int64_t p0, std::int64_t q0, std::int64_t cnt) {
  const D d;
  const std::int64_t K = s.C * s.kh * s.kw;
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // LoadFirst with the mask built once per tile instead of once per load (the inner loop's only load).
  const auto mask = hn::FirstN(d, static_cast<std::size_t>(cnt));
  auto load = [&](const float* p) { return kFull ? hn::LoadU(d, p) : hn::MaskedLoad(mask, d, p); };
#else
  auto load = [&](const float* p) { return kFull ? hn::LoadU(d, p) : LoadFirst(p, static_cast<std::size_t>(cnt)); };
#endif
  V acc[MB][PB];
  for (int i = 0; i < MB; ++i)
    for (int r = 0; r < PB; ++r) acc[i][r] = hn::Zero(d);
  for (std::int64_t c = 0; c < s.C; ++c)
    for (std::int64_t ki = 0; ki < s.kh; ++ki) {
      const float* xr = x + (c * s.H + p0 + ki) * s.W + q0;
      const float* wr = w + m0 * K + (c * s.kh + ki) * s.kw;
      for (std::int64_t kj = 0; kj < s.kw; ++kj) {
        V xv[PB];
        for (int r = 0; r < PB; ++r) xv[r] = load(xr + r * s.W + kj);
        for (int i = 0; i < MB; ++i) {
          const V wv = hn::Set(d, wr[i * K + kj]);
          for (int r = 0; r < PB; ++r) acc[i][r] = hn::MulAdd(wv, xv[r], acc[i][r]);
        }
      }
    }
  for (int i = 0; i < MB; ++i)
    for (int r = 0; r < PB; ++r) {
      V v = acc[i][r];
      if (bias) v = hn::Add(v, hn::Set(d, bias[m0 + i]));
      float* yr = y + ((m0 + i) * s.P + p0 + r) * s.Q + q0;
      if (kFull) hn::StoreU(v, d, yr);
      else StoreFirst(v, yr, static_cast<std::size_t>(cnt));
    }
}

template <int MB, int PB>
HWY_INLINE void TileQ(const ConvDirectShape& s, const float* x, const float* w, const float* bias, float* y,
                      std::int64_t m0, std::int64_t p0, std::int64_t q0, std::int64_t cnt) {
  if (cnt == static_cast<std::int64_t>(hn::Lanes(D()))) Tile<MB, PB, true>(s, x, w, bias, y, m0, p0, q0, cnt);
  else Tile<MB, PB, false>(s, x, w, bias, y, m0, p0, q0, cnt);
}

template <int MB>
HWY_INLINE void TileRows(const ConvDirectShape& s, const float* x, const float* w, const float* bias, float* y,
                         std::int64_t m0, std::int64_t p0, int pb, std::int64_t q0, std::int64_t cnt) {
  switch (pb) {
    case 4: TileQ<MB, 4>(s, x, w, bias, y, m0, p0, q0, cnt); break;
    case 3: TileQ<MB, 3>(s, x, w, bias, y, m0, p0, q0, cnt); break;
    case 2: TileQ<MB, 2>(s, x, w, bias, y, m0, p0, q0, cnt); break;
    default: TileQ<MB, 1>(s, x, w, bias, y, m0, p0, q0, cnt); break;
  }
}

void ConvDirect(const ConvDirectShape& s, const float* x, const float* w, const float* bias, float* y) {
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(D()));
  for (std::int64_t m0 = 0; m0 < s.M; m0 += 4) {
    const int mb = static_cast<int>(std::min<std::int64_t>(4, s.M - m0));
    for (std::int64_t p0 = 0; p0 < s.P; p0 += 4) {
      const int pb = static_cast<int>(std::min<std::int64_t>(4, s.P - p0));
      for (std::int64_t q0 = 0; q0 < s.Q; q0 += N) {
        const std::int64_t cnt = std::min(N, s.Q - q0);
        switch (mb) {
          case 4: TileRows<4>(s, x, w, bias, y, m0, p0, pb, q0, cnt); break;
          case 3: TileRows<3>(s, x, w, bias, y, m0, p0, pb, q0, cnt); break;
          case 2: TileRows<2>(s, x, w, bias, y, m0, p0, pb, q0, cnt); break;
          default: TileRows<1>(s, x, w, bias, y, m0, p0, pb, q0, cnt); break;
        }
      }
    }
  }
}

}  // namespace qcast::kern::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qcast::kern {

HWY_EXPORT(ConvDirect);

bool conv_direct_applies(const ConvDirectShape& s) {
  // Small reductions and narrow rows only: wide layers keep sgemm, which blocks for the caches.
  return s.C * s.kh * s.kw <= 512 && s.Q <= 64 && s.P == s.H - s.kh + 1 && s.Q == s.W - s.kw + 1;
}

void conv_direct(const ConvDirectShape& s, const float* x, const float* w, const float* bias, float* y) {
  HWY_DYNAMIC_DISPATCH(ConvDirect)(s, x, w, bias, y);
}

}  // namespace qcast::kern
#endif
