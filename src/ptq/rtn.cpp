#include "qcast/ptq/rtn.hpp"

#include "groups.hpp"

namespace qcast::ptq {

QuantizedWeight rtn(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, RoundMode round,
                    std::uint64_t seed) {
  using namespace detail;
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

}  // namespace qcast::ptq
