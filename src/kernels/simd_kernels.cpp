// Highway SIMD kernels for fake-quant / encode / decode of contiguous scale groups.
//
// Every operation mirrors the scalar reference (reference.cpp, element.cpp) exactly:
//  * the scaled value is x / scale (a multiply by the exact reciprocal when the scale is a power of two),
//  * minifloat rounding works on float32 bits: add a mode-dependent rounding bias and clear the low
//    23 - mbits mantissa bits (normal range of the element), or scale by 2^(mbits - emin) and round to
//    an integer (its subnormal range); saturate with min; restore the sign,
//  * integers scale by 2^frac_bits, round to an integer, clamp; codebooks compare against
//    precomputed decision thresholds (fast_path.cpp derives them from Element::quantize),
//  * the fake-quant output is q * scale, exactly the reference's float multiply.
// Stochastic rounding and Overflow::Inf stay on the reference path (fast_path.cpp never selects them).
#include "kernels/simd_targets.hpp"  // before any Highway header

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/simd.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/simd_partial-inl.h"


HWY_BEFORE_NAMESPACE();
namespace qcast::kern::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using DU = hn::RebindToUnsigned<D>;
using DI = hn::RebindToSigned<D>;
using DU16 = hn::Rebind<std::uint16_t, D>;
using V = hn::Vec<D>;
using VU = hn::Vec<DU>;
using VI = hn::Vec<DI>;
using MU = hn::Mask<DU>;

