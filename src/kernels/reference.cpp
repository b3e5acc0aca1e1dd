#include "qcast/kernels/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "qcast/error.hpp"

namespace qcast::ref {

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// floor(log2(a)) for a > 0, exact.
int floor_log2(double a) {
  int e;
  std::frexp(a, &e);
  return e - 1;
}

}  // namespace

float tensor_scale_for(const Format& f, const float* data, std::int64_t n) {
  if (!f.scaling().tensor_scale) return 1.0f;
  float amax = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(data[i]);
    if (std::isfinite(a)) amax = std::max(amax, a);
  }
  const float denom = static_cast<float>(f.scaling().scale_elem.max_value() * f.elem().max_value());
  const float ts = amax / denom;
  return ts > 0 ? ts : 1.0f;
}

namespace {

// Group sum of squared errors for a candidate scale (symmetric), used by the mse rule.
double sse_for(const Format& f, float scale, const float* vals, std::size_t n) {
  double e = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float q = f.elem().quantize(vals[i] / scale) * scale;
    const double d = static_cast<double>(q) - vals[i];
    e += d * d;
  }
  return e;
}

}  // namespace

GroupParams group_params(const Format& f, const float* vals, std::size_t n, float ts, RoundMode mode) {
  GroupParams p;
  const auto& s = f.scaling();
  const Element& se = s.scale_elem;
  float amax = 0, lo = 0, hi = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = vals[i];
    if (!std::isfinite(v)) {
      p.nan = true;
      p.scale = kNaN;
      p.scale_code = se.encode(kNaN);
      return p;
    }
    amax = std::max(amax, std::fabs(v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const Element& el = f.elem();
  double raw;  // the unrounded ideal scale
  if (s.asym) {
    const double qrange = std::ldexp(1.0, el.bits) - 1;
    raw = (static_cast<double>(hi) - lo) / qrange;
  } else {
    raw = amax / el.max_value();
  }
  float scale = 0;
  auto pow2_scale = [&](int e) { return se.quantize(static_cast<float>(std::ldexp(1.0, std::clamp(e, -200, 200)))); };
  switch (s.rule) {
    case ScaleRule::Floor:
    case ScaleRule::MidMax: {
      int e;
      if (s.asym) {
        e = raw > 0 ? floor_log2(raw) : -126;
      } else {
        // OCP MX: shared exponent = floor(log2(amax)) - emax_elem; an all-zero block uses the smallest
        // fp32 normal as its amax (as the reference emulator does), giving the smallest scale.
        const double a = amax > 0 ? amax : std::ldexp(1.0, -126);
        e = floor_log2(a) - el.emax();
        if (s.rule == ScaleRule::MidMax) {
          const double mid = (el.max_value() + std::ldexp(1.0, el.emax() + 1)) / 2;
          if (a / std::ldexp(1.0, e) > mid) ++e;
        }
      }
      scale = pow2_scale(e);
      break;
    }
    case ScaleRule::Ceil:
      scale = raw > 0 ? pow2_scale(ceil_log2(raw)) : 0.0f;
      break;
    case ScaleRule::RCeil: {
      // torchao RCEIL / cuBLAS MX: the quotient is taken in float32, its exponent rounded up, clamped to
      // [-127, 127]. A biased exponent of 0 (2^-127, also an all-zero block) leaves the elements unscaled
      // (torchao's descale of 1.0 there), so they round to (signed) zero for every MX element type.
      const float q = static_cast<float>(amax) / static_cast<float>(el.max_value());
      const int e = q > 0 ? std::min(ceil_log2(q), 127) : -127;
      if (e <= -127) {
        p.scale_code = 0;
        p.scale = std::ldexp(1.0f, -127);
        p.divisor = 1.0f;
        return p;
      }
      scale = pow2_scale(e);
      break;
    }
    case ScaleRule::Amax:
    case ScaleRule::Mse: {
      if (s.tensor_scale) {
        // NVFP4: block scale relative to the fp32 tensor scale, rounded into the scale element.
        const float bs = se.quantize(static_cast<float>(amax / el.max_value()) / ts, RoundMode::Even);
        scale = bs;
      } else {
        scale = raw > 0 ? se.quantize(static_cast<float>(raw), RoundMode::Even) : 0.0f;
      }
      if (s.rule == ScaleRule::Mse && scale > 0 && !s.asym) {
        // Search shrunken scales (clipping the largest values) for the least squared error.
        float best = scale;
        double best_e = sse_for(f, s.tensor_scale ? scale * ts : scale, vals, n);
        for (int k = 1; k <= 24; ++k) {
          const double alpha = 1.0 - 0.02 * k;
          float c = se.quantize(static_cast<float>(scale * alpha), RoundMode::Even);
          if (!(c > 0) || c == best) continue;
          const double e = sse_for(f, s.tensor_scale ? c * ts : c, vals, n);
          if (e < best_e) {
            best_e = e;
            best = c;
          }
        }
        scale = best;
      }
      break;
    }
  }
  p.scale_code = se.encode(scale);
  p.scale = s.tensor_scale ? scale * ts : scale;
  if (!(p.scale > 0)) {
    p.zero_group = true;
    return p;
  }
  if (s.asym) {
    const double qmax = std::ldexp(1.0, el.bits) - 1;
    double z = std::nearbyint(-static_cast<double>(lo) / p.scale);
    p.zero = static_cast<std::int32_t>(std::clamp(z, 0.0, qmax));
  }
  return p;
}

float quantize_value(const Format& f, const GroupParams& p, float x, RoundMode mode, std::uint32_t rnd, Overflow ov,
                     std::uint32_t* code) {
  const Element& el = f.elem();
  if (f.scaling().kind == ScaleKind::None) {
    if (code) *code = el.encode(x, mode, rnd, ov);
    return el.quantize(x, mode, rnd, ov);
  }
  if (p.nan) {
    if (code) *code = 0;
    return kNaN;
  }
  if (p.zero_group) {
    if (code) *code = f.scaling().asym ? static_cast<std::uint32_t>(p.zero) : el.encode(0.0f);
    return std::signbit(x) ? -0.0f : 0.0f;
  }
  const float v = x / (p.divisor > 0 ? p.divisor : p.scale);
  if (f.scaling().asym) {
    const double qmax = std::ldexp(1.0, el.bits) - 1;
    Element u;  // round on the integer grid with the requested mode
    u.kind = Element::Kind::Int;
    u.bits = 31;
    const double r = u.quantize(v, mode, rnd, ov);
    const double q = std::clamp(r + p.zero, 0.0, qmax);
    if (code) *code = static_cast<std::uint32_t>(q);
    return static_cast<float>(q - p.zero) * p.scale;
  }
  float q = el.quantize(v, mode, rnd, ov);
  if (el.kind == Element::Kind::Int) {
    // Symmetric integer scaling uses +-max_value() (e.g. +-127), never the extra two's-complement code.
    const float m = static_cast<float>(el.max_value());
    q = std::clamp(q, -m, m);
  }
  if (code) *code = el.encode(q);
  return q * p.scale;
}

float dequantize_code(const Format& f, const GroupParams& p, std::uint32_t code) {
  if (f.scaling().kind == ScaleKind::None) return f.elem().decode(code);
  if (p.nan) return kNaN;
  if (f.scaling().asym) return static_cast<float>(static_cast<double>(code) - p.zero) * p.scale;
  return f.elem().decode(code) * p.scale;
}

}  // namespace qcast::ref
