#include "qcast/ptq/search.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "groups.hpp"

namespace qcast::ptq {

namespace {

bool pow2_scales(const Format& f) {
  const auto& s = f.scaling();
  if (s.scale_elem.kind == Element::Kind::Float && s.scale_elem.variant == FloatVariant::E8m0) return true;
  return s.rule == ScaleRule::Floor || s.rule == ScaleRule::Ceil || s.rule == ScaleRule::MidMax;
}

}  // namespace

QuantizedWeight search(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, const float* importance,
                       const SearchOptions& opt) {
  using namespace detail;
  const auto wg = WeightGroups::make(f, rows, cols);
  const std::int64_t n = rows * cols;
  std::vector<float> out(static_cast<std::size_t>(n));
  if (!wg.scaled()) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = f.elem().quantize(W[i], opt.round);
    return make_result(f, rows, cols, std::move(out), {}, 1.0f);
  }
  const float ts = ref::tensor_scale_for(f, W, n);
  const Element& el = f.elem();
  const bool pow2 = pow2_scales(f);
  const double qrange = std::ldexp(1.0, el.bits) - 1;
  std::vector<ref::GroupParams> params(static_cast<std::size_t>(wg.num_groups()));
  parallel_for(wg.num_groups(), opt.threads, [&](std::int64_t g0, std::int64_t g1) {
  std::vector<float> buf, imp;
  wg.layout.enumerate(g0, g1, [&](std::int64_t g, const std::vector<std::int64_t>& off) {
    buf.resize(off.size());
    imp.resize(off.size());
    float amax = 0, lo = 0, hi = 0;
    bool finite = true;
    for (std::size_t k = 0; k < off.size(); ++k) {
      buf[k] = W[off[k]];
      imp[k] = importance ? std::max(importance[off[k] % cols], 0.0f) : 1.0f;
      if (!std::isfinite(buf[k])) finite = false;
      amax = std::max(amax, std::fabs(buf[k]));
      lo = std::min(lo, buf[k]);
      hi = std::max(hi, buf[k]);
    }
    auto err_of = [&](const ref::GroupParams& p) {
      double e = 0;
      for (std::size_t k = 0; k < buf.size(); ++k) {
        const double d = static_cast<double>(ref::quantize_value(f, p, buf[k], opt.round, 0, Overflow::Saturate, nullptr)) - buf[k];
        e += imp[k] * d * d;
      }
      return e;
    };
    ref::GroupParams best = ref::group_params(f, buf.data(), buf.size(), ts, opt.round);  // the format's own rule
    if (!finite || best.nan || amax == 0) {
      params[g] = best;
      return;
    }
    double best_e = err_of(best);
    auto consider = [&](const ref::GroupParams& p) {
      if (p.nan || p.zero_group) return;
      const double e = err_of(p);
      if (e < best_e) {
        best_e = e;
        best = p;
      }
    };
    const float tdiv = f.scaling().tensor_scale ? ts : 1.0f;
    if (pow2) {
      const int e0 = static_cast<int>(std::floor(std::log2(static_cast<double>(amax)))) - el.emax();
      for (int k = -opt.pow2_radius; k <= opt.pow2_radius; ++k) {
        const float s = static_cast<float>(std::ldexp(1.0, std::clamp(e0 + k, -200, 200)) / tdiv);
        if (f.scaling().asym) {
          const auto p0 = params_for_scale(f, s, 0, ts);
          if (!(p0.scale > 0)) continue;
          const double z = std::clamp(std::nearbyint(-static_cast<double>(lo) / p0.scale), 0.0, qrange);
          consider(params_for_scale(f, s, static_cast<std::int32_t>(z), ts));
        } else {
          consider(params_for_scale(f, s, 0, ts));
        }
      }
    } else {
      for (int k = -opt.grow_steps; k <= opt.shrink_steps; ++k) {
        const double alpha = 1.0 - k * opt.shrink_step;
        if (alpha <= 0) break;
        if (f.scaling().asym) {
          const double l = lo * alpha, h = hi * alpha;
          const float s = static_cast<float>((h - l) / qrange / tdiv);
          const auto p0 = params_for_scale(f, s, 0, ts);
          if (!(p0.scale > 0)) continue;
          const double z = std::clamp(std::nearbyint(-l / p0.scale), 0.0, qrange);
          consider(params_for_scale(f, s, static_cast<std::int32_t>(z), ts));
        } else {
          const float s = static_cast<float>(alpha * amax / el.max_value() / tdiv);
          consider(params_for_scale(f, s, 0, ts));
        }
      }
    }
    params[g] = best;
  });
  });
  wg.layout.enumerate(0, wg.num_groups(), [&](std::int64_t g, const std::vector<std::int64_t>& off) {
    for (auto o : off) out[o] = ref::quantize_value(f, params[g], W[o], opt.round, 0, Overflow::Saturate, nullptr);
  });
  return make_result(f, rows, cols, std::move(out), params, ts);
}

}  // namespace qcast::ptq
