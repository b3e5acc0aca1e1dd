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
  return tensor_scale_from_amax(f, amax);
}

float tensor_scale_from_amax(const Format& f, float amax) {
  const float denom = static_cast<float>(f.scaling().scale_elem.max_value() * f.elem().max_value());
  const float ts = amax / denom;
  if (!(ts > 0)) return 1.0f;
  return std::min(ts, std::numeric_limits<float>::max());
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

// llama.cpp's reference quantizers of the 32-blocks (ggml-quants.c, quantize_row_{q8_0,q4_0,q5_0,q4_1,q5_1}_ref),
// step for step in float32: Q8_0 d = amax / 127, codes roundf(x / d); Q4_0 / Q5_0 d = the value of largest
// magnitude (the first one) / -2^(b-1), codes min(2^b - 1, trunc(x / d + 2^(b-1) + 0.5)) - 2^(b-1); Q4_1 / Q5_1
// d = (max - min) / (2^b - 1), codes min(2^b - 1, trunc((x - min) / d + 0.5)). "/ d" is "* (1 / d)" in float;
// d and min are stored in fp16 (round to nearest even) and decoding uses the stored values.
GroupParams ggml_params(const Format& f, const float* x, std::size_t n) {
  GroupParams p;
  p.ggml = true;
  const Element& h = f.scaling().scale_elem;
  const int bits = f.elem().bits;
  float d;
  if (f.scaling().asym) {
    float mn = std::numeric_limits<float>::max(), mx = -std::numeric_limits<float>::max();
    for (std::size_t i = 0; i < n; ++i) {
      if (x[i] < mn) mn = x[i];
      if (x[i] > mx) mx = x[i];
    }
    d = (mx - mn) / static_cast<float>((1 << bits) - 1);
    p.lo = mn;
    p.zero = static_cast<std::int32_t>(h.encode(mn));
    p.offset = h.decode(static_cast<std::uint32_t>(p.zero));
  } else if (bits == 8) {
    float amax = 0.0f;
    for (std::size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
    d = amax / 127.0f;
  } else {
    float amax = 0.0f, mx = 0.0f;
    for (std::size_t i = 0; i < n; ++i)
      if (amax < std::fabs(x[i])) {
        amax = std::fabs(x[i]);
        mx = x[i];
      }
    d = mx / static_cast<float>(-(1 << (bits - 1)));
  }
  p.inv = d != 0.0f ? 1.0f / d : 0.0f;
  p.scale_code = h.encode(d);
  p.scale = h.decode(p.scale_code);
  return p;
}

}  // namespace

void finish_stored_params(const Format& f, GroupParams& p) {
  if (f.scaling().rule != ScaleRule::Ggml || p.nan) return;
  p.ggml = true;
  p.zero_group = false;
  p.inv = p.scale != 0.0f ? 1.0f / p.scale : 0.0f;
  if (f.scaling().asym) p.lo = p.offset = f.scaling().scale_elem.decode(static_cast<std::uint32_t>(p.zero));
}

int zero_bits(const Format& f) { return f.scaling().rule == ScaleRule::Ggml ? f.scaling().scale_elem.bits : f.elem().bits; }

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
  if (s.rule == ScaleRule::Ggml) return ggml_params(f, vals, n);
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
    case ScaleRule::Ggml:  // ggml_params, above
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
  if (p.ggml) {  // llama.cpp's rounding (ggml_params); the rounding mode and overflow options do not apply
    const int top = (1 << el.bits) - 1;
    int q;
    if (f.scaling().asym) {
      q = std::min(top, static_cast<int>((x - p.lo) * p.inv + 0.5f));
      if (code) *code = static_cast<std::uint32_t>(q);
      return static_cast<float>(q) * p.scale + p.offset;
    }
    if (el.bits == 8) {
      q = static_cast<int>(std::round(x * p.inv));
    } else {
      const int half = 1 << (el.bits - 1);
      q = std::min(top, static_cast<int>(x * p.inv + (static_cast<float>(half) + 0.5f))) - half;
    }
    if (code) *code = static_cast<std::uint32_t>(q) & static_cast<std::uint32_t>(top);
    return static_cast<float>(q) * p.scale;
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
  if (p.ggml) {
    if (f.scaling().asym) return static_cast<float>(code) * p.scale + p.offset;
    const int bits = f.elem().bits;
    const int q = static_cast<int>(code << (32 - bits)) >> (32 - bits);  // two's complement
    return static_cast<float>(q) * p.scale;
  }
  if (f.scaling().asym) return static_cast<float>(static_cast<double>(code) - p.zero) * p.scale;
  return f.elem().decode(code) * p.scale;
}

}  // namespace qcast::ref
