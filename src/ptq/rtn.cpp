#include "qcast/ptq/rtn.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include "groups.hpp"
#include "qcast/error.hpp"
#include "qcast/gguf.hpp"
#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/quantize.hpp"

namespace qcast::ptq {

QuantizedWeight rtn(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, RoundMode round,
                    std::uint64_t seed) {
  using namespace detail;
  if (kern::ggml_quant_of(f)) {  // llama.cpp's quantizer rounds to nearest, nothing else
    if (round != RoundMode::Even) throw Error("format " + f.name() + " (a k-quant) rounds to nearest even only");
    return rtn(f, W, rows, cols, 1);
  }
  const auto wg = WeightGroups::make(f, rows, cols);
  const std::int64_t n = rows * cols;
  std::vector<float> out(static_cast<std::size_t>(n));
  auto rnd = [&](std::int64_t i) { return round == RoundMode::Stochastic ? ref::counter_rand(seed, static_cast<std::uint64_t>(i)) : 0u; };
  if (!wg.scaled()) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = f.elem().quantize(W[i], round, rnd(i));
    return make_result(f, rows, cols, std::move(out), {}, 1.0f);
  }
  const float ts = ref::tensor_scale_for(f, W, n);
  std::vector<ref::GroupParams> params(static_cast<std::size_t>(wg.num_groups()));
  std::vector<float> buf;
  wg.layout.enumerate(0, wg.num_groups(), [&](std::int64_t g, const std::vector<std::int64_t>& off) {
    buf.resize(off.size());
    for (std::size_t k = 0; k < off.size(); ++k) buf[k] = W[off[k]];
    params[g] = ref::group_params(f, buf.data(), buf.size(), ts, round);
    for (std::size_t k = 0; k < off.size(); ++k)
      out[off[k]] = ref::quantize_value(f, params[g], buf[k], round, rnd(off[k]), Overflow::Saturate, nullptr);
  });
  return make_result(f, rows, cols, std::move(out), params, ts);
}

QuantizedWeight rtn(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, int threads) {
  const bool kquant = kern::ggml_quant_of(f).has_value();  // its scales are block headers, not scale codes
  if (f.scaling().asym && !kquant) return rtn(f, W, rows, cols);  // zero points: the reference keeps them signed
  const std::int64_t n = rows * cols;
  QuantOptions o;
  o.threads = threads;  // axis -1: the last (input) axis, as WeightGroups
  auto e = std::make_shared<Encoded>(encode(f, W, Shape{rows, cols}, o));
  QuantizedWeight q;
  q.format = f;
  q.rows = rows;
  q.cols = cols;
  q.values.resize(static_cast<std::size_t>(n));
  if (kquant && kern::ggml_quant_row_format(f, cols) == f)
    // llama.cpp's searched types: fake-quant is ggml's dequantization of the blocks just found, so decoding
    // them gives the same bits without searching every block a second time (half of a k-quant rtn's time).
    decode(*e, q.values.data(), threads);
  else
    fake_quant(f, W, q.values.data(), Shape{rows, cols}, o);  // the reference's values, -0 included (a code has no -0)
  q.tensor_scale = e->tensor_scale;
  if (e->num_groups > 0 && f.scaling().kind != ScaleKind::None && !kquant) {
    q.scale_codes.resize(static_cast<std::size_t>(e->num_groups));
    unpack_bits(e->scales.data(), e->scales.size(), q.scale_codes.size(), std::min(32, f.scaling().scale_elem.bits), q.scale_codes.data());
  }
  q.packed = std::move(e);
  q.packed_exact = true;  // fake_quant and encode of one format
  return q;
}

std::optional<QuantizedWeight> rtn_keeping_blocks(const Format& f, const float* W, std::int64_t rows, std::int64_t cols,
                                                  std::uint32_t ggml_type, const std::vector<std::uint8_t>& blocks) {
  if (!kern::ggml_quant_of(f) || rows <= 0 || cols <= 0) return std::nullopt;
  const Shape shape{rows, cols};
  const Format row = kern::ggml_quant_row_format(f, cols);  // Q2_K's rows of 64 are IQ4_NL, searched too
  const auto t = kern::ggml_quant_of(row);
  if (!t || static_cast<std::uint32_t>(gguf::ggml_type_for(row, shape)) != ggml_type) return std::nullopt;
  const auto& lay = kern::ggml_quant_layout(*t);
  if (blocks.size() != static_cast<std::size_t>(rows * cols / lay.block * lay.bytes)) return std::nullopt;
  auto e = std::make_shared<Encoded>(kern::ggml_quant_encoded(row, shape, blocks.data()));
  QuantizedWeight q;
  q.format = f;
  q.rows = rows;
  q.cols = cols;
  q.values.resize(static_cast<std::size_t>(rows * cols));
  decode(*e, q.values.data());
  if (std::memcmp(q.values.data(), W, q.values.size() * sizeof(float)) != 0) return std::nullopt;  // the weights moved on
  q.packed = std::move(e);
  q.packed_exact = true;
  return q;
}

}  // namespace qcast::ptq
