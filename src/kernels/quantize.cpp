// fake_quant / encode / decode over whole tensors. Formats covered by a SIMD kernel (kernels/fast_path.cpp)
// take that path; everything else runs the scalar reference below, which is also the tests' oracle.
// Work is split into whole groups across threads; stochastic rounding is keyed by element index, so
// results never depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/quantize.hpp"
#include "kernels/fast_path.hpp"
#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/kernels/thread_pool.hpp"
#include "qcast/kernels/reference.hpp"

namespace qcast {

namespace {

// Runs fn(begin, end) over [0, n) in up to `threads` contiguous chunks (the shared thread pool).
template <class Fn>
void parallel_ranges(std::int64_t n, int threads, Fn fn) {
  kern::parallel_for(n, threads, [&](std::int64_t b, std::int64_t e) { fn(b, e); });
}

// Blocks along an inner axis (the channels of NCHW activations, axis 1): view each [len, inner] slab as
// [inner, len] so that blocks are contiguous, run the SIMD kernel on that copy and scatter the result
// back. The groups and their values are the same, so the output equals the reference bit for bit.
// Stochastic rounding is keyed by the original element index, so it stays on the reference path.
bool transposed_fast_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, const QuantOptions& opt) {
  if (f.scaling().kind != ScaleKind::Block || opt.round == RoundMode::Stochastic || shape.empty()) return false;
  const int nd = static_cast<int>(shape.size());
  int axis = f.scaling().axis_explicit ? f.scaling().axis : opt.axis;
  if (axis < 0) axis += nd;
  if (axis < 0 || axis >= nd - 1) return false;  // out of range (the reference reports it) or already the last axis
  std::int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[i];
  for (int i = axis + 1; i < nd; ++i) inner *= shape[i];
  const std::int64_t len = shape[axis], n = outer * len * inner;
  if (inner == 1 || n == 0) return false;
  Scaling last_sc = f.scaling();
  last_sc.axis = -1;
  last_sc.axis_explicit = false;
  const Format last = f.with_scaling(last_sc);
  QuantOptions o = opt;
  o.axis = -1;
  std::vector<float> t_in(static_cast<std::size_t>(n)), t_out(static_cast<std::size_t>(n));
  kern::parallel_for(outer, opt.threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t q = b; q < e; ++q)
      for (std::int64_t l = 0; l < len; ++l)
        for (std::int64_t i = 0; i < inner; ++i) t_in[(q * inner + i) * len + l] = in[(q * len + l) * inner + i];
  });
  if (!kern::fast_fake_quant(last, t_in.data(), t_out.data(), {outer, inner, len}, o)) return false;
  kern::parallel_for(outer, opt.threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t q = b; q < e; ++q)
      for (std::int64_t l = 0; l < len; ++l)
        for (std::int64_t i = 0; i < inner; ++i) out[(q * len + l) * inner + i] = t_out[(q * inner + i) * len + l];
  });
  return true;
}

std::uint32_t element_rand(const QuantOptions& opt, std::int64_t i) {
  return opt.round == RoundMode::Stochastic ? ref::counter_rand(opt.seed, static_cast<std::uint64_t>(i)) : 0;
}

// The scaled part of the reference fake-quant: each group's parameters from its own values (with the
// given second-level tensor scale), then per-element rounding. Groups are split across threads.
void fake_quant_groups(const Format& f, const ref::GroupLayout& layout, const float* in, float* out, float ts, const QuantOptions& opt) {
  parallel_ranges(layout.num_groups, opt.threads, [&](std::int64_t g0, std::int64_t g1) {
    std::vector<float> buf;
    layout.enumerate(g0, g1, [&](std::int64_t, const std::vector<std::int64_t>& off) {
      buf.resize(off.size());
      for (std::size_t k = 0; k < off.size(); ++k) buf[k] = in[off[k]];
      const auto p = ref::group_params(f, buf.data(), buf.size(), ts, opt.round);
      for (std::size_t k = 0; k < off.size(); ++k)
        out[off[k]] = ref::quantize_value(f, p, buf[k], opt.round, element_rand(opt, off[k]), opt.overflow, nullptr);
    });
  });
}