constexpr std::int64_t kChunk = 2048;  // elements per code buffer
constexpr std::size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// 2^e as a float for e in [-149, 127], built from bits (std::ldexp is a libm call).
HWY_INLINE float pow2f(int e) {
  const std::uint32_t u = e >= -126 ? static_cast<std::uint32_t>(e + 127) << 23 : 1u << (e + 149);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Rounds magnitudes t >= 0 to integers; `neg` is the sign of the original value (floor / ceil).
template <RoundMode M>
HWY_INLINE V RoundMag(V t, hn::Mask<D> neg) {
  const D d;
  if constexpr (M == RoundMode::Even) {
    return hn::Round(t);
  } else if constexpr (M == RoundMode::Away) {
    const V fl = hn::Floor(t);
    return hn::IfThenElse(hn::Ge(hn::Sub(t, fl), hn::Set(d, 0.5f)), hn::Add(fl, hn::Set(d, 1.0f)), fl);
  } else if constexpr (M == RoundMode::Zero) {
    return hn::Floor(t);
  } else if constexpr (M == RoundMode::Floor) {
    return hn::Abs(hn::IfThenElse(neg, hn::Ceil(t), hn::Floor(t)));  // Abs: some targets' Ceil(0) is -0
  } else {
    return hn::Abs(hn::IfThenElse(neg, hn::Floor(t), hn::Ceil(t)));
  }
}

// Clears the low `s` bits of magnitude bits u, rounding according to M.
template <RoundMode M>
HWY_INLINE VU RoundBits(VU u, MU neg, int s, VU half, VU low) {
  const DU du;
  VU rb;
  if constexpr (M == RoundMode::Even) {
    rb = hn::Add(hn::Sub(half, hn::Set(du, 1u)), hn::And(hn::ShiftRightSame(u, s), hn::Set(du, 1u)));
  } else if constexpr (M == RoundMode::Away) {
    rb = half;
  } else if constexpr (M == RoundMode::Zero) {
    return hn::AndNot(low, u);
  } else if constexpr (M == RoundMode::Floor) {
    rb = hn::IfThenElseZero(neg, low);
  } else {
    rb = hn::IfThenZeroElse(neg, low);
  }
  return hn::AndNot(low, hn::Add(u, rb));
}

// ---- element quantizers: v (scaled value) -> q (signed element value) and code ----

// The sign bit of each lane of float bits vu.
HWY_INLINE VU SignBits(VU vu) { return hn::And(vu, hn::Set(DU(), 0x80000000u)); }

// NaN and Inf lanes of an elementwise minifloat cast (block formats flag the whole block instead): their
// codes (the element's NaN / Inf code under the lane's sign code `sc`) and their values (Inf kept by
// IEEE-like elements, NaN for NaN).
struct MiniSpecials {
  VU nan_code, inf_code, all_ones;
  bool ieee, fn_nan;
  explicit MiniSpecials(const ElemSpec& e) {
    const DU du;
    ieee = e.ieee;
    fn_nan = e.fn_nan;
    nan_code = hn::Set(du, e.nan_code);
    inf_code = hn::Set(du, e.inf_code);
    all_ones = hn::Set(du, (1u << (e.ebits + e.mbits)) - 1);
  }
  HWY_INLINE VU Codes(V v, VU sc, VU c) const {
    const DU du;
    const VU nc = fn_nan ? hn::Or(sc, all_ones) : nan_code;
    if (ieee) c = hn::IfThenElse(hn::RebindMask(du, hn::IsInf(v)), hn::Or(sc, inf_code), c);
    return hn::IfThenElse(hn::RebindMask(du, hn::IsNaN(v)), nc, c);
  }
  HWY_INLINE V Values(V v, V out) const {
    const D d;
    if (ieee) out = hn::IfThenElse(hn::IsInf(v), v, out);
    return hn::IfThenElse(hn::IsNaN(v), hn::Set(d, std::numeric_limits<float>::quiet_NaN()), out);
  }
  // The end of both quantizers: the code (magnitude code c under the sign code sc; the special lanes of an
  // elementwise cast) and the value.
  template <bool kElementwise>
  HWY_INLINE void StoreCode(V v, VU sc, VU c, VU* code) const {
    c = hn::Or(c, sc);
    if constexpr (kElementwise) c = Codes(v, sc, c);
    *code = c;
  }
  template <bool kElementwise>
  HWY_INLINE V Out(V v, V out) const {
    if constexpr (kElementwise) out = Values(v, out);
    return out;
  }
};

struct MiniQ {
  V maxv, sub_thr, up, down;
  VU half, low, bias_sub, sign_code;
  MiniSpecials specials;
  int s;
  bool has_sub;
  explicit MiniQ(const ElemSpec& e) : specials(e) {
    const D d;
    const DU du;
    s = 23 - e.mbits;
    has_sub = e.has_sub_path;
    maxv = hn::Set(d, e.maxv);
    sub_thr = hn::Set(d, has_sub ? pow2f(e.emin) : 0.0f);
    up = hn::Set(d, has_sub ? pow2f(e.mbits - e.emin) : 1.0f);
    down = hn::Set(d, has_sub ? pow2f(e.emin - e.mbits) : 1.0f);
    half = hn::Set(du, 1u << (s - 1));
    low = hn::Set(du, (1u << s) - 1);
    bias_sub = hn::Set(du, static_cast<std::uint32_t>(127 - e.bias) << e.mbits);
    sign_code = hn::Set(du, 1u << (e.ebits + e.mbits));
  }
  template <RoundMode M, bool kCode, bool kElementwise>
  HWY_INLINE V Apply(V v, VU* code) const {
    const D d;
    const DU du;
    const VU vu = hn::BitCast(du, v), sign = SignBits(vu);
    const VU u = hn::Xor(vu, sign);
    const MU negu = hn::Ne(sign, hn::Zero(du));
    V q = hn::BitCast(d, RoundBits<M>(u, negu, s, half, low));
    if (has_sub) {
      const V a = hn::BitCast(d, u);
      const V r = RoundMag<M>(hn::Mul(a, up), hn::RebindMask(d, negu));
      q = hn::IfThenElse(hn::Lt(a, sub_thr), hn::Mul(r, down), q);
    }
    q = hn::Min(q, maxv);
    V out = hn::BitCast(d, hn::Or(hn::BitCast(du, q), sign));
    if constexpr (kCode) {
      const VU uq = hn::BitCast(du, q);
      VU c = hn::Sub(hn::ShiftRightSame(uq, s), bias_sub);
      if (has_sub) {
        const VU cs = hn::BitCast(du, hn::ConvertTo(DI(), hn::Mul(q, up)));
        c = hn::IfThenElse(hn::RebindMask(du, hn::Lt(q, sub_thr)), cs, c);
      }
      specials.StoreCode<kElementwise>(v, hn::IfThenElseZero(negu, sign_code), c, code);
    }
    return specials.Out<kElementwise>(v, out);
  }
};

// Round-to-nearest-even minifloat quantizer by float addition. For |v| = a (saturated to maxv first)
// in binade E, C = 2^(max(E, emin) + 23 - mbits) has one float ulp equal to the element's quantum
// there (2^(E - mbits) for normals, 2^(emin - mbits) below 2^emin), so the hardware's RNE of a + C
// is the element rounding, including its subnormals, and (a + C) - C is exact. The bits of a + C
// minus those of C count the quanta, from which the code follows without a table:
// code = count + ((max(E, emin) - emin) << mbits). About half the operations of MiniQ's bit-clearing
// path plus its separate subnormal path. Needs C finite: emax + 23 - mbits <= 127 (not bf16 / tf32).
struct MiniRneQ {
  V maxv;
  VU expmask, emin_exp, c_shift, code_off;
  MiniSpecials specials;
  int s, sign_shift;
  static bool Eligible(const ElemSpec& e) {
    if (e.kind != ElemKind::Mini || e.emin < -126) return false;
    std::uint32_t u;
    std::memcpy(&u, &e.maxv, 4);
    const int emax = static_cast<int>(u >> 23) - 127;
    return emax + 23 - e.mbits <= 127;
  }
  explicit MiniRneQ(const ElemSpec& e) : specials(e) {
    const D d;
    const DU du;
    s = 23 - e.mbits;
    sign_shift = 31 - (e.ebits + e.mbits);
    maxv = hn::Set(d, e.maxv);
    expmask = hn::Set(du, 0x7f800000u);
    emin_exp = hn::Set(du, static_cast<std::uint32_t>(e.emin + 127) << 23);
    c_shift = hn::Set(du, static_cast<std::uint32_t>(s) << 23);
    // (bits(C) >> s) = (E' + 127 + s) << mbits; code = count + that - (emin + 127 + s) << mbits.
    code_off = hn::Set(du, static_cast<std::uint32_t>(e.emin + 127 + s) << e.mbits);
  }
  template <RoundMode M, bool kCode, bool kElementwise>
  HWY_INLINE V Apply(V v, VU* code) const {
    static_assert(M == RoundMode::Even, "MiniRneQ rounds to nearest even only");
    const D d;
    const DU du;
    const VU vu = hn::BitCast(du, v), sign = SignBits(vu);
    const V a = hn::Min(hn::BitCast(d, hn::Xor(vu, sign)), maxv);  // a NaN lane is replaced below
    const VU cb = hn::Add(hn::Max(hn::And(hn::BitCast(du, a), expmask), emin_exp), c_shift);
    const V c = hn::BitCast(d, cb);
    const V t = hn::Add(a, c);
    V out = hn::BitCast(d, hn::Or(hn::BitCast(du, hn::Sub(t, c)), sign));
    if constexpr (kCode) {
      VU k = hn::Add(hn::Sub(hn::BitCast(du, t), cb), hn::Sub(hn::ShiftRightSame(cb, s), code_off));
      specials.StoreCode<kElementwise>(v, hn::ShiftRightSame(sign, sign_shift), k, code);
    }
    return specials.Out<kElementwise>(v, out);
  }
};

struct IntQ {
  V up, down, maxc, maxneg;
  VU mask;
  explicit IntQ(const ElemSpec& e) {
    const D d;
    up = hn::Set(d, pow2f(e.frac_bits));
    down = hn::Set(d, pow2f(-e.frac_bits));
    maxc = hn::Set(d, e.max_code);
    maxneg = hn::Set(d, e.neg_max_code);
    mask = hn::Set(DU(), e.bits >= 32 ? 0xffffffffu : ((1u << e.bits) - 1));
  }
  template <RoundMode M, bool kCode, bool kElementwise>
  HWY_INLINE V Apply(V v, VU* code) const {
    const D d;
    const DU du;
    const VU vu = hn::BitCast(du, v), sign = SignBits(vu);
    const V a = hn::BitCast(d, hn::Xor(vu, sign));
    const hn::Mask<D> neg = hn::RebindMask(d, hn::Ne(sign, hn::Zero(du)));
    const V r = hn::Min(RoundMag<M>(hn::Mul(a, up), neg), hn::IfThenElse(neg, maxneg, maxc));
    V out = hn::BitCast(d, hn::Or(hn::BitCast(du, hn::Mul(r, down)), sign));
    if constexpr (kCode) {
      const DI di;
      VI ci = hn::ConvertTo(di, r);
      ci = hn::IfThenElse(hn::RebindMask(di, neg), hn::Neg(ci), ci);
      *code = hn::And(hn::BitCast(du, ci), mask);
    }
    if constexpr (kElementwise) out = hn::IfThenElse(hn::IsNaN(v), hn::Set(d, std::numeric_limits<float>::quiet_NaN()), out);
    return out;
  }
};

struct CodebookQ {
  const float* thr;
  const float* vals;
  int n;
  explicit CodebookQ(const ElemSpec& e) : thr(e.thresholds.data()), vals(e.values.data()), n(e.ncodes) {}
  template <RoundMode M, bool kCode, bool kElementwise>
  HWY_INLINE V Apply(V v, VU* code) const {
    const D d;
    const DU du;
    V val = hn::Set(d, vals[0]);
    VU idx = hn::Zero(du);
    for (int k = 1; k < n; ++k) {
      const hn::Mask<D> m = hn::Ge(v, hn::Set(d, thr[k]));
      val = hn::IfThenElse(m, hn::Set(d, vals[k]), val);
      if constexpr (kCode) idx = hn::Add(idx, hn::IfThenElseZero(hn::RebindMask(du, m), hn::Set(du, 1u)));
    }
    if constexpr (kCode) *code = idx;
    return val;
  }
};

using qcast::simd::HWY_NAMESPACE::LoadFirst;  // partial vectors: group tails, groups shorter than a vector
using qcast::simd::HWY_NAMESPACE::StoreFirst;

// Output stores of fake-quant and decode. Outputs larger than the caches (Job::stream_out) are written
// with non-temporal stores: a regular store first reads the line it writes (read-for-ownership), so a
// streamed output moves 8 bytes per element instead of 12. Stream needs a vector-aligned address.
HWY_INLINE bool StreamAligned(const Job& j) {
  const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(j.out) - static_cast<std::uintptr_t>(j.out_base) * sizeof(float);
  return j.stream_out && base % (hn::Lanes(D()) * sizeof(float)) == 0;
}
// Whether the output vector at p is streamed (loops whose vectors need not all be aligned alike).
HWY_INLINE bool StreamHere(const Job& j, const float* p) {
  return j.stream_out && reinterpret_cast<std::uintptr_t>(p) % (hn::Lanes(D()) * sizeof(float)) == 0;
}
HWY_INLINE void StoreOut(V v, float* p, bool stream) {
  if (stream) hn::Stream(v, D(), p);
  else hn::StoreU(v, D(), p);
}

// The kernels work in batches of kChunk elements: a pass that reads the batch from memory for the group
// maxima, then the arithmetic on it from L1. During the arithmetic no new loads miss, so on its own the
// core would fetch the next batch only when it gets there, and the two phases would add up instead of
// overlapping (one thread, 64 MiB: about compute time + memcpy time). So the element pass asks for the
// next batch's lines, one software prefetch per 64-byte line it quantizes: `ahead` elements on, the
// batch's span. The address is formed as an integer: it may lie past the input, which a prefetch ignores.
constexpr std::int64_t kLineFloats = 64 / sizeof(float);
HWY_INLINE void PrefetchNextBatch(const float* x, std::int64_t ahead = kChunk) {
  hwy::Prefetch(reinterpret_cast<const float*>(reinterpret_cast<std::uintptr_t>(x) + static_cast<std::uintptr_t>(ahead) * sizeof(float)));
}
// A batch of the generic loop may be one long group (a channel); beyond this distance the lines would be
// evicted again before their turn, and such a group is in L2 from its scan anyway.
constexpr std::int64_t kMaxPrefetchAhead = std::int64_t{16} << 10;

// ---- group parameters ----

struct Scan {
  std::uint32_t umax = 0;  // max of |x| bits (>= 0x7f800000: non-finite present)
  float lo = 0, hi = 0;
};

template <bool kAsym>
HWY_INLINE Scan ScanGroup(const float* x, std::int64_t n) {
  const D d;
  const DU du;
  const DI di;
  const std::size_t N = hn::Lanes(d);
  const VU absmask = hn::Set(du, 0x7fffffffu);
  VI m0 = hn::Zero(di), m1 = hn::Zero(di);
  V lo = hn::Zero(d), hi = hn::Zero(d);
  std::int64_t i = 0;
  for (; i + 2 * static_cast<std::int64_t>(N) <= n; i += 2 * N) {
    const V a = hn::LoadU(d, x + i), b = hn::LoadU(d, x + i + N);
    m0 = hn::Max(m0, hn::BitCast(di, hn::And(hn::BitCast(du, a), absmask)));
    m1 = hn::Max(m1, hn::BitCast(di, hn::And(hn::BitCast(du, b), absmask)));
    if constexpr (kAsym) {
      lo = hn::Min(lo, hn::Min(a, b));
      hi = hn::Max(hi, hn::Max(a, b));
    }
  }
  for (; i < n; i += N) {
    const std::int64_t m = std::min<std::int64_t>(N, n - i);
    const V a = m == static_cast<std::int64_t>(N) ? hn::LoadU(d, x + i) : LoadFirst(x + i, static_cast<std::size_t>(m));
    m0 = hn::Max(m0, hn::BitCast(di, hn::And(hn::BitCast(du, a), absmask)));
    if constexpr (kAsym) {
      lo = hn::Min(lo, a);
      hi = hn::Max(hi, a);
    }
  }
  Scan s;
  s.umax = static_cast<std::uint32_t>(hn::GetLane(hn::MaxOfLanes(di, hn::Max(m0, m1))));
  if constexpr (kAsym) {
    s.lo = hn::GetLane(hn::MinOfLanes(d, lo));
    s.hi = hn::GetLane(hn::MaxOfLanes(d, hi));
  }
  return s;
}

HWY_INLINE void MxParams(const Scan& s, const ScaleSpec& sc, GroupP& p) {
  if (s.umax >= 0x7f800000u) {
    p.nan = true;
    p.scale = std::numeric_limits<float>::quiet_NaN();
    p.scale_code = 0xff;
    return;
  }
  int e;
  if (sc.rceil) {
    float amax;
    std::memcpy(&amax, &s.umax, 4);
    const float q = amax / sc.mx_elmax;
    std::uint32_t qb;
    std::memcpy(&qb, &q, 4);
    if (qb >= 0x00800000u) e = static_cast<int>(qb >> 23) - 127 + ((qb & 0x7fffffu) != 0 ? 1 : 0);
    else e = qb > 0x00400000u ? -126 : -127;  // subnormal quotients: (2^-127, 2^-126) or at most 2^-127
    e = std::min(e, 127);
    if (e == -127) {
      p.scale = pow2f(-127);
      p.inv = 1.0f;
      p.pow2 = true;
      p.scale_code = 0;
      return;
    }
  } else {
    const int E = s.umax == 0 ? -126 : static_cast<int>(s.umax >> 23) - 127;
    e = std::clamp(E - sc.emax, -127, 127);
  }
  p.scale = pow2f(e);
  p.inv = pow2f(-e);
  p.pow2 = true;
  p.scale_code = static_cast<std::uint32_t>(e + 127);
}

// MxParams in vector lanes: m holds the bits of each group's largest |x| (finite). The scale is
// 2^e with e = floor(log2 amax) - emax clamped to [-127, 127] (2^-127 is the float subnormal 0x00400000),
// inv its exact reciprocal, code the E8M0 code e + 127.
struct MxScaleV {
  V scale, inv;
  VU code;
};
HWY_INLINE MxScaleV MxScaleOf(VI m, const ScaleSpec& sc) {
  const D d;
  const DU du;
  const DI di;
  const VI c127 = hn::Set(di, 127), cm127 = hn::Set(di, -127), half_min = hn::Set(di, 0x00400000);
  auto pow2 = [&](VI e) { return hn::BitCast(d, hn::IfThenElse(hn::Eq(e, cm127), half_min, hn::ShiftLeft<23>(hn::Add(e, c127)))); };
  if (sc.rceil) {
    // ceil(log2 q) of the float quotient q = amax / max_elem: its exponent, plus one unless q is a power
    // of two; subnormal quotients give -126 above 2^-127 and -127 (unscaled elements, code 0) below.
    const VI qb = hn::BitCast(di, hn::Div(hn::BitCast(d, m), hn::Set(d, sc.mx_elmax)));
    const VI frac_nz = hn::VecFromMask(di, hn::Ne(hn::And(qb, hn::Set(di, 0x7fffff)), hn::Zero(di)));  // -1 or 0
    VI e = hn::Sub(hn::Sub(hn::ShiftRight<23>(qb), c127), frac_nz);
    const VI sub_e = hn::IfThenElse(hn::Gt(qb, half_min), hn::Set(di, -126), cm127);
    e = hn::Min(hn::IfThenElse(hn::Lt(qb, hn::Set(di, 0x00800000)), sub_e, e), c127);
    const V inv = hn::IfThenElse(hn::RebindMask(d, hn::Eq(e, cm127)), hn::Set(d, 1.0f), pow2(hn::Neg(e)));
    return {pow2(e), inv, hn::BitCast(du, hn::Add(e, c127))};
  }
  const int emax = sc.emax;
  const VI E = hn::IfThenElse(hn::Eq(m, hn::Zero(di)), hn::Set(di, -126), hn::Sub(hn::ShiftRight<23>(m), c127));
  const VI e = hn::Min(hn::Max(hn::Sub(E, hn::Set(di, emax)), cm127), c127);
  return {pow2(e), pow2(hn::Neg(e)), hn::BitCast(du, hn::Add(e, c127))};
}

HWY_INLINE void StoreScale(const Job& j, std::int64_t g, std::uint32_t code) {
  if (!j.scales) return;
  const int nb = j.sc->s_bits / 8;
  if (nb == 1) {
    j.scales[g] = static_cast<std::uint8_t>(code);
    return;
  }
  std::uint8_t* p = j.scales + g * nb;
  for (int b = 0; b < nb; ++b) p[b] = static_cast<std::uint8_t>(code >> (8 * b));
}

// ---- the group loop ----

template <bool kAsym>
HWY_INLINE void GroupParams(const Job& j, const float* x, std::int64_t n, GroupP& p) {
  const ScaleSpec& sc = *j.sc;
  const Scan s = ScanGroup<kAsym>(x, n);
  if (sc.mode == ScaleMode::MxFloor) {
    MxParams(s, sc, p);
  } else if (s.umax >= 0x7f800000u) {
    p.nan = true;
    p.scale = std::numeric_limits<float>::quiet_NaN();
    p.scale_code = sc.nan_code;
  } else {
    float amax;
    std::memcpy(&amax, &s.umax, 4);
    amax_params(sc, *j.el, amax, s.lo, s.hi, j.tensor_scale, p);
  }
}

constexpr int kMaxBatch = 64;

// The scale element's values (returned) and codes of N groups' raw amax scales x = amax / max_elem: divided
// by the NVFP4 tensor scale first when there is one, then rounded to nearest even in the scale element
// (fp32 scales: unchanged, the code is the bits).
HWY_INLINE V ScaleElemOf(const ScaleSpec& sc, const MiniQ& sq, V x, V ts, VU* code) {
  if (sc.tensor_scale) x = hn::Div(x, ts);
  if (sc.is_fp32) {
    *code = hn::BitCast(DU(), x);
    return x;
  }
  return sq.Apply<RoundMode::Even, true, false>(x, code);
}

// Amax-rule parameters of nb groups at once (mirrors ref::group_params, see amax_params): the
// double-precision ideal scale per group, then the rounding into the scale element N groups per vector.
template <bool kAsym>
HWY_NOINLINE void AmaxBatch(const Job& j, const std::int64_t* st, const std::int64_t* nn, int nb, GroupP* P) {
  const D d;
  const DU du;
  const std::size_t N = hn::Lanes(d);
  const ScaleSpec& sc = *j.sc;
  const ElemSpec& el = *j.el;
  HWY_ALIGN float raw[kMaxBatch + kMaxLanes];
  HWY_ALIGN std::uint32_t umax[kMaxBatch + kMaxLanes];
  HWY_ALIGN float scale[kMaxBatch + kMaxLanes];
  HWY_ALIGN std::uint32_t code[kMaxBatch + kMaxLanes];
  float lo[kMaxBatch], hi[kMaxBatch];
  for (int k = 0; k < nb; ++k) {
    const Scan s = ScanGroup<kAsym>(j.in + (st[k] - j.in_base), nn[k]);
    umax[k] = s.umax;
    lo[k] = s.lo;
    hi[k] = s.hi;
  }
  const double inv_qrange_div = sc.qrange, el_max = el.max_value;
  for (int k = 0; k < nb; ++k) {
    float a;
    std::memcpy(&a, &umax[k], 4);
    if (kAsym && !sc.tensor_scale) raw[k] = static_cast<float>((static_cast<double>(hi[k]) - lo[k]) / inv_qrange_div);
    else raw[k] = static_cast<float>(a / el_max);
  }
  for (int k = nb; k < nb + static_cast<int>(N); ++k) {
    raw[k] = 0;
    umax[k] = 0;
  }
  const V ts = hn::Set(d, j.tensor_scale);
  const MiniQ sq(sc.sel);
  for (int k = 0; k < nb; k += static_cast<int>(N)) {
    const V x = hn::Load(d, raw + k);
    VU c;
    V q = ScaleElemOf(sc, sq, x, ts, &c);
    if (!sc.tensor_scale) {
      const auto pos = hn::Gt(x, hn::Zero(d));
      q = hn::IfThenElseZero(pos, q);
      c = hn::IfThenElseZero(hn::RebindMask(du, pos), c);
    }
    hn::Store(sc.tensor_scale ? hn::Mul(q, ts) : q, d, scale + k);
    hn::Store(c, du, code + k);
  }
  for (int k = 0; k < nb; ++k) {
    GroupP& p = P[k];
    p = GroupP{};
    if (umax[k] >= 0x7f800000u) {
      p.nan = true;
      p.scale = std::numeric_limits<float>::quiet_NaN();
      p.scale_code = sc.nan_code;
      continue;
    }
    p.scale = scale[k];
    p.scale_code = code[k];
    if (!(p.scale > 0)) {
      p.zero_group = true;
      continue;
    }
    if constexpr (kAsym) {
      const double z = std::nearbyint(-static_cast<double>(lo[k]) / p.scale);
      p.zero = static_cast<float>(std::clamp(z, 0.0, sc.qrange));
      p.zero_code = static_cast<std::uint32_t>(p.zero);
    }
  }
}

// Groups are processed in batches: first the parameters of every group of the batch (independent
// scans, so they overlap in the pipeline), then the quantization; codes of a batch are packed at once.
template <RoundMode M, bool kElementwise, bool kAsym, bool kFake, bool kEnc, class Q>
void QuantLoop(const Job& j, const Q& q, std::int64_t g0, std::int64_t g1) {
  const D d;
  const DU du;
  const DU16 du16;
  const std::size_t N = hn::Lanes(d);
  const ElemSpec& el = *j.el;
  const ScaleSpec& sc = *j.sc;
  HWY_ALIGN std::uint16_t cbuf[kChunk];
  const V qmax = hn::Set(d, static_cast<float>(sc.qrange));
  const V big = hn::Set(d, 1048576.0f);
  const int batch = static_cast<int>(std::clamp<std::int64_t>(kChunk / std::max<std::int64_t>(1, j.block), 1, kMaxBatch));
  std::int64_t st[kMaxBatch], nn[kMaxBatch];
  GroupP P[kMaxBatch];
  std::int64_t row = g0 / j.gpr, b = g0 % j.gpr - 1;
  for (std::int64_t gb = g0; gb < g1; gb += batch) {
    const int nb = static_cast<int>(std::min<std::int64_t>(batch, g1 - gb));
    for (int k = 0; k < nb; ++k) {
      if (++b == j.gpr) {
        b = 0;
        ++row;
      }
      st[k] = row * j.len + b * j.block;
      nn[k] = std::min(j.block, j.len - b * j.block);
    }
    if constexpr (!kElementwise) {
      if (sc.mode == ScaleMode::MxFloor) {
        for (int k = 0; k < nb; ++k) {
          P[k] = GroupP{};
          MxParams(ScanGroup<false>(j.in + (st[k] - j.in_base), nn[k]), sc, P[k]);
        }
      } else {
        AmaxBatch<kAsym>(j, st, nn, nb, P);
      }
      if constexpr (kEnc) {
        for (int k = 0; k < nb; ++k) {
          StoreScale(j, gb + k, P[k].scale_code);
          if (j.zeros) j.zeros[gb + k] = P[k].zero_code;
        }
      }
    }
    // Codes of the whole batch go to cbuf when they fit (then one pack), else per chunk of a group.
    const std::int64_t span = st[nb - 1] + nn[nb - 1] - st[0];
    const bool batch_pack = span <= kChunk;
    const std::int64_t ahead = std::min(span, kMaxPrefetchAhead);
    for (int k = 0; k < nb; ++k) {
      const std::int64_t start = st[k], n = nn[k];
      const float* x = j.in + (start - j.in_base);
      const GroupP& p = P[k];
      std::uint16_t* cb0 = batch_pack ? cbuf + (start - st[0]) : cbuf;
      if constexpr (!kElementwise) {
        if (p.nan || p.zero_group) {
          if constexpr (kFake) {
            if (p.nan) std::fill(j.out + (start - j.out_base), j.out + (start - j.out_base) + n, std::numeric_limits<float>::quiet_NaN());
            else
              for (std::int64_t i = 0; i < n; ++i) j.out[start - j.out_base + i] = std::signbit(x[i]) ? -0.0f : 0.0f;
          }
          if constexpr (kEnc) {
            // NaN groups have code 0; zero groups the code of 0 (asym: the zero point).
            const std::uint32_t zc = p.nan ? 0 : (kAsym ? p.zero_code : el.zero_code);
            for (std::int64_t c = 0; c < n; c += kChunk) {
              const std::int64_t m = std::min(kChunk, n - c);
              std::fill(cb0 + (batch_pack ? c : 0), cb0 + (batch_pack ? c : 0) + m, static_cast<std::uint16_t>(zc));
              if (!batch_pack) pack_codes(j.codes, start + c, m, el.bits, cbuf);
            }
          }
          continue;
        }
      }
      const V scale = hn::Set(d, p.scale), inv = hn::Set(d, p.inv), zero = hn::Set(d, p.zero);
      auto one = [&](V xv, VU* code) -> V {
        V v;
        if constexpr (kElementwise) {
          v = xv;
        } else {
          v = p.pow2 ? hn::Mul(xv, inv) : hn::Div(xv, scale);
        }
        if constexpr (kAsym) {
          const VU vu = hn::BitCast(du, v);
          const VU sign = hn::And(vu, hn::Set(du, 0x80000000u));
          const V a = hn::BitCast(d, hn::Xor(vu, sign));
          const V r = hn::Min(RoundMag<M>(a, hn::RebindMask(d, hn::Ne(sign, hn::Zero(du)))), big);
          const V rs = hn::BitCast(d, hn::Or(hn::BitCast(du, r), sign));
          const V qv = hn::Min(hn::Max(hn::Add(rs, zero), hn::Zero(d)), qmax);
          if constexpr (kEnc) *code = hn::BitCast(du, hn::ConvertTo(DI(), qv));
          return hn::Mul(hn::Sub(qv, zero), scale);
        } else {
          const V qv = q.template Apply<M, kEnc, kElementwise>(v, code);
          if constexpr (kElementwise) return qv;
          return hn::Mul(qv, scale);
        }
      };
      for (std::int64_t c = 0; c < n; c += kChunk) {
        const std::int64_t m = std::min(kChunk, n - c);
        std::uint16_t* cb = batch_pack ? cb0 + c : cbuf;
        std::int64_t i = 0;
        for (; i + static_cast<std::int64_t>(N) <= m; i += N) {
          if (i % kLineFloats == 0) PrefetchNextBatch(x + c + i, ahead);
          VU code;
          const V r = one(hn::LoadU(d, x + c + i), &code);
          if constexpr (kFake) {
            float* p = j.out + (start - j.out_base) + c + i;
            StoreOut(r, p, StreamHere(j, p));
          }
          if constexpr (kEnc) hn::StoreU(hn::DemoteTo(du16, hn::BitCast(DI(), code)), du16, cb + i);
        }
        if (i < m) {
          HWY_ALIGN std::uint16_t cbt[kMaxLanes] = {};
          const std::size_t rem = static_cast<std::size_t>(m - i);
          VU code;
          const V r = one(LoadFirst(x + c + i, rem), &code);
          if constexpr (kFake) StoreFirst(r, j.out + (start - j.out_base) + c + i, rem);
          if constexpr (kEnc) {
            hn::StoreU(hn::DemoteTo(du16, hn::BitCast(DI(), code)), du16, cbt);
            std::memcpy(cb + i, cbt, rem * sizeof(std::uint16_t));
          }
        }
        if constexpr (kEnc) {
          if constexpr (kElementwise) {
            if (j.saw_nan && !el.has_nan) {
              for (std::int64_t k2 = 0; k2 < m; ++k2)
                if (std::isnan(x[c + k2])) *j.saw_nan = 1;
            }
          }
          if (!batch_pack) pack_codes(j.codes, start + c, m, el.bits, cbuf);
        }
      }
    }
    if constexpr (kEnc) {
      if (batch_pack) pack_codes(j.codes, st[0], st[nb - 1] + nn[nb - 1] - st[0], el.bits, cbuf);
    }
  }
}

// Stores the codes of N consecutive elements, starting at element `pos`, straight into the packed
// LSB-first bitstream when the width allows whole bytes per vector: 8-bit (one byte each), 4-bit (two
// per byte: lo | hi << 4) and 6-bit (four per three bytes). The pairs are merged inside 64-bit lanes
// (c0 | c1 << 32 -> c0 | c1 << w) and truncated, so no scalar per-code loop is left. Other widths go
// through the code buffer and pack_codes.
struct DirectCodes {
  enum Kind { kNone, k8, k4, k6 } kind = kNone;
  explicit DirectCodes(int bits) {
    const std::size_t N = hn::Lanes(D());
    if (bits == 8) kind = k8;
    else if (bits == 4 && N % 2 == 0) kind = k4;
    else if (bits == 6 && N % 4 == 0) kind = k6;
  }
  bool on() const { return kind != kNone; }
  // Bytes of `n` elements (n a multiple of the lanes).
  std::int64_t bytes(std::int64_t n) const { return kind == k8 ? n : kind == k4 ? n / 2 : n / 4 * 3; }
  HWY_INLINE void Store(VU code, std::uint8_t* codes, std::int64_t pos) const {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
    // AVX-512 truncating moves (vpmovdb / vpmovqb / vpmovqd): one instruction each, where Highway 1.0's
    // DemoteTo / TruncateTo go through byte shuffles and cross-lane permutes.
    const __m512i c = code.raw;
    if (kind == k8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + pos), _mm512_cvtepi32_epi8(c));
    } else if (kind == k4) {
      const __m512i w = _mm512_or_si512(c, _mm512_srli_epi64(c, 28));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + pos / 2), _mm512_cvtepi64_epi8(w));
    } else {
      const __m512i w = _mm512_or_si512(c, _mm512_srli_epi64(c, 26));  // 12 bits per pair
      const __m256i h = _mm512_cvtepi64_epi32(w);
      const __m256i q = _mm256_or_si256(h, _mm256_srli_epi64(h, 20));   // 24 bits per quad
      const __m128i t = _mm256_cvtepi64_epi32(q);                        // 4 x 24 bits
      const __m128i packed = _mm_shuffle_epi8(t, _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1));
      _mm_mask_storeu_epi8(codes + pos / 4 * 3, 0x0FFF, packed);
    }
