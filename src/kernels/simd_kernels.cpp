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
#ifndef HWY_COMPILE_ALL_ATTAINABLE
#define HWY_COMPILE_ALL_ATTAINABLE  // EMU128 (generic) + SSE4 + AVX2 + AVX-512
#endif
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_AVX3_DL)
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/simd.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"


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

HWY_INLINE float pow2f(int e) { return std::ldexp(1.0f, e); }

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

struct MiniQ {
  V maxv, sub_thr, up, down;
  VU half, low, bias_sub, sign_code, nan_code, inf_code, all_ones;
  int s;
  bool has_sub, ieee, fn_nan;
  explicit MiniQ(const ElemSpec& e) {
    const D d;
    const DU du;
    s = 23 - e.mbits;
    has_sub = e.has_sub_path;
    ieee = e.ieee;
    fn_nan = e.fn_nan;
    maxv = hn::Set(d, e.maxv);
    sub_thr = hn::Set(d, has_sub ? pow2f(e.emin) : 0.0f);
    up = hn::Set(d, has_sub ? pow2f(e.mbits - e.emin) : 1.0f);
    down = hn::Set(d, has_sub ? pow2f(e.emin - e.mbits) : 1.0f);
    half = hn::Set(du, 1u << (s - 1));
    low = hn::Set(du, (1u << s) - 1);
    bias_sub = hn::Set(du, static_cast<std::uint32_t>(127 - e.bias) << e.mbits);
    sign_code = hn::Set(du, 1u << (e.ebits + e.mbits));
    nan_code = hn::Set(du, e.nan_code);
    inf_code = hn::Set(du, e.inf_code);
    all_ones = hn::Set(du, (1u << (e.ebits + e.mbits)) - 1);
  }
  template <RoundMode M, bool kCode, bool kElementwise>
  HWY_INLINE V Apply(V v, VU* code) const {
    const D d;
    const DU du;
    const VU vu = hn::BitCast(du, v);
    const VU sign = hn::And(vu, hn::Set(du, 0x80000000u));
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
      c = hn::Or(c, hn::IfThenElseZero(negu, sign_code));
      if constexpr (kElementwise) {
        const MU nanm = hn::RebindMask(du, hn::IsNaN(v));
        const VU nc = fn_nan ? hn::Or(hn::IfThenElseZero(negu, sign_code), all_ones) : nan_code;
        if (ieee) c = hn::IfThenElse(hn::RebindMask(du, hn::IsInf(v)), hn::Or(hn::IfThenElseZero(negu, sign_code), inf_code), c);
        c = hn::IfThenElse(nanm, nc, c);
      }
      *code = c;
    }
    if constexpr (kElementwise) {
      if (ieee) out = hn::IfThenElse(hn::IsInf(v), v, out);
      out = hn::IfThenElse(hn::IsNaN(v), hn::Set(d, std::numeric_limits<float>::quiet_NaN()), out);
    }
    return out;
  }
};