// The k-quants (q2_k .. q6_k) run along rows, as ggml stores them, in kernels/ggml_quants.cpp: true when `f` is
// one (after checking that the axis is the last).
bool is_searched_ggml_quant(const Format& f, const Shape& shape, int axis) {
  if (!kern::ggml_quant_of(f)) return false;
  const int nd = static_cast<int>(shape.size());
  if (nd == 0 || (axis != -1 && axis != nd - 1))
    throw Error("format " + f.name() + " quantizes along rows (the last axis), as llama.cpp stores it; axis " + std::to_string(axis) +
                " of shape " + shape_str(shape) + " is not that");
  return true;
}

}  // namespace

void fake_quant(const Format& f, const float* in, float* out, const Shape& shape, const QuantOptions& opt) {
  if (is_searched_ggml_quant(f, shape, opt.axis)) return kern::ggml_quant_fake_quant(f, in, out, shape, opt.threads);
  if (kern::fast_fake_quant(f, in, out, shape, opt)) return;
  if (transposed_fast_fake_quant(f, in, out, shape, opt)) return;
  reference_fake_quant(f, in, out, shape, opt);
}

void fake_quant_streamed(const Format& f, const FloatSource& source, const Shape& shape, const QuantOptions& opt,
                         const FloatSink& sink, std::int64_t chunk_elems) {
  if (chunk_elems < 1) throw Error("fake_quant_streamed: chunk size must be positive");
  if (kern::fast_fake_quant_stream(f, source, shape, opt, chunk_elems, sink)) return;
  const std::int64_t n = shape_numel(shape);
  std::vector<float> out(static_cast<std::size_t>(n));
  source(0, n, out.data());
  fake_quant(f, out.data(), out.data(), shape, opt);
  for (std::int64_t k = 0; k < n; k += chunk_elems) sink(k, out.data() + k, std::min(chunk_elems, n - k));
}

void reference_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, const QuantOptions& opt) {
  if (is_searched_ggml_quant(f, shape, opt.axis)) return kern::ggml_quant_fake_quant(f, in, out, shape, opt.threads);
  const auto layout = ref::GroupLayout::make(f, shape, opt.axis);
  const std::int64_t n = layout.numel;
  if (f.scaling().kind == ScaleKind::None) {
    parallel_ranges(n, opt.threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const std::uint32_t r = opt.round == RoundMode::Stochastic ? ref::counter_rand(opt.seed, static_cast<std::uint64_t>(i)) : 0;
        out[i] = f.elem().quantize(in[i], opt.round, r, opt.overflow);
      }
    });
    return;
  }
  fake_quant_groups(f, layout, in, out, ref::tensor_scale_for(f, in, n), opt);
}

std::string static_range_unsupported(const Format& f) {
  const auto& s = f.scaling();
  const std::string why = "static (calibrated) activation scales need a per-tensor or per-channel scaled format, or the fp32 tensor "
                          "scale of a +fp32 block format such as nvfp4; ";
  if (s.kind == ScaleKind::None) return why + f.name() + " has no scale";
  if ((s.kind == ScaleKind::Block || s.kind == ScaleKind::Tile) && !s.tensor_scale)
    return why + f.name() + " has block scales that are computed at run time from each block";
  if (s.rule == ScaleRule::Mse) return "format " + f.name() + ": the /mse scale rule searches the data at run time; for static scales use the mse observer instead";
  return "";
}

