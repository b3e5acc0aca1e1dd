// Partial float vectors for the Highway kernels (re-included once per target by foreach_target, hence the
// toggle guard instead of #pragma once). AVX2 / AVX-512 masked loads and stores touch only the first m
// lanes' memory (no fault past the end); other targets go through a buffer, because Highway 1.0's SSE4 /
// EMU128 fallbacks of MaskedLoad / BlendedStore may access the whole vector.
#if defined(QCAST_SIMD_PARTIAL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QCAST_SIMD_PARTIAL_INL_H_
#undef QCAST_SIMD_PARTIAL_INL_H_
#else
#define QCAST_SIMD_PARTIAL_INL_H_
#endif

#include <cstddef>
#include <cstring>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace qcast::simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// The first m lanes from p, the others zero.
HWY_INLINE hn::Vec<hn::ScalableTag<float>> LoadFirst(const float* p, std::size_t m) {
  const hn::ScalableTag<float> d;
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  return hn::MaskedLoad(hn::FirstN(d, m), d, p);
#else
  HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)] = {};
  std::memcpy(buf, p, m * sizeof(float));
  return hn::Load(d, buf);
#endif
}

/// Stores the first m lanes of v at p.
HWY_INLINE void StoreFirst(hn::Vec<hn::ScalableTag<float>> v, float* p, std::size_t m) {
  const hn::ScalableTag<float> d;
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  hn::BlendedStore(v, hn::FirstN(d, m), d, p);
#else
  HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)];
  hn::Store(v, d, buf);
  std::memcpy(p, buf, m * sizeof(float));
#endif
}

}  // namespace qcast::simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