#else
    const DI di;
    if (kind == k8) {
      const hn::Rebind<std::uint8_t, D> du8;
      hn::StoreU(hn::DemoteTo(du8, hn::BitCast(di, code)), du8, codes + pos);
      return;
    }
#if HWY_TARGET != HWY_SCALAR  // one lane: never k4 / k6 (the constructor checks the lane count)
    const hn::Repartition<std::uint64_t, DU> d64;
    auto w = hn::BitCast(d64, code);
    if (kind == k4) {
      w = hn::Or(w, hn::ShiftRight<28>(w));
      const hn::Rebind<std::uint8_t, decltype(d64)> d8;
      hn::StoreU(hn::TruncateTo(d8, w), d8, codes + pos / 2);
      return;
    }
    w = hn::Or(w, hn::ShiftRight<26>(w));  // 12 bits per pair
    const hn::Rebind<std::uint32_t, decltype(d64)> d32;
    const hn::Repartition<std::uint64_t, decltype(d32)> d64q;
    auto w2 = hn::BitCast(d64q, hn::TruncateTo(d32, w));
    w2 = hn::Or(w2, hn::ShiftRight<20>(w2));  // 24 bits per quad
    const hn::Rebind<std::uint32_t, decltype(d64q)> d32q;
    HWY_ALIGN std::uint32_t t[kMaxLanes];
    hn::Store(hn::TruncateTo(d32q, w2), d32q, t);
    std::uint8_t* o = codes + pos / 4 * 3;
    const std::size_t nq = hn::Lanes(d32q);
    for (std::size_t k = 0; k < nq; ++k) std::memcpy(o + 3 * k, &t[k], 3);
