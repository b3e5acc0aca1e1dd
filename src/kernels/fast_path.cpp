// Selection of the SIMD kernels for a format (exact: anything not covered bit for bit returns false),
// per-group scale parameters for amax scales, and the threaded drivers.
#include "kernels/fast_path.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <optional>

#include "kernels/aligned_floats.hpp"
#include "qcast/kernels/reference.hpp"
#include "kernels/simd.hpp"
#include "qcast/kernels/thread_pool.hpp"

namespace qcast::kern {


namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::uint32_t fbits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float bitsf(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// Round-to-nearest-even of x >= 0 (finite) into the scale minifloat, saturating: Element::quantize.
float se_quant(const ScaleSpec& sc, float x) {
  if (sc.is_fp32) return x;
  if (sc.s_has_sub && x < sc.s_sub_thr) {
    const float r = std::nearbyint(x * sc.s_up);
    return r * sc.s_down;
  }
  const int s = 23 - sc.s_mbits;
  std::uint32_t u = fbits(x);
  u = (u + (1u << (s - 1)) - 1 + ((u >> s) & 1u)) & ~((1u << s) - 1);
  return std::min(bitsf(u), sc.s_maxv);
}

std::uint32_t se_code(const ScaleSpec& sc, float q) {
  if (sc.is_fp32) return fbits(q);
  if (sc.s_has_sub && q < sc.s_sub_thr) return static_cast<std::uint32_t>(q * sc.s_up);
  return (fbits(q) >> (23 - sc.s_mbits)) - (static_cast<std::uint32_t>(127 - sc.s_bias) << sc.s_mbits);
}

bool signed_minifloat_ok(const Element& el) {
  if (el.kind != Element::Kind::Float) return false;
  if (el.variant != FloatVariant::Ieee && el.variant != FloatVariant::Fn && el.variant != FloatVariant::Finite) return false;
  if (el.ebits < 2 || el.ebits > 8 || el.mbits < 1 || el.mbits > 22) return false;
  if (el.bits != 1 + el.ebits + el.mbits || el.bits > 16) return false;
  const int emin = 1 - el.bias;
  if (emin < -126) return false;
  if (emin == -126 && el.bias != 127) return false;
  const double mx = el.max_value();
  if (!(mx < 3.4e38) || static_cast<double>(static_cast<float>(mx)) != mx) return false;
  if (el.variant == FloatVariant::Fn && el.mbits == 0) return false;
  return true;
}

// The value arith_decode's formula gives for code c (exactly what the kernels compute, in scalar code).
float arith_value(const ElemSpec& e, std::uint32_t c) {
  const std::uint32_t sign = c >> (e.bits - 1), mag = c & ((1u << (e.bits - 1)) - 1);
  switch (e.dec) {
    case DecodeArith::Mini: {
      const float v = mag < (1u << e.mbits) ? static_cast<float>(mag) * std::ldexp(1.0f, 1 - e.bias - e.mbits)
                                            : bitsf((mag << (23 - e.mbits)) + (static_cast<std::uint32_t>(127 - e.bias) << 23));
      return bitsf(fbits(v) | (sign << 31));
    }
    case DecodeArith::Shift: return bitsf(c << (32 - e.bits));
    case DecodeArith::Int: {
      const auto v = static_cast<std::int32_t>(c << (32 - e.bits)) >> (32 - e.bits);
      return static_cast<float>(v) * std::ldexp(1.0f, -e.frac_bits);
    }
    case DecodeArith::None: break;
  }
  return 0.0f;
}

// Decoding by arithmetic: a handful of vector operations instead of a table gather, which costs ~30 cycles
// per 16 lanes here. The formula is checked against the table for every code: the codes it gets wrong
// (NaN / Inf codes, the fnuz NaN at -0) are kept apart by dec_special / dec_extra, and their vectors
// take the table.
void arith_decode(ElemSpec& e) {
  if (e.kind == ElemKind::Mini) {
    if (e.ebits == 8 && e.bias == 127) e.dec = DecodeArith::Shift;
    else if (1 - e.bias - e.mbits >= -126 && 127 - e.bias >= 1) e.dec = DecodeArith::Mini;  // normal constants
  } else if (e.kind == ElemKind::Int && e.frac_bits >= -60 && e.frac_bits <= 60) {
    e.dec = DecodeArith::Int;
  }
  if (e.dec == DecodeArith::None) return;
  const std::uint32_t half = 1u << (e.bits - 1);
  e.dec_special = half;
  e.dec_extra = 0xffffffffu;
  for (std::uint32_t c = 0; c < e.lut.size(); ++c) {
    if (fbits(arith_value(e, c)) == fbits(e.lut[c])) continue;
    if (c == half && e.dec_extra == 0xffffffffu) e.dec_extra = c;  // the fnuz NaN in the -0 slot
    else e.dec_special = std::min(e.dec_special, c & (half - 1));
  }
  if (e.dec_special == 0) e.dec = DecodeArith::None;  // nothing left for the formula
}

std::optional<ElemSpec> make_elem(const Element& el, RoundMode mode, bool elementwise, bool asym, bool need_lut) {
  ElemSpec e;
  e.bits = el.bits;
  e.max_value = el.max_value();
  if (asym) {
    // Asymmetric groups round on the integer grid [0, 2^bits - 1] whatever the element kind.
    if (el.bits < 2 || el.bits > 16) return std::nullopt;
    e.kind = ElemKind::Int;
  } else if (el.kind == Element::Kind::Float) {
    if (!signed_minifloat_ok(el)) return std::nullopt;
    e.kind = ElemKind::Mini;
    e.ebits = el.ebits;
    e.mbits = el.mbits;
    e.bias = el.bias;
    e.emin = 1 - el.bias;
    e.has_sub_path = e.emin > -126;
    e.ieee = el.variant == FloatVariant::Ieee;
    e.fn_nan = el.variant == FloatVariant::Fn;
    e.has_nan = el.has_nan();
    const std::uint32_t all_ones = (1u << el.ebits) - 1;
    e.nan_code = (all_ones << el.mbits) | (1u << (el.mbits - 1));
    e.inf_code = all_ones << el.mbits;
    e.maxv = static_cast<float>(el.max_value());
  } else if (el.kind == Element::Kind::Int) {
    if (!el.is_signed || el.bits < 2 || el.bits > 16 || el.frac_bits < -60 || el.frac_bits > 60) return std::nullopt;
    e.kind = ElemKind::Int;
    e.frac_bits = el.frac_bits;
    e.max_code = static_cast<float>((1 << (el.bits - 1)) - 1);
    // An unscaled intN cast reaches the two's-complement minimum (-2^(N-1)); scaled groups are symmetric.
    e.neg_max_code = elementwise ? e.max_code + 1 : e.max_code;
  } else {
    if (elementwise || el.values.size() < 2 || el.values.size() > 256 || el.bits > 8) return std::nullopt;
    e.kind = ElemKind::Codebook;
    e.ncodes = static_cast<int>(el.values.size());
    e.values = el.values;
    // Decision thresholds: the smallest float of (values[k-1], values[k]] that quantizes to values[k].
    // Element::quantize is monotone in x within an interval, so a bisection over float order is exact.
    e.thresholds.assign(e.values.size(), 0.0f);
    auto key = [](float f) -> std::int64_t {
      const std::uint32_t u = fbits(f);
      return (u & 0x80000000u) ? -static_cast<std::int64_t>(u & 0x7fffffffu) - 1 : static_cast<std::int64_t>(u);
    };
    auto unkey = [](std::int64_t k) -> float {
      return k < 0 ? bitsf(static_cast<std::uint32_t>(-(k + 1)) | 0x80000000u) : bitsf(static_cast<std::uint32_t>(k));
    };
    for (std::size_t k = 1; k < e.values.size(); ++k) {
      std::int64_t lo = key(e.values[k - 1]), hi = key(e.values[k]);  // P(lo) false, P(hi) true
      while (hi - lo > 1) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        if (el.quantize(unkey(mid), mode) == e.values[k]) hi = mid;
        else lo = mid;
      }
      e.thresholds[k] = unkey(hi);
    }
  }
  e.zero_code = asym ? 0 : el.encode(0.0f);
  if (need_lut) {
    if (el.bits > 16) return std::nullopt;
    if (!asym) {
      if (el.num_codes() != (1u << el.bits)) return std::nullopt;
      e.lut.resize(std::size_t{1} << el.bits);
      for (std::uint32_t c = 0; c < e.lut.size(); ++c) e.lut[c] = el.decode(c);
      arith_decode(e);
    }
  }
  return e;
}

struct Plan {
  ElemSpec el;
  ScaleSpec sc;
};

std::optional<ScaleSpec> make_scale(const Format& f, bool need_lut) {
  ScaleSpec sc;
  const Scaling& s = f.scaling();
  if (s.kind == ScaleKind::None) return sc;
  const Element& se = s.scale_elem;
  sc.asym = s.asym;
  sc.qrange = std::ldexp(1.0, f.elem().bits) - 1;
  sc.tensor_scale = s.tensor_scale;
  const bool is_e8m0 = se.kind == Element::Kind::Float && se.variant == FloatVariant::E8m0 && se.ebits == 8 && se.bias == 127;
  if ((s.rule == ScaleRule::Floor || s.rule == ScaleRule::RCeil) && is_e8m0 && !s.asym && !s.tensor_scale) {
    sc.mode = ScaleMode::MxFloor;
    sc.emax = f.elem().emax();
    sc.rceil = s.rule == ScaleRule::RCeil;
    sc.mx_elmax = static_cast<float>(f.elem().max_value());
    if (sc.rceil && static_cast<double>(sc.mx_elmax) != f.elem().max_value()) return std::nullopt;
    sc.is_fp32 = false;
    sc.s_bits = 8;
    sc.nan_code = 0xff;
  } else if (s.rule == ScaleRule::Amax) {
    sc.mode = ScaleMode::Amax;
    if (se.kind != Element::Kind::Float) return std::nullopt;
    if (se == Element::parse("fp32")) {
      sc.is_fp32 = true;
      sc.s_bits = 32;
    } else {
      const bool ok_variant = se.variant == FloatVariant::Ieee || se.variant == FloatVariant::Ufn || se.variant == FloatVariant::Fn;
      if (!ok_variant || se.bits > 16 || se.mbits < 1 || se.bits % 8 != 0) return std::nullopt;
      const int emin = 1 - se.bias;
      if (emin < -126 || (emin == -126 && se.bias != 127)) return std::nullopt;
      if (se.variant == FloatVariant::Fn && se.mbits == 0) return std::nullopt;
      sc.is_fp32 = false;
      sc.s_mbits = se.mbits;
      sc.s_bias = se.bias;
      sc.s_emin = emin;
      sc.s_has_sub = emin > -126;
      sc.s_sub_thr = std::ldexp(1.0f, emin);
      sc.s_up = std::ldexp(1.0f, se.mbits - emin);
      sc.s_down = std::ldexp(1.0f, emin - se.mbits);
      sc.s_maxv = static_cast<float>(se.max_value());
      sc.s_bits = se.bits;
      sc.sel.kind = ElemKind::Mini;
      sc.sel.bits = se.bits;
      sc.sel.ebits = se.ebits;
      sc.sel.mbits = se.mbits;
      sc.sel.bias = se.bias;
      sc.sel.emin = emin;
      sc.sel.has_sub_path = emin > -126;
      sc.sel.maxv = sc.s_maxv;
    }
    sc.nan_code = se.encode(kNaN);
    // amax / c rounded once to float equals the double quotient rounded to float when c = k * 2^j with
    // an odd integer k < 2^29: a float quotient is then never within a double ulp of a float midpoint
    // without being on it (|amax - mid * c| >= 2^(e-24) whenever nonzero).
    double c = f.elem().max_value();
    int guard = 0;
    while (c != std::floor(c) && guard++ < 200) c *= 2;
    while (c >= 2 && std::fmod(c, 2.0) == 0) c /= 2;
    sc.amax_div_exact = !s.asym && c > 0 && c < 536870912.0 && static_cast<double>(static_cast<float>(f.elem().max_value())) == f.elem().max_value();
  } else {
    return std::nullopt;
  }
  if (need_lut && !sc.is_fp32) {
    sc.s_lut.resize(std::size_t{1} << sc.s_bits);
    for (std::uint32_t c = 0; c < sc.s_lut.size(); ++c) sc.s_lut[c] = c < se.num_codes() ? se.decode(c) : kNaN;
  }
  return sc;
}

// Plans are cached per (format value, rounding mode, lut): codebook thresholds and decode tables cost a
// few thousand Element calls to build. The key is the Format itself (== and hash compare the composition),
// so two spellings of one format share a plan and no spelling can reach another format's plan.
struct PlanKey {
  Format format;
  RoundMode mode;
  bool lut;
  bool operator==(const PlanKey& o) const { return mode == o.mode && lut == o.lut && format == o.format; }
};
struct PlanKeyHash {
  std::size_t operator()(const PlanKey& k) const {
    return k.format.hash() * 31 + static_cast<std::size_t>(k.mode) * 2 + (k.lut ? 1 : 0);
  }
};

std::shared_ptr<const Plan> get_plan(const Format& f, RoundMode mode, bool need_lut) {
  static std::mutex mu;
  static std::unordered_map<PlanKey, std::shared_ptr<const Plan>, PlanKeyHash> cache;
  PlanKey key{f, mode, need_lut};
  {
    std::lock_guard<std::mutex> lk(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  std::shared_ptr<Plan> plan;
  auto sc = make_scale(f, need_lut);
  if (sc) {
    auto el = make_elem(f.elem(), mode, f.scaling().kind == ScaleKind::None, f.scaling().asym, need_lut);
    if (el) {
      plan = std::make_shared<Plan>();
      plan->el = std::move(*el);
      plan->sc = std::move(*sc);
    }
  }
  std::lock_guard<std::mutex> lk(mu);
  if (cache.size() > 256) cache.clear();
  cache[std::move(key)] = plan;
  return plan;
}

struct Geometry {
  std::int64_t len = 0, block = 0, gpr = 1, ngroups = 0;
};

std::optional<Geometry> geometry(const Format& f, const Shape& shape, int axis) {
  const auto layout = ref::GroupLayout::make(f, shape, axis);  // validates axis / block size
  Geometry g;
  if (layout.numel == 0) return std::nullopt;
  switch (f.scaling().kind) {
    case ScaleKind::None:
      g.len = layout.numel;
      g.block = 8192;
      g.gpr = (g.len + g.block - 1) / g.block;
      g.ngroups = g.gpr;
      return g;
    case ScaleKind::Block:
      if (layout.inner != 1) return std::nullopt;
      g.len = layout.len;
      // A row shorter than the block is one group of len elements (e.g. MX blocks of 32 along the 16
      // channels of ResNet's first stage in NHWC): so named, the job has full blocks and takes the
      // fixed-block kernel instead of the general loop's ragged-block path. Same groups, same bits.
      g.block = layout.nblocks == 1 ? layout.len : layout.block;
      g.gpr = layout.nblocks;
      g.ngroups = layout.num_groups;
      return g;
    case ScaleKind::Channel:
      if (layout.outer != 1 || layout.inner == 0) return std::nullopt;
      g.len = layout.inner;
      g.block = layout.inner;
      g.gpr = 1;
      g.ngroups = layout.num_groups;
      return g;
    default:
      return std::nullopt;
  }
}

bool options_ok(const QuantOptions& opt) {
  return opt.round != RoundMode::Stochastic && opt.overflow == Overflow::Saturate;
}

// Sizes a fresh, zeroed byte vector (pack_codes ORs partial bytes into it).
void alloc_bytes(Bytes& v, std::size_t n) { v.assign(n, 0); }

// A job over the whole tensor: what every kernel call takes from the plan and the geometry. The caller
// adds the buffers.
Job whole_tensor_job(const Plan& plan, const Geometry& geo, RoundMode mode) {
  Job j;
  j.el = &plan.el;
  j.sc = &plan.sc;
  j.mode = mode;
  j.len = geo.len;
  j.block = geo.block;
  j.gpr = geo.gpr;
  return j;
}

std::int64_t min_groups(const Geometry& g) {
  // Keep at least ~64K elements per thread so small tensors do not pay for waking workers.
  return std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(1, std::min(g.block, g.len)));
}

float tensor_scale_of_amax(const Format& f, float amax) { return ref::tensor_scale_from_amax(f, amax); }

float tensor_scale(const Format& f, const float* in, std::int64_t n, int threads) {
  if (!f.scaling().tensor_scale) return 1.0f;
  std::mutex mu;
  float amax = 0;
  parallel_for(n, threads, [&](std::int64_t b, std::int64_t e) {
    const float m = finite_absmax(in + b, e - b);
    std::lock_guard<std::mutex> lk(mu);
    amax = std::max(amax, m);
  }, 1 << 16);
  return tensor_scale_of_amax(f, amax);
}

// Largest |x| bits of every group, from the tensor-scale pass (Job::group_umax).
using GroupMaxima = std::unique_ptr<std::uint32_t[]>;

// The tensor scale of an in-memory input, for job j over geo. Where the fixed-block kernel covers the job,
// the same read also stores every group's largest |x| into `maxima` and points j.group_umax at them:
// the quantization pass then reads each block once instead of twice (once for its maximum, once for its
// elements), which is what a format with a tensor scale (NVFP4) pays for reading its input twice.
float tensor_scale(const Format& f, Job& j, const Geometry& geo, std::int64_t n, int threads, GroupMaxima& maxima) {
  if (!f.scaling().tensor_scale) return 1.0f;
  if (!group_maxima_cover(j)) return tensor_scale(f, j.in, n, threads);
  // Uninitialised but for the slack (read, never used): the pass writes every group's slot.
  maxima.reset(new std::uint32_t[static_cast<std::size_t>(geo.ngroups + kGroupMaximaSlack)]);
  std::fill_n(maxima.get() + geo.ngroups, kGroupMaximaSlack, 0u);
  std::mutex mu;
  float amax = 0;
  parallel_for(geo.ngroups, threads, [&](std::int64_t b, std::int64_t e) {
    const float m = groups_absmax(j, b, e, maxima.get());
    std::lock_guard<std::mutex> lk(mu);
    amax = std::max(amax, m);
  }, min_groups(geo));
  j.group_umax = maxima.get();
  return tensor_scale_of_amax(f, amax);
}

// tensor_scale of a streamed input: one read of it in windows of `window` values per worker.
float tensor_scale(const Format& f, const FloatSource& source, std::int64_t n, int threads, std::int64_t window) {
  if (!f.scaling().tensor_scale) return 1.0f;
  std::mutex mu;
  float amax = 0;
  const std::int64_t nwin = (n + window - 1) / window;
  parallel_for(nwin, threads, [&](std::int64_t w0, std::int64_t w1) {
    const AlignedFloats buf = aligned_floats(window);
    float m = 0;
    for (std::int64_t w = w0; w < w1; ++w) {
      const std::int64_t b = w * window, cnt = std::min(window, n - b);
      source(b, cnt, buf.get());
      m = std::max(m, finite_absmax(buf.get(), cnt));
    }
    std::lock_guard<std::mutex> lk(mu);
    amax = std::max(amax, m);
  });
  return tensor_scale_of_amax(f, amax);
}

}  // namespace

void amax_params(const ScaleSpec& sc, const ElemSpec& el, float amax, float lo, float hi, float ts, GroupP& p) {
  float scale;
  if (sc.tensor_scale) {
    scale = se_quant(sc, static_cast<float>(amax / el.max_value) / ts);
  } else {
    const double raw = sc.asym ? (static_cast<double>(hi) - lo) / sc.qrange : amax / el.max_value;
    scale = raw > 0 ? se_quant(sc, static_cast<float>(raw)) : 0.0f;
  }
  p.scale_code = se_code(sc, scale);
  p.scale = sc.tensor_scale ? scale * ts : scale;
  if (!(p.scale > 0)) {
    p.zero_group = true;
    return;
  }
  if (sc.asym) {
    const double z = std::nearbyint(-static_cast<double>(lo) / p.scale);
    p.zero = static_cast<float>(std::clamp(z, 0.0, sc.qrange));
    p.zero_code = static_cast<std::uint32_t>(p.zero);
  }
}

namespace {

// Outputs of at least this many floats (16 MiB) are written with non-temporal stores: they would not
// stay in the caches anyway, and regular stores read every output line before writing it.
// (The streaming cast reuses a cache-sized window instead, so it keeps regular stores.)
constexpr std::int64_t kStreamFloats = std::int64_t{4} << 20;
bool stream_output(std::int64_t n) { return n >= kStreamFloats; }

// A fake-quant job over the whole tensor, or nullopt when no kernel covers the format bit for bit. The
// caller sets the input and the tensor scale (read from a pointer or from a streamed source), after this
// has said yes, so an uncovered format never reads its input here.
struct FakeQuantSetup {
  std::shared_ptr<const Plan> plan;
  Geometry geo;
  Job job;
};
std::optional<FakeQuantSetup> fake_quant_setup(const Format& f, const Shape& shape, const QuantOptions& opt) {
  if (!options_ok(opt)) return std::nullopt;
  const auto geo = geometry(f, shape, opt.axis);
  if (!geo) return std::nullopt;
  FakeQuantSetup s;
  s.plan = get_plan(f, opt.round, false);
  if (!s.plan) return std::nullopt;
  s.geo = *geo;
  s.job = whole_tensor_job(*s.plan, s.geo, opt.round);
  return s;
}

}  // namespace

bool fast_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, const QuantOptions& opt) {
  auto s = fake_quant_setup(f, shape, opt);
  if (!s) return false;
  s->job.in = in;
  GroupMaxima maxima;
  s->job.tensor_scale = tensor_scale(f, s->job, s->geo, shape_numel(shape), opt.threads, maxima);
  s->job.out = out;
  s->job.stream_out = stream_output(shape_numel(shape));
  parallel_for(s->geo.ngroups, opt.threads, [&](std::int64_t b, std::int64_t e) { quant_groups(s->job, b, e); }, min_groups(s->geo));
  return true;
}

