// Element: bit-exact encode / decode / quantize of one value. The value-domain quantizer works in
// double (every float32 and every element value is exact there), so rounding is exact for all modes.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "qcast/error.hpp"
#include "qcast/format.hpp"

namespace qcast {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

bool is_unsigned_float(FloatVariant v) { return v == FloatVariant::E8m0 || v == FloatVariant::Ufn; }

// Largest exponent field used by finite values and the largest mantissa at that exponent.
void top_code(const Element& e, int& exp_field, std::uint32_t& mant) {
  const int all_ones = (1 << e.ebits) - 1;
  const std::uint32_t mant_ones = (1u << e.mbits) - 1;
  switch (e.variant) {
    case FloatVariant::Ieee:
      exp_field = all_ones - 1;
      mant = mant_ones;
      break;
    case FloatVariant::Fn:
    case FloatVariant::Ufn:
      if (e.mbits == 0) {
        exp_field = all_ones - 1;
        mant = 0;
      } else {
        exp_field = all_ones;
        mant = mant_ones - 1;
      }
      break;
    case FloatVariant::Fnuz:
    case FloatVariant::Finite:
      exp_field = all_ones;
      mant = mant_ones;
      break;
    case FloatVariant::E8m0:
      exp_field = all_ones - 1;
      mant = 0;
      break;
  }
}

// Rounds a non-negative magnitude q (exact double) to an integer according to `mode` for a value of sign `neg`.
double round_magnitude(double q, bool neg, RoundMode mode, std::uint32_t rnd) {
  const double fl = std::floor(q);
  const double frac = q - fl;
  switch (mode) {
    case RoundMode::Even:
      if (frac > 0.5) return fl + 1;
      if (frac < 0.5) return fl;
      return std::fmod(fl, 2.0) == 0.0 ? fl : fl + 1;
    case RoundMode::Away:
      return frac >= 0.5 ? fl + 1 : fl;
    case RoundMode::Zero:
      return fl;
    case RoundMode::Floor:
      return neg ? (frac > 0 ? fl + 1 : fl) : fl;
    case RoundMode::Ceil:
      return neg ? fl : (frac > 0 ? fl + 1 : fl);
    case RoundMode::Stochastic:
      // Round up with probability frac: rnd / 2^32 < frac, compared exactly.
      return static_cast<double>(rnd) < frac * 4294967296.0 ? fl + 1 : fl;
  }
  return fl;
}

}  // namespace

bool Element::is_unsigned() const {
  return (kind == Kind::Int && !is_signed) || (kind == Kind::Float && is_unsigned_float(variant));
}

bool Element::has_nan() const {
  if (kind != Kind::Float) return false;
  if (variant == FloatVariant::Finite) return false;
  if (variant == FloatVariant::Ieee) return mbits > 0;
  return true;
}

bool Element::has_inf() const { return kind == Kind::Float && variant == FloatVariant::Ieee; }

std::uint32_t Element::num_codes() const {
  if (kind == Kind::Codebook) return static_cast<std::uint32_t>(values.size());
  if (kind == Kind::Float && variant == FloatVariant::Ufn) return 1u << (ebits + mbits);  // the sign bit is unused
  return bits >= 32 ? 0xffffffffu : (1u << bits);
}

double Element::max_value() const {
  switch (kind) {
    case Kind::Int:
      return std::ldexp(is_signed ? std::ldexp(1.0, bits - 1) - 1 : std::ldexp(1.0, bits) - 1, -frac_bits);
    case Kind::Codebook: {
      double m = 0;
      for (float v : values) m = std::max(m, static_cast<double>(std::fabs(v)));
      return m;
    }
    case Kind::Float: {
      int ef = 0;
      std::uint32_t mant = 0;
      top_code(*this, ef, mant);
      return std::ldexp(1.0 + std::ldexp(static_cast<double>(mant), -mbits), ef - bias);
    }
  }
  return 0;
}

double Element::min_positive() const {
  switch (kind) {
    case Kind::Int:
      return std::ldexp(1.0, -frac_bits);
    case Kind::Codebook: {
      double m = std::numeric_limits<double>::infinity();
      for (float v : values)
        if (v != 0) m = std::min(m, static_cast<double>(std::fabs(v)));
      return m;
    }
    case Kind::Float:
      if (variant == FloatVariant::E8m0) return std::ldexp(1.0, -bias);
      return std::ldexp(1.0, 1 - bias - mbits);
  }
  return 0;
}