#endif
#endif
  }
};

// Largest |x| bits of nb consecutive blocks of NV vectors each, into umax[0, nb) (umax needs N - 1 slots of
// slack). The block-maxima vectors of N blocks are reduced together by a tree of ConcatEven / ConcatOdd +
// Max (log2 N levels, lanes stay in block order): about 3 shuffles per block instead of a horizontal
// reduction each, and no block waits on the latency of its own reduction.
template <int NV>
HWY_INLINE void BlockMaxima(const float* x0, std::int64_t block, std::int64_t nb, std::uint32_t* umax) {
  const D d;
  const DU du;
  const DI di;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const VU absmask = hn::Set(du, 0x7fffffffu);
  HWY_ALIGN std::int32_t t[kMaxLanes * kMaxLanes];
  for (std::int64_t k0 = 0; k0 < nb; k0 += N) {
    const std::int64_t cnt = std::min(N, nb - k0);
    for (std::int64_t k = 0; k < N; ++k) {
      VI m = hn::Zero(di);
      if (k < cnt) {
        const float* x = x0 + (k0 + k) * block;
        for (int i = 0; i < NV; ++i) m = hn::Max(m, hn::BitCast(di, hn::And(hn::BitCast(du, hn::LoadU(d, x + i * N)), absmask)));
      }
      hn::Store(m, di, t + k * N);
    }
#if HWY_TARGET == HWY_SCALAR
    umax[k0] = static_cast<std::uint32_t>(t[0]);
#else
    for (std::int64_t w = N; w > 1; w /= 2) {
      for (std::int64_t p = 0; p < w / 2; ++p) {
        const VI a = hn::Load(di, t + 2 * p * N), b = hn::Load(di, t + (2 * p + 1) * N);
        hn::Store(hn::Max(hn::ConcatEven(di, b, a), hn::ConcatOdd(di, b, a)), di, t + p * N);
      }
    }
    hn::StoreU(hn::BitCast(du, hn::Load(di, t)), du, umax + k0);
#endif
  }
}