bool fast_fake_quant_stream(const Format& f, const FloatSource& source, const Shape& shape, const QuantOptions& opt,
                            std::int64_t chunk_elems, const FloatSink& sink) {
  auto s = fake_quant_setup(f, shape, opt);
  if (!s) return false;
  s->job.tensor_scale = tensor_scale(f, source, shape_numel(shape), opt.threads, chunk_elems);
  const Geometry* geo = &s->geo;
  // Every geometry fast_fake_quant covers lays its groups out in order, each a contiguous run, so a
  // range of groups is a contiguous window of the output.
  const std::int64_t group = std::min(geo->block, geo->len);
  const std::int64_t per_chunk = std::max<std::int64_t>(1, chunk_elems / std::max<std::int64_t>(1, group));
  auto start_of = [&](std::int64_t g) { return (g / geo->gpr) * geo->len + (g % geo->gpr) * geo->block; };
  auto end_of = [&](std::int64_t g) { return start_of(g) + std::min(geo->block, geo->len - (g % geo->gpr) * geo->block); };
  // Each worker takes a contiguous run of windows and does everything for them: the read into its own
  // buffer (an L2-sized window, quantized in place), the arithmetic and the delivery (the caller's
  // pwrite copy into the page cache), so the copies are split between the threads too. Reading windows
  // instead of touching a mapping matters on VMs: there the first touch of each fresh 4 KiB page of a
  // mapped file costs microseconds (fake-quant of a mapped 64 MiB input: ~70 ms, of pread windows: ~12).
  const std::int64_t nwin = (geo->ngroups + per_chunk - 1) / per_chunk;
  parallel_for(nwin, opt.threads, [&](std::int64_t w0, std::int64_t w1) {
    // Uninitialised: every window is fully read before it is quantized and delivered.
    const AlignedFloats buf = aligned_floats(per_chunk * group);
    Job j = s->job;
    j.in = buf.get();
    j.out = buf.get();
    for (std::int64_t w = w0; w < w1; ++w) {
      const std::int64_t g0 = w * per_chunk, g1 = std::min(geo->ngroups, g0 + per_chunk);
      const std::int64_t start = start_of(g0), count = end_of(g1 - 1) - start;
      source(start, count, buf.get());
      j.in_base = start;
      j.out_base = start;
      quant_groups(j, g0, g1);
      sink(start, buf.get(), count);
    }
  });
  return true;
}

