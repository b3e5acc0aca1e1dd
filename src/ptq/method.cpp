#include "qcast/ptq/method.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "qcast/error.hpp"
#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/quantize.hpp"
#include "qcast/ptq/gptq.hpp"
#include "qcast/ptq/lowrank.hpp"
#include "qcast/ptq/rotate.hpp"
#include "qcast/ptq/rtn.hpp"
#include "qcast/ptq/search.hpp"

namespace qcast::ptq {

namespace {

GptqOptions gptq_options(const LayerJob& j) {
  GptqOptions go;
  go.threads = j.threads;
  go.act_order = j.act_order;
  go.static_groups = j.act_order;
  return go;
}

// The largest power of two <= want that divides cols (1 = no rotation).
int pow2_block(std::int64_t cols, int want) {
  int b = 1;
  while (b * 2 <= want && cols % (b * 2) == 0) b *= 2;
  return b;
}

// Codes + scales alone (no rotation, no low-rank branch).
LayerQuant plain(QuantizedWeight q) {
  LayerQuant r;
  r.q = std::move(q);
  return r;
}

LayerQuant run_rtn(const LayerJob& j) {
  if (j.stored)
    if (auto kept = rtn_keeping_blocks(j.format, j.W, j.rows, j.cols, j.stored->ggml_type, j.stored->bytes)) return plain(std::move(*kept));
  return plain(rtn(j.format, j.W, j.rows, j.cols, j.threads));
}

LayerQuant run_search(const LayerJob& j) {
  SearchOptions so;
  so.threads = j.threads;
  const auto imp = j.stats->second_moment();
  return plain(search(j.format, j.W, j.rows, j.cols, imp.data(), so));
}

LayerQuant run_gptq(const LayerJob& j) { return plain(gptq(j.format, j.W, j.rows, j.cols, j.H->data(), gptq_options(j)).q); }

LayerQuant run_rotate_gptq(const LayerJob& j) {
  LayerQuant r;
  const int blk = pow2_block(j.cols, j.rotate_block);
  std::vector<float> Wr(j.W, j.W + j.rows * j.cols), Hr = *j.H;
  if (blk > 1) {
    const Rotation rot = Rotation::make(j.cols, blk, true, j.seed);
    rot.apply(Wr.data(), j.rows);
    rot.conjugate(Hr.data());
    r.rotate_block = blk;
    r.rotate_seed = j.seed;
  }
  r.q = gptq(j.format, Wr.data(), j.rows, j.cols, Hr.data(), gptq_options(j)).q;
  return r;
}

LayerQuant run_lowrank(const LayerJob& j) {
  LowRankOptions lo;
  lo.rank = static_cast<int>(std::min<std::int64_t>(j.rank, std::min(j.rows, j.cols)));
  lo.seed = j.seed;
  auto lr = lowrank(j.format, j.W, j.rows, j.cols, lo);
  LayerQuant r;
  r.q = lr.q;
  r.A = lr.A;
  r.B = lr.B;
  r.rank = lr.rank;
  return r;
}

LayerQuant run_ed(const LayerJob& j) { return plain(error_diffusion(j.format, j.W, j.rows, j.cols, *j.ed).q); }

// llama.cpp's importance-matrix quantization (llama-imatrix + llama-quantize --imatrix): the per-column mean of
// x^2 over the calibration inputs weights its quantizers' least-squares fits, bit for bit as ggml's
// quantize_<type>(..., imatrix) (tests/llamacpp/ggml_ref.cpp).
LayerQuant run_imatrix(const LayerJob& j) {
  const bool searched = kern::ggml_quant_of(j.format).has_value(), legacy = kern::ggml_legacy_has_importance(j.format);
  // llama.cpp quantizes Q8_0 without its importance matrix: imatrix is rtn there; and rows that are not whole
  // 32-blocks, which no ggml block type holds (written as F32 of their values), take the format's own rtn.
  if (j.format == Format::parse("q8_0_ggml") || (legacy && j.cols % 32 != 0)) return plain(rtn(j.format, j.W, j.rows, j.cols, j.threads));
  if (!searched && !legacy)
    throw Error("--method imatrix is llama.cpp's importance-weighted quantizer, for q2_k .. q6_k, iq4_nl, q4_0_ggml, q4_1, q5_0, q5_1 "
                "(and q8_0_ggml, mxfp4_ggml, which it quantizes without weights); format " + j.format.name() +
                " is none of them (its calibration-weighted counterpart is --method search)");
  const std::vector<float> importance = j.stats->second_moment();
  const Shape shape{j.rows, j.cols};
  auto e = std::make_shared<Encoded>(searched ? kern::ggml_quant_encode(j.format, j.W, shape, j.threads, importance.data())
                                              : kern::ggml_legacy_encode_weighted(j.format, j.W, shape, j.threads, importance.data()));
  QuantizedWeight q;
  q.format = j.format;
  q.rows = j.rows;
  q.cols = j.cols;
  q.values.resize(static_cast<std::size_t>(j.rows * j.cols));
  decode(*e, q.values.data(), j.threads);
  q.packed = std::move(e);
  q.packed_exact = true;
  return plain(std::move(q));
}

}  // namespace

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> table = {
      {"rtn", kNeedsNothing, "round to nearest with the format's own scale rule", run_rtn},
      {"search", kNeedsInputStats, "per-group scale search weighted by E[x^2] of the inputs", run_search},
      {"gptq", kNeedsHessian, "GPTQ: column-wise rounding with Hessian error feedback", run_gptq},
      {"rotate+gptq", kNeedsHessian, "block Hadamard rotation of the inputs, then GPTQ", run_rotate_gptq},
      {"lowrank", kNeedsNothing, "RTN plus a low-rank fp32 branch fitted to the error (--rank)", run_lowrank},
      {"ed", kNeedsFloatInputs, "error diffusion against the float model's inputs", run_ed},
      {"imatrix", kNeedsInputStats, "llama.cpp's importance-matrix quantizers (k-quants, iq4_nl, Q4_0 .. Q5_1) weighted by E[x^2] of the inputs",
       run_imatrix},
      {"mixed", kNeedsHessian, "mixed@BITS / mixed@energy=X / mixed@cycles=X: per-layer formats under a bits-per-weight, energy or latency budget, then GPTQ", run_gptq},
  };
  return table;
}