// Full, aligned blocks of NV vectors (e.g. b32 = 2 x 16 lanes on AVX-512) with symmetric MX floor scales
// (kMx) or amax scales whose division is exact in float (amax_div_exact), in three passes per batch of
// groups: the block maxima (BlockMaxima); the scales of N groups per vector (MxScaleOf, or the division
// and the scale-element rounding of amax_params); then the elements, with the group's scale broadcast.
// The passes are independent across groups, so the long scale computation of one block no longer sits
// on the path of its elements.
template <RoundMode M, bool kFake, bool kEnc, int NV, bool kMx, class Q>
HWY_NOINLINE void FixedBlocks(const Job& j, const Q& q_in, std::int64_t g0, std::int64_t g1) {
  // A local copy: the code stores go through uint8_t*, which may alias anything, so members read
  // through the reference would be reloaded after every store; a copy whose address never escapes
  // stays in registers.
  const Q q = q_in;
  const D d;
  const DU du;
  const DI di;
  const DU16 du16;
  const std::size_t N = hn::Lanes(d);
  const ScaleSpec& sc = *j.sc;
  const ElemSpec& el = *j.el;
  const std::int64_t block = j.block;
  const VU signmask = hn::Set(du, 0x80000000u);
  const V elmax = hn::Set(d, static_cast<float>(el.max_value)), ts = hn::Set(d, j.tensor_scale);
  const VU zcode = hn::Set(du, el.zero_code);
  const MiniQ sq(sc.sel);
  const DirectCodes direct(el.bits);  // 8/4/6-bit codes go straight to the output bytes
  const bool stream = kFake && StreamAligned(j);
  constexpr std::int64_t kMaxG = kChunk;  // block >= 1
  HWY_ALIGN std::uint16_t cbuf[kChunk];
  HWY_ALIGN std::uint32_t umax[kMaxG + kMaxLanes];
  HWY_ALIGN float scale_a[kMaxG + kMaxLanes];
  HWY_ALIGN float inv_a[kMx ? kMaxG + kMaxLanes : 1];
  HWY_ALIGN std::uint32_t scode_a[kMaxG + kMaxLanes];
  const std::int64_t batch = std::max<std::int64_t>(1, kChunk / block);
  for (std::int64_t gb = g0; gb < g1; gb += batch) {
    const std::int64_t nb = std::min(batch, g1 - gb);
    const float* x0 = j.in + (gb * block - j.in_base);
    // The tensor-scale pass may have stored every group's maxima already (Job::group_umax; it has the
    // N - 1 slots of slack past the last group that the vector reads below need).
    const std::uint32_t* um = j.group_umax ? j.group_umax + gb : umax;
    if (!j.group_umax) BlockMaxima<NV>(x0, block, nb, umax);
    // Blocks (lanes) with NaN / Inf or an all-zero amax scale: batches without any (nearly all of them)
    // take one flat loop over their vectors without per-block branches; the per-block loop below handles
    // the rest.
    auto special = hn::FirstN(d, 0);
    for (std::int64_t k = 0; k < nb; k += static_cast<std::int64_t>(N)) {
      const VI m = hn::BitCast(di, hn::LoadU(du, um + k));
      auto sp = hn::RebindMask(d, hn::Gt(m, hn::Set(di, 0x7f7fffff)));
      if constexpr (kMx) {
        const MxScaleV ms = MxScaleOf(m, sc);
        hn::Store(ms.scale, d, scale_a + k);
        hn::Store(ms.inv, d, inv_a + k);
        hn::Store(ms.code, du, scode_a + k);
      } else {
        VU sc_code;
        const V sv = ScaleElemOf(sc, sq, hn::Div(hn::BitCast(d, m), elmax), ts, &sc_code);
        const V scale = sc.tensor_scale ? hn::Mul(sv, ts) : sv;
        hn::Store(scale, d, scale_a + k);
        hn::Store(sc_code, du, scode_a + k);
        sp = hn::Or(sp, hn::Not(hn::Gt(scale, hn::Zero(d))));
      }
      special = hn::Or(special, hn::And(sp, hn::FirstN(d, static_cast<std::size_t>(nb - k))));
    }
    const bool plain = hn::AllFalse(d, special);
    if (plain) {
      if constexpr (kEnc) {
        for (std::int64_t k = 0; k < nb; ++k) StoreScale(j, gb + k, scode_a[k]);
      }
      const std::int64_t e0 = gb * block;
      float* out0 = kFake ? j.out + (e0 - j.out_base) : nullptr;
      auto flat = [&](auto stream_tag) {
        constexpr bool kStream = decltype(stream_tag)::value;
        for (std::int64_t v = 0; v < nb * NV; ++v) {
          if ((v * static_cast<std::int64_t>(N)) % kLineFloats == 0) PrefetchNextBatch(x0 + v * N);
          const V xv = hn::LoadU(d, x0 + v * N);
          const V scale = hn::Set(d, scale_a[v / NV]);
          VU code;
          const V o = hn::Mul(q.template Apply<M, kEnc, false>(kMx ? hn::Mul(xv, hn::Set(d, inv_a[v / NV])) : hn::Div(xv, scale), &code), scale);
          if constexpr (kFake) StoreOut(o, out0 + v * N, kStream);
          if constexpr (kEnc) {
            if (direct.on()) direct.Store(code, j.codes, e0 + v * static_cast<std::int64_t>(N));
            else hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, code)), du16, cbuf + v * N);
          }
        }
      };
      if (stream) flat(std::true_type{});
      else flat(std::false_type{});
      if constexpr (kEnc) {
        if (!direct.on()) pack_codes(j.codes, gb * block, nb * block, el.bits, cbuf);
      }
      continue;
    }
    for (std::int64_t k = 0; k < nb; ++k) {
      const float* x = x0 + k * block;
      const std::int64_t e0 = (gb + k) * block;  // element index of the block
      float* out = j.out ? j.out + (e0 - j.out_base) : nullptr;
      const bool nan = um[k] > 0x7f7fffffu;
      if constexpr (kEnc) StoreScale(j, gb + k, nan ? sc.nan_code : scode_a[k]);
      if (nan) {  // NaN / Inf in the group: NaN outputs, codes 0
        if constexpr (kFake) std::fill(out, out + block, std::numeric_limits<float>::quiet_NaN());
        if constexpr (kEnc) {
          if (direct.on()) std::fill_n(j.codes + direct.bytes(e0), direct.bytes(block), std::uint8_t{0});
          else std::fill(cbuf + k * block, cbuf + (k + 1) * block, std::uint16_t{0});
        }
        continue;
      }
      const V scale = hn::Set(d, scale_a[k]);
      const V inv = hn::Set(d, kMx ? inv_a[k] : 0.0f);
      const bool zero_group = !kMx && !(scale_a[k] > 0);
      for (int i = 0; i < NV; ++i) {
        if ((i * static_cast<std::int64_t>(N)) % kLineFloats == 0) PrefetchNextBatch(x + i * N);
        const V xv = hn::LoadU(d, x + i * N);
        VU code;
        V o;
        if (zero_group) {
          o = hn::BitCast(d, hn::And(hn::BitCast(du, xv), signmask));
          code = zcode;
        } else {
          o = hn::Mul(q.template Apply<M, kEnc, false>(kMx ? hn::Mul(xv, inv) : hn::Div(xv, scale), &code), scale);
        }
        if constexpr (kFake) StoreOut(o, out + i * N, stream);
        if constexpr (kEnc) {
          if (direct.on()) direct.Store(code, j.codes, e0 + i * N);
          else hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, code)), du16, cbuf + k * block + i * N);
        }
      }
    }
    if constexpr (kEnc) {
      if (!direct.on()) pack_codes(j.codes, gb * block, nb * block, el.bits, cbuf);
    }
  }
}