struct IntQ {
  V up, down, maxc;
  VU mask;
  explicit IntQ(const ElemSpec& e) {
    const D d;
    up = hn::Set(d, pow2f(e.frac_bits));
    down = hn::Set(d, pow2f(-e.frac_bits));
    maxc = hn::Set(d, e.max_code);
    mask = hn::Set(DU(), e.bits >= 32 ? 0xffffffffu : ((1u << e.bits) - 1));
  }
  template <RoundMode M, bool kCode, bool kElementwise>
  HWY_INLINE V Apply(V v, VU* code) const {
    const D d;
    const DU du;
    const VU vu = hn::BitCast(du, v);
    const VU sign = hn::And(vu, hn::Set(du, 0x80000000u));
    const V a = hn::BitCast(d, hn::Xor(vu, sign));
    const hn::Mask<D> neg = hn::RebindMask(d, hn::Ne(sign, hn::Zero(du)));
    const V r = hn::Min(RoundMag<M>(hn::Mul(a, up), neg), maxc);
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
    HWY_ALIGN float buf[kMaxLanes] = {};
    const std::int64_t m = std::min<std::int64_t>(N, n - i);
    V a;
    if (m == static_cast<std::int64_t>(N)) {
      a = hn::LoadU(d, x + i);
    } else {
      std::memcpy(buf, x + i, static_cast<std::size_t>(m) * sizeof(float));
      a = hn::Load(d, buf);
    }
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

HWY_INLINE void MxParams(const Scan& s, int emax, GroupP& p) {
  if (s.umax >= 0x7f800000u) {
    p.nan = true;
    p.scale = std::numeric_limits<float>::quiet_NaN();
    p.scale_code = 0xff;
    return;
  }
  const int E = s.umax == 0 ? -126 : static_cast<int>(s.umax >> 23) - 127;
  const int e = std::clamp(E - emax, -127, 127);
  p.scale = pow2f(e);
  p.inv = pow2f(-e);
  p.pow2 = true;
  p.scale_code = static_cast<std::uint32_t>(e + 127);
}

HWY_INLINE void StoreScale(const Job& j, std::int64_t g, std::uint32_t code) {
  if (!j.scales) return;
  const int nb = j.sc->s_bits / 8;
  std::uint8_t* p = j.scales + g * nb;
  for (int b = 0; b < nb; ++b) p[b] = static_cast<std::uint8_t>(code >> (8 * b));
}

// ---- the group loop ----

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
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::int64_t row = g / j.gpr, b = g % j.gpr;
    const std::int64_t start = row * j.len + b * j.block;
    const std::int64_t n = std::min(j.block, j.len - b * j.block);
    const float* x = j.in + start;
    GroupP p;
    if constexpr (!kElementwise) {
      const Scan s = ScanGroup<kAsym>(x, n);
      if (sc.mode == ScaleMode::MxFloor) {
        MxParams(s, sc.emax, p);
      } else {
        if (s.umax >= 0x7f800000u) {
          p.nan = true;
          p.scale = std::numeric_limits<float>::quiet_NaN();
          p.scale_code = sc.nan_code;
        } else {
          float amax;
          std::memcpy(&amax, &s.umax, 4);
          amax_params(sc, el, amax, s.lo, s.hi, j.tensor_scale, p);
        }
      }
      if constexpr (kEnc) {
        StoreScale(j, g, p.scale_code);
        if (j.zeros) j.zeros[g] = p.zero_code;
      }
      if (p.nan) {
        if constexpr (kFake) std::fill(j.out + start, j.out + start + n, std::numeric_limits<float>::quiet_NaN());
        continue;  // codes stay 0
      }
      if (p.zero_group) {
        if constexpr (kFake)
          for (std::int64_t i = 0; i < n; ++i) j.out[start + i] = std::signbit(x[i]) ? -0.0f : 0.0f;
        if constexpr (kEnc) {
          const std::uint32_t zc = kAsym ? p.zero_code : el.zero_code;
          if (zc != 0) {
            for (std::int64_t c = 0; c < n; c += kChunk) {
              const std::int64_t m = std::min(kChunk, n - c);
              std::fill(cbuf, cbuf + m, static_cast<std::uint16_t>(zc));
              pack_codes(j.codes, start + c, m, el.bits, cbuf);
            }
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
      std::int64_t i = 0;
      for (; i + static_cast<std::int64_t>(N) <= m; i += N) {
        VU code;
        const V r = one(hn::LoadU(d, x + c + i), &code);
        if constexpr (kFake) hn::StoreU(r, d, j.out + start + c + i);
        if constexpr (kEnc) hn::StoreU(hn::DemoteTo(du16, hn::BitCast(DI(), code)), du16, cbuf + i);
      }
      if (i < m) {
        HWY_ALIGN float buf[kMaxLanes] = {};
        HWY_ALIGN std::uint16_t cb[kMaxLanes] = {};
        const std::size_t rem = static_cast<std::size_t>(m - i);
        std::memcpy(buf, x + c + i, rem * sizeof(float));
        VU code;
        const V r = one(hn::Load(d, buf), &code);
        if constexpr (kFake) {
          hn::Store(r, d, buf);
          std::memcpy(j.out + start + c + i, buf, rem * sizeof(float));
        }
        if constexpr (kEnc) {
          hn::StoreU(hn::DemoteTo(du16, hn::BitCast(DI(), code)), du16, cb);
          std::memcpy(cbuf + i, cb, rem * sizeof(std::uint16_t));
        }
      }
      if constexpr (kEnc) {
        if constexpr (kElementwise) {
          if (j.saw_nan && !el.has_nan) {
            for (std::int64_t k = 0; k < m; ++k)
              if (std::isnan(x[c + k])) *j.saw_nan = 1;
          }
        }
        pack_codes(j.codes, start + c, m, el.bits, cbuf);
      }
    }
  }
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
      const MiniQ q(el);
      if (elementwise) QuantLoop<M, true, false, kFake, kEnc>(j, q, g0, g1);
      else QuantLoop<M, false, false, kFake, kEnc>(j, q, g0, g1);
      break;
    }
    case ElemKind::Int: {
      const IntQ q(el);
      if (elementwise) QuantLoop<M, true, false, kFake, kEnc>(j, q, g0, g1);
      else QuantLoop<M, false, false, kFake, kEnc>(j, q, g0, g1);
      break;
    }
    case ElemKind::Codebook: {
      const CodebookQ q(el);
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
}

void DecodeGroups(const Job& j, std::int64_t g0, std::int64_t g1) {
  const D d;
  const DI di;
  const DU16 du16;
  const std::size_t N = hn::Lanes(d);
  const ElemSpec& el = *j.el;
  const ScaleSpec& sc = *j.sc;
  const float* lut = el.lut.data();
  HWY_ALIGN std::uint16_t cbuf[kChunk + kMaxLanes];
  for (std::int64_t g = g0; g < g1; ++g) {
    const std::int64_t row = g / j.gpr, b = g % j.gpr;
    const std::int64_t start = row * j.len + b * j.block;
    const std::int64_t n = std::min(j.block, j.len - b * j.block);
    float* out = j.out + start;
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
    for (std::int64_t c = 0; c < n; c += kChunk) {
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
          hn::StoreU(r, d, out + c + i);
        } else {
          HWY_ALIGN float buf[kMaxLanes];
          hn::Store(r, d, buf);
          std::memcpy(out + c + i, buf, static_cast<std::size_t>(m - i) * sizeof(float));
        }
      }
    }
  }
}

float FiniteAbsMax(const float* x, std::int64_t n) {
  const D d;
  const DU du;
  const DI di;
  const std::size_t N = hn::Lanes(d);
  const VU absmask = hn::Set(du, 0x7fffffffu);
  const VI maxfinite = hn::Set(di, 0x7f7fffff);
  VI m = hn::Zero(di);
  std::int64_t i = 0;
  for (; i + static_cast<std::int64_t>(N) <= n; i += N) {
    const VI a = hn::BitCast(di, hn::And(hn::BitCast(du, hn::LoadU(d, x + i)), absmask));
    m = hn::Max(m, hn::IfThenZeroElse(hn::Gt(a, maxfinite), a));
  }
  std::int32_t best = hn::GetLane(hn::MaxOfLanes(di, m));
  for (; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, x + i, 4);
    u &= 0x7fffffffu;
    if (u < 0x7f800000u) best = std::max(best, static_cast<std::int32_t>(u));
  }
  float r;
  std::memcpy(&r, &best, 4);
  return r;
}

}  // namespace qcast::kern::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qcast::kern {

HWY_EXPORT(QuantGroups);
HWY_EXPORT(DecodeGroups);
HWY_EXPORT(FiniteAbsMax);

void quant_groups(const Job& job, std::int64_t g0, std::int64_t g1) { HWY_DYNAMIC_DISPATCH(QuantGroups)(job, g0, g1); }
void decode_groups(const Job& job, std::int64_t g0, std::int64_t g1) { HWY_DYNAMIC_DISPATCH(DecodeGroups)(job, g0, g1); }
float finite_absmax(const float* x, std::int64_t n) { return HWY_DYNAMIC_DISPATCH(FiniteAbsMax)(x, n); }

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