bool fast_encode(const Format& f, const float* in, const Shape& shape, const QuantOptions& opt, Encoded& e) {
  if (!options_ok(opt)) return false;
  const auto geo = geometry(f, shape, opt.axis);
  if (!geo) return false;
  const auto plan = get_plan(f, opt.round, false);
  if (!plan) return false;
  const auto layout = ref::GroupLayout::make(f, shape, opt.axis);
  const std::int64_t n = layout.numel;
  e = Encoded{};
  e.format = f.name();
  e.shape = shape;
  e.axis = layout.axis;
  e.num_groups = layout.num_groups;
  const std::size_t code_bytes = static_cast<std::size_t>((n * f.elem().bits + 7) / 8);
  if ((geo->block * f.elem().bits) % 8 == 0 && (geo->len * f.elem().bits) % 8 == 0) {
    // Every group starts on a byte boundary, so the kernels write each byte of the stream in full
    // (pack_codes ORs only into bytes shared by two ranges): no zero fill, except the partial last byte.
    e.codes.resize(code_bytes);
    if (code_bytes > 0) e.codes.back() = 0;
  } else {
    alloc_bytes(e.codes, code_bytes);
  }
  std::vector<std::uint32_t> zeros;
  Job j = whole_tensor_job(*plan, *geo, opt.round);
  j.in = in;
  j.codes = e.codes.data();
  int saw_nan = 0;
  j.saw_nan = &saw_nan;
  GroupMaxima maxima;
  if (f.scaling().kind != ScaleKind::None) {
    e.tensor_scale = tensor_scale(f, j, *geo, n, opt.threads, maxima);
    j.tensor_scale = e.tensor_scale;
    alloc_bytes(e.scales, static_cast<std::size_t>(layout.num_groups) * static_cast<std::size_t>(plan->sc.s_bits / 8));
    j.scales = e.scales.data();
    if (f.scaling().asym) {
      zeros.assign(static_cast<std::size_t>(layout.num_groups), 0);
      j.zeros = zeros.data();
    }
  }
  parallel_for(geo->ngroups, opt.threads, [&](std::int64_t b, std::int64_t en) { quant_groups(j, b, en); }, min_groups(*geo));
  if (saw_nan) return false;  // the reference reports the unencodable NaN
  if (f.scaling().asym) e.zeros = pack_bits(zeros.data(), zeros.size(), f.elem().bits);
  return true;
}