// Groups of a single element (MX blocks along an axis of extent 1, e.g. the channel axis of a
// one-channel image, or /b1): N groups per vector, each lane's OCP floor scale computed in the lane
// (MxScaleOf, no block reduction), fake-quant only. The generic group loop spent
// ~50 cycles per such group.
template <RoundMode M, class Q>
HWY_NOINLINE void SingletonMx(const Job& j, const Q& q_in, std::int64_t g0, std::int64_t g1) {
  const Q q = q_in;  // in registers (see FixedBlocks)
  const D d;
  const DU du;
  const DI di;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(d));
  const VU absmask = hn::Set(du, 0x7fffffffu);
  const VI maxfinite = hn::Set(di, 0x7f7fffff);
  const V qnan = hn::Set(d, std::numeric_limits<float>::quiet_NaN());
  for (std::int64_t i = g0; i < g1; i += N) {
    const std::int64_t cnt = std::min(N, g1 - i);
    const float* x = j.in + (i - j.in_base);
    const V xv = cnt == N ? hn::LoadU(d, x) : LoadFirst(x, static_cast<std::size_t>(cnt));
    const VI m = hn::BitCast(di, hn::And(hn::BitCast(du, xv), absmask));
    const MxScaleV ms = MxScaleOf(m, *j.sc);
    VU code;
    V o = hn::Mul(q.template Apply<M, false, false>(hn::Mul(xv, ms.inv), &code), ms.scale);
    o = hn::IfThenElse(hn::RebindMask(d, hn::Gt(m, maxfinite)), qnan, o);
    float* out = j.out + (i - j.out_base);
    if (cnt == N) hn::StoreU(o, d, out);
    else StoreFirst(o, out, static_cast<std::size_t>(cnt));
  }
}

// Vectors per block where FixedBlocks covers the job (full, contiguous blocks of 1, 2, 4 or 8 vectors,
// symmetric MX or exactly divided amax scales), else 0.
HWY_INLINE int FixedVectors(const Job& j) {
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(D()));
  const ScaleSpec& sc = *j.sc;
  if (sc.asym || j.block <= 0 || j.len % j.block != 0 || j.block % N != 0) return 0;
  if (!(sc.mode == ScaleMode::MxFloor || (sc.mode == ScaleMode::Amax && sc.amax_div_exact))) return 0;
  const std::int64_t nv = j.block / N;
  return nv == 1 || nv == 2 || nv == 4 || nv == 8 ? static_cast<int>(nv) : 0;
}

template <RoundMode M, bool kFake, bool kEnc, class Q>
bool TryFixed(const Job& j, const Q& q, std::int64_t g0, std::int64_t g1) {
  const ScaleSpec& sc = *j.sc;
  if constexpr (kFake && !kEnc) {
    if (!sc.asym && sc.mode == ScaleMode::MxFloor && std::min(j.block, j.len) == 1) {
      SingletonMx<M>(j, q, g0, g1);
      return true;
    }
  }
  const bool mx = sc.mode == ScaleMode::MxFloor;
  switch (FixedVectors(j)) {
    case 1: mx ? FixedBlocks<M, kFake, kEnc, 1, true>(j, q, g0, g1) : FixedBlocks<M, kFake, kEnc, 1, false>(j, q, g0, g1); return true;
    case 2: mx ? FixedBlocks<M, kFake, kEnc, 2, true>(j, q, g0, g1) : FixedBlocks<M, kFake, kEnc, 2, false>(j, q, g0, g1); return true;
    case 4: mx ? FixedBlocks<M, kFake, kEnc, 4, true>(j, q, g0, g1) : FixedBlocks<M, kFake, kEnc, 4, false>(j, q, g0, g1); return true;
    case 8: mx ? FixedBlocks<M, kFake, kEnc, 8, true>(j, q, g0, g1) : FixedBlocks<M, kFake, kEnc, 8, false>(j, q, g0, g1); return true;
    default: return false;
  }
}

// One quantizer over groups g0..g1: the fixed-block fast path where the layout has one, else the general
// loop (elementwise or scaled).
template <RoundMode M, bool kFake, bool kEnc, class Q>
void RunQuantizer(const Job& j, const Q& q, bool elementwise, std::int64_t g0, std::int64_t g1) {
  if (!elementwise && TryFixed<M, kFake, kEnc>(j, q, g0, g1)) return;
  if (elementwise) QuantLoop<M, true, false, kFake, kEnc>(j, q, g0, g1);
  else QuantLoop<M, false, false, kFake, kEnc>(j, q, g0, g1);
}

template <RoundMode M, bool kFake, bool kEnc>
void QuantMode(const Job& j, std::int64_t g0, std::int64_t g1) {
  const ElemSpec& el = *j.el;
  const bool elementwise = j.sc->mode == ScaleMode::None;
  if (j.sc->asym) {
    const MiniQ dummy(ElemSpec{});
    QuantLoop<M, false, true, kFake, kEnc>(j, dummy, g0, g1);
    return;
  }
  switch (el.kind) {
    case ElemKind::Mini: {
      if constexpr (M == RoundMode::Even) {
        if (MiniRneQ::Eligible(el)) {
          RunQuantizer<M, kFake, kEnc>(j, MiniRneQ(el), elementwise, g0, g1);
          break;
        }
      }
      RunQuantizer<M, kFake, kEnc>(j, MiniQ(el), elementwise, g0, g1);
      break;
    }
    case ElemKind::Int:
      RunQuantizer<M, kFake, kEnc>(j, IntQ(el), elementwise, g0, g1);
      break;
    case ElemKind::Codebook: {
      const CodebookQ q(el);
      if (TryFixed<M, kFake, kEnc>(j, q, g0, g1)) return;
      QuantLoop<M, false, false, kFake, kEnc>(j, q, g0, g1);
      break;
    }
  }
}