std::string method_list() {
  std::string s;
  for (const auto& m : methods())
    if (m.name != "mixed") s += (s.empty() ? "" : ", ") + m.name;
  return s + ", mixed@BITS, mixed@energy=X, mixed@cycles=X, each optionally quarot+ and +bias; bias = rtn+bias";
}

Method parse_method(const std::string& text) {
  Method m;
  m.text = text;
  std::string base = text;
  if (base.rfind("quarot+", 0) == 0) {
    m.quarot = true;
    base = base.substr(7);
  }
  if (base == "bias") base = "rtn+bias";
  if (base.size() > 5 && base.compare(base.size() - 5, 5, "+bias") == 0) {
    m.bias = true;
    base.resize(base.size() - 5);
  }
  if (base.rfind("mixed@energy=", 0) == 0 || base.rfind("mixed@cycles=", 0) == 0) {
    // mixed@energy=X: X a fraction of the fp32 model's energy (0.4, 40%) or an energy with its unit (pJ,
    // nJ, uJ, mJ, J); mixed@cycles=X: a fraction, or a cycle count with the unit "cycles".
    const bool energy = base[6] == 'e';
    m.budget = energy ? Method::Budget::Energy : Method::Budget::Cycles;
    const std::string b = base.substr(13);  // both prefixes are 13 characters long
    std::size_t pos = 0;
    double v = 0;
    try {
      v = std::stod(b, &pos);
    } catch (...) {
      pos = 0;
    }
    const std::string unit = pos ? b.substr(pos) : "";
    double scale = 0;
    if (unit.empty()) m.mixed_fraction = true, scale = 1;
    else if (unit == "%") m.mixed_fraction = true, scale = 0.01;
    else if (energy && (unit == "pJ" || unit == "pj")) scale = 1;
    else if (energy && (unit == "nJ" || unit == "nj")) scale = 1e3;
    else if (energy && (unit == "uJ" || unit == "uj")) scale = 1e6;
    else if (energy && (unit == "mJ" || unit == "mj")) scale = 1e9;
    else if (energy && (unit == "J" || unit == "j")) scale = 1e12;
    else if (!energy && unit == "cycles") scale = 1;
    m.mixed_budget = v * scale;
    if (pos == 0 || scale == 0 || !std::isfinite(m.mixed_budget) || m.mixed_budget <= 0 || (m.mixed_fraction && m.mixed_budget > 1))
      throw Error("method '" + base + "': expected " +
                  (energy ? std::string("mixed@energy=X with X a fraction of the fp32 model's energy in (0, 1] (0.4 or 40%) or an "
                                        "energy (12.5uJ; units pJ, nJ, uJ, mJ, J)")
                          : std::string("mixed@cycles=X with X a fraction of the fp32 model's cycles in (0, 1] (0.5 or 50%) or a "
                                        "cycle count (120000cycles)")));
    base = "mixed";
  } else if (base.rfind("mixed@", 0) == 0) {
    const std::string b = base.substr(6);
    std::size_t pos = 0;
    try {
      m.mixed_bits = std::stod(b, &pos);
    } catch (...) {
      pos = 0;
    }
    // A NaN or infinite budget would reach the allocator's size arithmetic; 32 bits is more than any format.
    if (b.empty() || pos != b.size() || !std::isfinite(m.mixed_bits) || m.mixed_bits <= 0 || m.mixed_bits > 32)
      throw Error("method '" + base + "': expected mixed@BITS with a budget in (0, 32] bits per weight, e.g. mixed@4.5 "
                  "(or mixed@energy=X / mixed@cycles=X on an --arch)");
    base = "mixed";
  } else if (base == "mixed") {
    throw Error("method 'mixed' needs a budget: mixed@BITS (e.g. mixed@4.5), mixed@energy=X or mixed@cycles=X");
  }
  for (const auto& row : methods())
    if (row.name == base) m.info = &row;
  if (!m.info) throw Error("unknown method '" + text + "' (" + method_list() + ")");
  return m;
}

}  // namespace qcast::ptq