void fake_quant_static(const Format& f, const StaticRange& r, const float* in, float* out, const Shape& shape, const QuantOptions& opt) {
  if (const std::string why = static_range_unsupported(f); !why.empty()) throw Error(why);
  const auto layout = ref::GroupLayout::make(f, shape, opt.axis);
  const std::size_t want = f.scaling().kind == ScaleKind::Channel ? static_cast<std::size_t>(layout.len) : 1;
  if (r.lo.size() != want || r.hi.size() != want)
    throw Error("static range with " + std::to_string(r.lo.size()) + " group(s) for format " + f.name() + " on a tensor of shape " +
                shape_str(shape) + ", which needs " + std::to_string(want));
  if (layout.numel == 0) return;
  // The scale of a fixed range is the one the format's rule picks for a group holding just {lo, hi}:
  // group_params spans [min(0, lo), max(0, hi)], so this is exactly the dynamic rule applied to the range.
  auto params = [&](std::size_t g) {
    const float v[2] = {r.lo[g], r.hi[g]};
    return ref::group_params(f, v, 2, 1.0f, opt.round);
  };
  if (f.scaling().tensor_scale) {  // nvfp4: the range fixes the fp32 tensor scale; block scales stay dynamic
    const float v[2] = {r.lo[0], r.hi[0]};
    fake_quant_groups(f, layout, in, out, ref::tensor_scale_for(f, v, 2), opt);
    return;
  }
  if (f.scaling().kind == ScaleKind::Tensor) {  // one group: split the elements, not the groups, across threads
    const auto p = params(0);
    parallel_ranges(layout.numel, opt.threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        out[i] = ref::quantize_value(f, p, in[i], opt.round, element_rand(opt, i), opt.overflow, nullptr);
    });
    return;
  }
  parallel_ranges(layout.num_groups, opt.threads, [&](std::int64_t g0, std::int64_t g1) {
    layout.enumerate(g0, g1, [&](std::int64_t gid, const std::vector<std::int64_t>& off) {
      const auto p = params(static_cast<std::size_t>(gid));
      for (auto o : off) out[o] = ref::quantize_value(f, p, in[o], opt.round, element_rand(opt, o), opt.overflow, nullptr);
    });
  });
}

Bytes pack_bits(const std::uint32_t* codes, std::size_t n, int bits) {
  Bytes out((n * static_cast<std::size_t>(bits) + 7) / 8, 0);
  std::size_t bitpos = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t c = codes[i] & ((bits >= 32) ? 0xffffffffull : ((1ull << bits) - 1));
    int left = bits;
    while (left > 0) {
      const std::size_t byte = bitpos / 8;
      const int off = static_cast<int>(bitpos % 8);
      const int take = std::min(left, 8 - off);
      out[byte] |= static_cast<std::uint8_t>((c & ((1u << take) - 1)) << off);
      c >>= take;
      left -= take;
      bitpos += static_cast<std::size_t>(take);
    }
  }
  return out;
}

void unpack_bits(const std::uint8_t* bytes, std::size_t nbytes, std::size_t n, int bits, std::uint32_t* codes) {
  if (nbytes * 8 < n * static_cast<std::size_t>(bits))
    throw Error("packed data too short: " + std::to_string(nbytes) + " bytes for " + std::to_string(n) + " codes of " + std::to_string(bits) + " bits");
  std::size_t bitpos = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t c = 0;
    int got = 0;
    while (got < bits) {
      const std::size_t byte = bitpos / 8;
      const int off = static_cast<int>(bitpos % 8);
      const int take = std::min(bits - got, 8 - off);
      c |= static_cast<std::uint32_t>((bytes[byte] >> off) & ((1u << take) - 1)) << got;
      got += take;
      bitpos += static_cast<std::size_t>(take);
    }
    codes[i] = c;
  }
}

Encoded encode(const Format& f, const float* in, const Shape& shape, const QuantOptions& opt) {
  if (is_searched_ggml_quant(f, shape, opt.axis)) return kern::ggml_quant_encode(f, in, shape, opt.threads);
  Encoded e;
  if (kern::fast_encode(f, in, shape, opt, e)) return e;
  return reference_encode(f, in, shape, opt);
}