template <bool kFake, bool kEnc>
void QuantOp(const Job& j, std::int64_t g0, std::int64_t g1) {
  switch (j.mode) {
    case RoundMode::Even: QuantMode<RoundMode::Even, kFake, kEnc>(j, g0, g1); break;
    case RoundMode::Away: QuantMode<RoundMode::Away, kFake, kEnc>(j, g0, g1); break;
    case RoundMode::Zero: QuantMode<RoundMode::Zero, kFake, kEnc>(j, g0, g1); break;
    case RoundMode::Floor: QuantMode<RoundMode::Floor, kFake, kEnc>(j, g0, g1); break;
    case RoundMode::Ceil: QuantMode<RoundMode::Ceil, kFake, kEnc>(j, g0, g1); break;
    case RoundMode::Stochastic: break;  // never selected (fast_path.cpp)
  }
}

void QuantGroups(const Job& j, std::int64_t g0, std::int64_t g1) {
  if (j.out && j.codes) QuantOp<true, true>(j, g0, g1);
  else if (j.codes) QuantOp<false, true>(j, g0, g1);
  else QuantOp<true, false>(j, g0, g1);
  if (j.stream_out) hwy::FlushStream();  // order the non-temporal stores before the caller's
}

#if HWY_TARGET != HWY_SCALAR
// The codes of N consecutive elements from element `pos` (a byte boundary) of an LSB-first 4-, 6-, 8- or
// 16-bit stream, one per lane, straight from the bytes (no unpacking into a buffer). 4-bit: each byte
// becomes a 64-bit lane lo | hi << 32, i.e. the two codes in element order. 6-bit: four codes per three
// bytes; lane k takes bytes 3(k/4) .. 3(k/4)+2 (one 128-bit block holds four lanes, so the byte shuffle
// stays inside blocks of the 16 loaded bytes, broadcast to every block) and shifts by 6(k%4). It reads
// 16 bytes from pos * 6 / 8: the caller keeps them inside the stream.
HWY_INLINE VI LoadCodes(const std::uint8_t* codes, std::int64_t pos, int bits) {
  const DI di;
  const DU du;
  if (bits == 8) return hn::PromoteTo(di, hn::LoadU(hn::Rebind<std::uint8_t, DI>(), codes + pos));
  if (bits == 16) {
    const hn::Rebind<std::uint16_t, DI> d16;
    return hn::PromoteTo(di, hn::LoadU(d16, reinterpret_cast<const std::uint16_t*>(codes) + pos));
  }
  if (bits == 6) {
    const hn::Repartition<std::uint8_t, DI> d8;
    alignas(64) static constexpr std::uint8_t kIdx[64] = {
        0, 1, 2, 0x80, 0, 1, 2, 0x80, 0, 1, 2, 0x80, 0, 1, 2, 0x80, 3, 4, 5, 0x80, 3, 4, 5, 0x80, 3, 4, 5, 0x80, 3, 4, 5, 0x80,
        6, 7, 8, 0x80, 6, 7, 8, 0x80, 6, 7, 8, 0x80, 6, 7, 8, 0x80, 9, 10, 11, 0x80, 9, 10, 11, 0x80, 9, 10, 11, 0x80, 9, 10, 11, 0x80};
    alignas(64) static constexpr std::uint32_t kShift[16] = {0, 6, 12, 18, 0, 6, 12, 18, 0, 6, 12, 18, 0, 6, 12, 18};
    static_assert(kMaxLanes <= 16, "6-bit code loads cover up to 16 lanes");
    const auto w = hn::BitCast(du, hn::TableLookupBytesOr0(hn::LoadDup128(d8, codes + pos / 4 * 3), hn::Load(d8, kIdx)));
    return hn::BitCast(di, hn::And(w >> hn::Load(du, kShift), hn::Set(du, 63u)));
  }
  using D64 = hn::Repartition<std::uint64_t, DI>;
  const D64 d64;
  const auto b = hn::LoadU(hn::Rebind<std::uint8_t, D64>(), codes + pos / 2);
  const auto x = hn::PromoteTo(d64, hn::PromoteTo(hn::Rebind<std::uint32_t, D64>(), b));
  return hn::BitCast(di, hn::Or(hn::And(x, hn::Set(d64, 0xFu)), hn::ShiftLeft<28>(hn::And(x, hn::Set(d64, 0xF0u)))));
}

// Element values of N codes by ElemSpec::dec's formula (fast_path.cpp's arith_value, which checked it
// against the table for every code), or from the table where a lane holds a code the formula gets wrong.
class ArithDecoder {
 public:
  explicit ArithDecoder(const ElemSpec& e)
      : kind_(e.dec), bits_(e.bits), mshift_(23 - e.mbits), lut_(e.lut.data()),
        magmask_(hn::Set(DI(), static_cast<std::int32_t>((1u << (e.bits - 1)) - 1))),
        special_(hn::Set(DI(), static_cast<std::int32_t>(e.dec_special))),
        extra_(hn::Set(DI(), static_cast<std::int32_t>(e.dec_extra))),
        sublim_(hn::Set(DI(), e.dec == DecodeArith::Mini ? (1 << e.mbits) : 0)),
        normadd_(hn::Set(DI(), e.dec == DecodeArith::Mini ? (127 - e.bias) << 23 : 0)),
        mul_(hn::Set(D(), e.dec == DecodeArith::Mini ? pow2f(1 - e.bias - e.mbits)
                          : e.dec == DecodeArith::Int ? pow2f(-e.frac_bits) : 1.0f)) {}
  bool on() const { return kind_ != DecodeArith::None; }
  HWY_INLINE V operator()(VI c) const {
    const D d;
    const DU du;
    const DI di;
    const VI mag = hn::And(c, magmask_);
    if (!hn::AllTrue(di, hn::AndNot(hn::Eq(c, extra_), hn::Lt(mag, special_)))) return hn::GatherIndex(d, lut_, c);
    const VU cu = hn::BitCast(du, c);
    if (kind_ == DecodeArith::Shift) return hn::BitCast(d, hn::ShiftLeftSame(cu, 32 - bits_));
    if (kind_ == DecodeArith::Int) {
      const VI v = hn::ShiftRightSame(hn::BitCast(di, hn::ShiftLeftSame(cu, 32 - bits_)), 32 - bits_);
      return hn::Mul(hn::ConvertTo(d, v), mul_);
    }
    const V sub = hn::Mul(hn::ConvertTo(d, mag), mul_);
    const V norm = hn::BitCast(d, hn::Add(hn::ShiftLeftSame(mag, mshift_), normadd_));
    const V r = hn::IfThenElse(hn::RebindMask(d, hn::Lt(mag, sublim_)), sub, norm);
    return hn::Or(r, hn::BitCast(d, hn::ShiftLeft<31>(hn::ShiftRightSame(cu, bits_ - 1))));
  }

 private:
  DecodeArith kind_;
  int bits_, mshift_;
  const float* lut_;
  VI magmask_, special_, extra_, sublim_, normadd_;
  V mul_;
};
#endif

void DecodeGroups(const Job& j, std::int64_t g0, std::int64_t g1) {
  const D d;
  const DI di;
  const DU16 du16;
  const std::size_t N = hn::Lanes(d);
  const ElemSpec& el = *j.el;
  const ScaleSpec& sc = *j.sc;
  const float* lut = el.lut.data();
  HWY_ALIGN std::uint16_t cbuf[kChunk + kMaxLanes];
#if HWY_TARGET != HWY_SCALAR
  // 4-bit values fit one register's lanes (16 on AVX-512): looked up there instead of gathered.
  const bool in_register = !sc.asym && el.bits == 4 && N >= 16 && el.lut.size() >= N;
  const V table = in_register ? hn::LoadU(d, lut) : hn::Zero(d);
  const ArithDecoder arith(el);
  const bool by_formula = !sc.asym && !in_register && arith.on();
#endif
  std::int64_t row = g0 / j.gpr, b = g0 % j.gpr - 1;
  for (std::int64_t g = g0; g < g1; ++g) {
    if (++b == j.gpr) {
      b = 0;
      ++row;
    }
    const std::int64_t start = row * j.len + b * j.block;
    const std::int64_t n = std::min(j.block, j.len - b * j.block);
    float* out = j.out + (start - j.out_base);
    float s = 1.0f;
    bool scaled = sc.mode != ScaleMode::None;
    if (scaled) {
      const int nb = sc.s_bits / 8;
      std::uint32_t code = 0;
      for (int k = 0; k < nb; ++k) code |= static_cast<std::uint32_t>(j.scales[g * nb + k]) << (8 * k);
      if (sc.is_fp32) std::memcpy(&s, &code, 4);
      else s = sc.s_lut[code];
      if (std::isnan(s)) {
        std::fill(out, out + n, std::numeric_limits<float>::quiet_NaN());
        continue;
      }
      if (sc.tensor_scale) s = s * j.tensor_scale;
    }
    const V vs = hn::Set(d, s);
    const VI vz = hn::Set(di, sc.asym ? static_cast<std::int32_t>(j.zeros[g]) : 0);
    std::int64_t done = 0;  // elements decoded straight from the code bytes
#if HWY_TARGET != HWY_SCALAR
    // 4-, 6-, 8- and 16-bit codes of a group that starts on a byte: whole vectors read from the bytes, the
    // values by the element's formula where it has one (`arith`), else looked up in `table` (4-bit, where
    // they fit) or gathered. The rest goes through unpack_codes.
    if ((el.bits == 4 || el.bits == 6 || el.bits == 8 || el.bits == 16) && (start * el.bits) % 8 == 0) {
      for (; done + static_cast<std::int64_t>(N) <= n; done += static_cast<std::int64_t>(N)) {
        if (el.bits == 6 && (start + done) / 4 * 3 + 16 > j.code_bytes) break;  // LoadCodes reads 16 bytes
        const VI idx = LoadCodes(j.codes, start + done, el.bits);
        V r;
        if (sc.asym) r = hn::Mul(hn::ConvertTo(d, hn::Sub(idx, vz)), vs);
        else if (in_register) r = hn::TableLookupLanes(table, hn::IndicesFromVec(d, idx));
        else if (by_formula) r = arith(idx);
        else r = hn::GatherIndex(d, lut, idx);
        if (scaled && !sc.asym) r = hn::Mul(r, vs);
        StoreOut(r, out + done, StreamHere(j, out + done));
      }
    }
#endif
    for (std::int64_t c = done; c < n; c += kChunk) {
      const std::int64_t m = std::min(kChunk, n - c);
      unpack_codes(j.codes, start + c, m, el.bits, cbuf);
      std::fill(cbuf + m, cbuf + m + kMaxLanes, std::uint16_t{0});
      for (std::int64_t i = 0; i < m; i += N) {
        const VI idx = hn::PromoteTo(di, hn::LoadU(du16, cbuf + i));
        V r;
        if (sc.asym) r = hn::Mul(hn::ConvertTo(d, hn::Sub(idx, vz)), vs);
        else if (scaled) r = hn::Mul(hn::GatherIndex(d, lut, idx), vs);
        else r = hn::GatherIndex(d, lut, idx);
        if (i + static_cast<std::int64_t>(N) <= m) {
          StoreOut(r, out + c + i, StreamHere(j, out + c + i));
        } else {
          HWY_ALIGN float buf[kMaxLanes];
          hn::Store(r, d, buf);
          std::memcpy(out + c + i, buf, static_cast<std::size_t>(m - i) * sizeof(float));
        }
      }
    }
  }
  if (j.stream_out) hwy::FlushStream();
}