bool fast_decode(const Format& f, const Encoded& e, float* out, int threads) {
  const auto geo = geometry(f, e.shape, e.axis);
  if (!geo) return false;
  const auto layout = ref::GroupLayout::make(f, e.shape, e.axis);
  if (layout.num_groups != e.num_groups) return false;
  const auto plan = get_plan(f, RoundMode::Even, true);
  if (!plan) return false;
  const std::int64_t n = layout.numel;
  if (static_cast<std::int64_t>(e.codes.size()) * 8 < n * f.elem().bits) return false;
  if (f.scaling().kind != ScaleKind::None) {
    if (static_cast<std::int64_t>(e.scales.size()) < layout.num_groups * (plan->sc.s_bits / 8)) return false;
  }
  std::vector<std::uint32_t> zeros;
  Job j = whole_tensor_job(*plan, *geo, RoundMode::Even);
  j.out = out;
  j.stream_out = stream_output(n);
  j.codes = const_cast<std::uint8_t*>(e.codes.data());
  j.code_bytes = static_cast<std::int64_t>(e.codes.size());
  j.scales = const_cast<std::uint8_t*>(e.scales.data());
  j.tensor_scale = e.tensor_scale;
  if (f.scaling().asym) {
    if (static_cast<std::int64_t>(e.zeros.size()) * 8 < layout.num_groups * f.elem().bits) return false;
    zeros.resize(static_cast<std::size_t>(layout.num_groups));
    unpack_bits(e.zeros.data(), e.zeros.size(), zeros.size(), f.elem().bits, zeros.data());
    j.zeros = zeros.data();
  }
  parallel_for(geo->ngroups, threads, [&](std::int64_t b, std::int64_t en) { decode_groups(j, b, en); }, min_groups(*geo));
  return true;
}

}  // namespace qcast::kern