Encoded reference_encode(const Format& f, const float* in, const Shape& shape, const QuantOptions& opt) {
  if (is_searched_ggml_quant(f, shape, opt.axis)) return kern::ggml_quant_encode(f, in, shape, opt.threads);
  const auto layout = ref::GroupLayout::make(f, shape, opt.axis);
  const std::int64_t n = layout.numel;
  Encoded e;
  e.format = f.name();
  e.shape = shape;
  e.axis = layout.axis;
  e.num_groups = layout.num_groups;
  std::vector<std::uint32_t> codes(static_cast<std::size_t>(n));
  if (f.scaling().kind == ScaleKind::None) {
    parallel_ranges(n, opt.threads, [&](std::int64_t b, std::int64_t en) {
      for (std::int64_t i = b; i < en; ++i) {
        const std::uint32_t r = opt.round == RoundMode::Stochastic ? ref::counter_rand(opt.seed, static_cast<std::uint64_t>(i)) : 0;
        codes[i] = f.elem().encode(in[i], opt.round, r, opt.overflow);
      }
    });
    e.codes = pack_bits(codes.data(), codes.size(), f.elem().bits);
    return e;
  }
  e.tensor_scale = ref::tensor_scale_for(f, in, n);
  std::vector<std::uint32_t> scodes(static_cast<std::size_t>(layout.num_groups)), zeros;
  if (f.scaling().asym) zeros.resize(scodes.size());
  parallel_ranges(layout.num_groups, opt.threads, [&](std::int64_t g0, std::int64_t g1) {
    std::vector<float> buf;
    layout.enumerate(g0, g1, [&](std::int64_t gid, const std::vector<std::int64_t>& off) {
      buf.resize(off.size());
      for (std::size_t k = 0; k < off.size(); ++k) buf[k] = in[off[k]];
      const auto p = ref::group_params(f, buf.data(), buf.size(), e.tensor_scale, opt.round);
      scodes[gid] = p.scale_code;
      if (f.scaling().asym) zeros[gid] = static_cast<std::uint32_t>(p.zero);
      for (std::size_t k = 0; k < off.size(); ++k) {
        const std::uint32_t r = opt.round == RoundMode::Stochastic ? ref::counter_rand(opt.seed, static_cast<std::uint64_t>(off[k])) : 0;
        std::uint32_t c = 0;
        ref::quantize_value(f, p, buf[k], opt.round, r, opt.overflow, &c);
        codes[off[k]] = c;
      }
    });
  });
  e.codes = pack_bits(codes.data(), codes.size(), f.elem().bits);
  e.scales = pack_bits(scodes.data(), scodes.size(), f.scaling().scale_elem.bits >= 32 ? 32 : f.scaling().scale_elem.bits);
  if (f.scaling().asym) e.zeros = pack_bits(zeros.data(), zeros.size(), ref::zero_bits(f));
  return e;
}

void decode(const Encoded& e, float* out) { decode(e, out, 1); }

void decode(const Encoded& e, float* out, int threads) {
  const Format f = Format::parse(e.format);
  if (is_searched_ggml_quant(f, e.shape, e.axis)) return kern::ggml_quant_decode(f, e, out, threads);
  if (kern::fast_decode(f, e, out, threads)) return;
  reference_decode(e, out);
}

void reference_decode(const Encoded& e, float* out) {
  const Format f = Format::parse(e.format);
  if (is_searched_ggml_quant(f, e.shape, e.axis)) return kern::ggml_quant_decode(f, e, out, 1);
  const auto layout = ref::GroupLayout::make(f, e.shape, e.axis);
  const std::int64_t n = layout.numel;
  if (layout.num_groups != e.num_groups)
    throw Error("encoded tensor of shape " + shape_str(e.shape) + " has " + std::to_string(e.num_groups) + " scale groups, format " + f.name() + " needs " + std::to_string(layout.num_groups));
  std::vector<std::uint32_t> codes(static_cast<std::size_t>(n));
  unpack_bits(e.codes.data(), e.codes.size(), codes.size(), f.elem().bits, codes.data());
  if (f.elem().kind == Element::Kind::Codebook)
    for (auto c : codes)
      if (c >= f.elem().num_codes()) throw Error("code " + std::to_string(c) + " is outside codebook " + f.elem().name);
  if (f.scaling().kind == ScaleKind::None) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = f.elem().decode(codes[i]);
    return;
  }
  const int sbits = f.scaling().scale_elem.bits >= 32 ? 32 : f.scaling().scale_elem.bits;
  std::vector<std::uint32_t> scodes(static_cast<std::size_t>(layout.num_groups)), zeros;
  unpack_bits(e.scales.data(), e.scales.size(), scodes.size(), sbits, scodes.data());
  if (f.scaling().asym) {
    zeros.resize(scodes.size());
    unpack_bits(e.zeros.data(), e.zeros.size(), zeros.size(), ref::zero_bits(f), zeros.data());
  }
  layout.enumerate(0, layout.num_groups, [&](std::int64_t gid, const std::vector<std::int64_t>& off) {
    ref::GroupParams p;
    const float s = f.scaling().scale_elem.decode(scodes[gid]);
    p.nan = std::isnan(s);
    p.scale = f.scaling().tensor_scale ? s * e.tensor_scale : s;
    if (f.scaling().asym) p.zero = static_cast<std::int32_t>(zeros[gid]);
    ref::finish_stored_params(f, p);
    for (auto o : off) out[o] = ref::dequantize_code(f, p, codes[o]);
  });
}

}  // namespace qcast