float FiniteAbsMax(const float* x, std::int64_t n) {
  const D d;
  const DU du;
  const DI di;
  const std::size_t N = hn::Lanes(d);
  const VU absmask = hn::Set(du, 0x7fffffffu);
  const VI maxfinite = hn::Set(di, 0x7f7fffff);
  auto scalar = [&](std::int64_t b, std::int64_t e, std::int32_t best) {
    for (std::int64_t i = b; i < e; ++i) {
      std::uint32_t u;
      std::memcpy(&u, x + i, 4);
      u &= 0x7fffffffu;
      if (u < 0x7f800000u) best = std::max(best, static_cast<std::int32_t>(u));
    }
    return best;
  };
  // The vector loop starts at a vector-aligned address: a load that straddles two cache lines costs
  // a third more time in this DRAM-bound pass (64 MiB, one thread, 16-byte aligned input: 0.6 instead
  // of 0.45 memcpy times).
  // (LoadU all the same: a float array need not be 4-byte aligned, e.g. in a mapped safetensors file.)
  const std::uintptr_t mis = (reinterpret_cast<std::uintptr_t>(x) / sizeof(float)) % N;
  const std::int64_t head = std::min<std::int64_t>(n, mis == 0 ? 0 : static_cast<std::int64_t>(N - mis));
  VI m = hn::Zero(di);
  std::int64_t i = head;
  for (; i + static_cast<std::int64_t>(N) <= n; i += N) {
    const VI a = hn::BitCast(di, hn::And(hn::BitCast(du, hn::LoadU(d, x + i)), absmask));
    m = hn::Max(m, hn::IfThenZeroElse(hn::Gt(a, maxfinite), a));
  }
  std::int32_t best = scalar(0, head, hn::GetLane(hn::MaxOfLanes(di, m)));
  best = scalar(i, n, best);
  float r;
  std::memcpy(&r, &best, 4);
  return r;
}

// The tensor-scale pass over groups [g0, g1) of a job FixedBlocks covers (blocks of NV vectors): max |x|
// over the finite values, and, from the same read, each group's largest |x| bits (NaN / Inf included)
// into umax[g], so that the quantization pass skips its own block-maxima pass (Job::group_umax) and
// reads each batch only once, in its element loop.
template <int NV>
HWY_NOINLINE float GroupMaxima(const Job& j, std::int64_t g0, std::int64_t g1, std::uint32_t* umax) {
  const DI di;
  const std::int64_t N = static_cast<std::int64_t>(hn::Lanes(di));
  const std::int64_t block = j.block;
  const VI maxfinite = hn::Set(di, 0x7f7fffff);
  const std::int64_t batch = std::max<std::int64_t>(1, kChunk / block);
  // BlockMaxima writes whole vectors (zeros past the batch): into a local buffer, so that they never
  // reach the next range's slots, which another thread may be writing.
  HWY_ALIGN std::uint32_t loc[kChunk + kMaxLanes];
  VI m = hn::Zero(di);
  float best = 0.0f;  // finite maxima of blocks with NaN / Inf
  for (std::int64_t gb = g0; gb < g1; gb += batch) {
    const std::int64_t nb = std::min(batch, g1 - gb);
    const float* x0 = j.in + (gb * block - j.in_base);
    BlockMaxima<NV>(x0, block, nb, loc);
    auto special = hn::FirstN(di, 0);
    for (std::int64_t k = 0; k < nb; k += N) {
      const VI a = hn::BitCast(di, hn::Load(DU(), loc + k));  // lanes past nb hold 0
      const auto sp = hn::Gt(a, maxfinite);
      special = hn::Or(special, sp);
      m = hn::Max(m, hn::IfThenZeroElse(sp, a));
    }
    if (!hn::AllFalse(di, special)) {
      for (std::int64_t k = 0; k < nb; ++k) {
        if (loc[k] > 0x7f7fffffu) best = std::max(best, FiniteAbsMax(x0 + k * block, block));
      }
    }
    std::memcpy(umax + gb, loc, static_cast<std::size_t>(nb) * sizeof(std::uint32_t));
  }
  const std::int32_t lanes = hn::GetLane(hn::MaxOfLanes(di, m));
  float r;
  std::memcpy(&r, &lanes, 4);
  return std::max(r, best);
}

bool GroupMaximaCover(const Job& j) { return FixedVectors(j) != 0; }

float GroupsAbsMax(const Job& j, std::int64_t g0, std::int64_t g1, std::uint32_t* umax) {
  switch (FixedVectors(j)) {
    case 1: return GroupMaxima<1>(j, g0, g1, umax);
    case 2: return GroupMaxima<2>(j, g0, g1, umax);
    case 4: return GroupMaxima<4>(j, g0, g1, umax);
    case 8: return GroupMaxima<8>(j, g0, g1, umax);
    default: HWY_ASSERT(false);  // the caller asked GroupMaximaCover first
  }
  return 0.0f;
}

}  // namespace qcast::kern::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qcast::kern {

HWY_EXPORT(QuantGroups);
HWY_EXPORT(DecodeGroups);
HWY_EXPORT(FiniteAbsMax);
HWY_EXPORT(GroupMaximaCover);
HWY_EXPORT(GroupsAbsMax);

void quant_groups(const Job& job, std::int64_t g0, std::int64_t g1) { HWY_DYNAMIC_DISPATCH(QuantGroups)(job, g0, g1); }
void decode_groups(const Job& job, std::int64_t g0, std::int64_t g1) { HWY_DYNAMIC_DISPATCH(DecodeGroups)(job, g0, g1); }
float finite_absmax(const float* x, std::int64_t n) { return HWY_DYNAMIC_DISPATCH(FiniteAbsMax)(x, n); }
bool group_maxima_cover(const Job& job) { return HWY_DYNAMIC_DISPATCH(GroupMaximaCover)(job); }
float groups_absmax(const Job& job, std::int64_t g0, std::int64_t g1, std::uint32_t* umax) {
  return HWY_DYNAMIC_DISPATCH(GroupsAbsMax)(job, g0, g1, umax);
}

std::vector<std::int64_t> available_targets() {
  std::vector<std::int64_t> out;
  const std::int64_t supported = hwy::SupportedTargets();
  for (int bit = 0; bit < 63; ++bit) {
    const std::int64_t t = std::int64_t{1} << bit;
    if ((t & HWY_TARGETS) && (t & supported)) out.push_back(t);
  }
  return out;  // lower bit = better target on x86
}

std::string target_name(std::int64_t target) { return hwy::TargetName(target); }

void force_target(std::int64_t target) { hwy::SetSupportedTargetsForTest(target); }

std::string current_target() {
  const std::int64_t supported = hwy::SupportedTargets() & HWY_TARGETS;
  if (supported == 0) return "none";
  return hwy::TargetName(supported & -supported);
}

}  // namespace qcast::kern
#endif