int Element::emax() const {
  int e;
  std::frexp(max_value(), &e);
  return e - 1;
}

float Element::quantize(float x, RoundMode mode, std::uint32_t rnd, Overflow ov) const {
  if (std::isnan(x)) return kNaN;
  const bool neg = std::signbit(x);
  const double maxv = max_value();
  if (std::isinf(x)) {
    if (is_unsigned() && neg) return kind == Kind::Float && variant == FloatVariant::E8m0 ? static_cast<float>(min_positive()) : 0.0f;
    if (has_inf()) return x;
    if (ov == Overflow::Inf && has_nan()) return kNaN;
    // -inf saturates as a huge finite negative does: to the two's-complement minimum of a signed integer.
    if (kind == Kind::Int && is_signed && neg) return static_cast<float>(-(maxv + std::ldexp(1.0, -frac_bits)));
    return static_cast<float>(neg ? -maxv : maxv);
  }
  if (kind == Kind::Codebook) {
    // Neighbours lo <= x <= hi in the sorted list.
    auto it = std::lower_bound(values.begin(), values.end(), x);
    if (it == values.begin()) return values.front();
    if (it == values.end()) return values.back();
    const double hi = *it, lo = *(it - 1);
    if (hi == x) return *it;
    const double t = (static_cast<double>(x) - lo) / (hi - lo);
    const std::size_t ilo = static_cast<std::size_t>(it - values.begin()) - 1;
    bool up;
    switch (mode) {
      case RoundMode::Even: up = t > 0.5 || (t == 0.5 && (ilo % 2 == 1)); break;
      case RoundMode::Away: up = t > 0.5 || (t == 0.5 && std::fabs(hi) >= std::fabs(lo)); break;
      case RoundMode::Zero: up = std::fabs(hi) <= std::fabs(lo); break;
      case RoundMode::Floor: up = false; break;
      case RoundMode::Ceil: up = true; break;
      case RoundMode::Stochastic: up = static_cast<double>(rnd) < t * 4294967296.0; break;
      default: up = false;
    }
    return static_cast<float>(up ? hi : lo);
  }
  if (is_unsigned() && neg && x != 0) {
    if (variant == FloatVariant::E8m0 && kind == Kind::Float) return static_cast<float>(min_positive());
    return 0.0f;
  }
  const double a = std::fabs(static_cast<double>(x));
  double step;
  if (kind == Kind::Int) {
    step = std::ldexp(1.0, -frac_bits);
  } else if (variant == FloatVariant::E8m0) {
    // Powers of two only: round log-domain on the linear value between 2^e and 2^(e+1).
    if (a == 0) return static_cast<float>(min_positive());
    int e;
    std::frexp(a, &e);
    e -= 1;  // a in [2^e, 2^(e+1))
    const double lo = std::ldexp(1.0, e);
    double q = round_magnitude(a / lo, false, mode == RoundMode::Floor || mode == RoundMode::Zero ? RoundMode::Zero : mode, rnd);
    // q in {1, 2}: values in [1, 2) round to 1 or 2 in units of lo (not a uniform grid, but two neighbours).
    double v = q >= 2 ? 2 * lo : lo;
    v = std::clamp(v, min_positive(), maxv);
    return static_cast<float>(v);
  } else {
    const int min_exp = 1 - bias;
    int e;
    std::frexp(a, &e);
    e -= 1;
    if (a == 0 || e < min_exp) e = min_exp;
    step = std::ldexp(1.0, e - mbits);
  }
  double v = round_magnitude(a / step, neg, mode, rnd) * step;
  // Two's complement reaches one step further below zero (-128 for int8); symmetric scaled formats
  // clamp to +-max_value() themselves (see ref::quantize_value).
  if (kind == Kind::Int && is_signed && neg && v > maxv) {
    v = std::min(v, maxv + step);
    return static_cast<float>(-v);
  }
  if (v > maxv) {
    if (ov == Overflow::Inf && kind == Kind::Float && has_inf()) return neg ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    if (ov == Overflow::Inf && kind == Kind::Float && has_nan()) return kNaN;
    v = maxv;
  }
  if (kind == Kind::Float && variant == FloatVariant::Fnuz && v == 0) return 0.0f;
  return static_cast<float>(neg ? -v : v);
}

std::uint32_t Element::encode(float x, RoundMode mode, std::uint32_t rnd, Overflow ov) const {
  if (std::isnan(x)) {
    if (!has_nan()) throw Error("NaN cannot be encoded in " + name + " (it has no NaN code)");
  }
  const float v = quantize(x, mode, rnd, ov);
  switch (kind) {
    case Kind::Codebook: {
      auto it = std::lower_bound(values.begin(), values.end(), v);
      return static_cast<std::uint32_t>(it - values.begin());
    }
    case Kind::Int: {
      const long long q = std::llround(std::ldexp(static_cast<double>(v), frac_bits));
      return static_cast<std::uint32_t>(q) & (bits >= 32 ? 0xffffffffu : ((1u << bits) - 1));
    }
    case Kind::Float:
      break;
  }
  const int all_ones = (1 << ebits) - 1;
  const std::uint32_t sign_bit = is_unsigned() ? 0 : (1u << (ebits + mbits));
  if (variant == FloatVariant::E8m0) {
    if (std::isnan(v)) return 0xff;
    int e;
    std::frexp(static_cast<double>(v), &e);
    return static_cast<std::uint32_t>(e - 1 + bias);
  }
  if (std::isnan(v)) {
    switch (variant) {
      case FloatVariant::Ieee: return (static_cast<std::uint32_t>(all_ones) << mbits) | (1u << (mbits - 1));
      case FloatVariant::Fnuz: return sign_bit;
      default: return (std::signbit(x) ? sign_bit : 0) | (static_cast<std::uint32_t>(all_ones) << mbits) | ((1u << mbits) - 1);
    }
  }
  const std::uint32_t s = std::signbit(v) && !is_unsigned() && !(variant == FloatVariant::Fnuz && v == 0) ? sign_bit : 0;
  const double a = std::fabs(static_cast<double>(v));
  if (std::isinf(v)) return s | (static_cast<std::uint32_t>(all_ones) << mbits);
  if (a == 0) return s;
  int e;
  std::frexp(a, &e);
  e -= 1;
  const int min_exp = 1 - bias;
  if (e < min_exp) return s | static_cast<std::uint32_t>(std::ldexp(a, bias - 1 + mbits));  // subnormal
  const std::uint32_t mant = static_cast<std::uint32_t>(std::ldexp(a, mbits - e)) - (1u << mbits);
  return s | (static_cast<std::uint32_t>(e + bias) << mbits) | mant;
}

float Element::decode(std::uint32_t code) const {
  switch (kind) {
    case Kind::Codebook:
      assert(code < values.size());
      return values[code];
    case Kind::Int: {
      long long q = code;
      if (is_signed && bits < 64 && (code >> (bits - 1)) & 1u) q -= (1LL << bits);
      return static_cast<float>(std::ldexp(static_cast<double>(q), -frac_bits));
    }
    case Kind::Float:
      break;
  }
  const int all_ones = (1 << ebits) - 1;
  if (variant == FloatVariant::E8m0) {
    if (code == static_cast<std::uint32_t>(all_ones)) return kNaN;
    return static_cast<float>(std::ldexp(1.0, static_cast<int>(code) - bias));
  }
  const std::uint32_t mant_mask = (1u << mbits) - 1;
  const bool neg = !is_unsigned() && ((code >> (ebits + mbits)) & 1u);
  const int ef = static_cast<int>((code >> mbits) & static_cast<std::uint32_t>(all_ones));
  const std::uint32_t m = code & mant_mask;
  if (variant == FloatVariant::Fnuz && neg && ef == 0 && m == 0) return kNaN;
  if (variant == FloatVariant::Ieee && ef == all_ones) {
    if (m == 0) return neg ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    return kNaN;
  }
  if ((variant == FloatVariant::Fn || variant == FloatVariant::Ufn) && ef == all_ones && m == mant_mask) return kNaN;
  double a = ef == 0 ? std::ldexp(static_cast<double>(m), 1 - bias - mbits)
                     : std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -mbits), ef - bias);
  return static_cast<float>(neg ? -a : a);
}

}  // namespace qcast
