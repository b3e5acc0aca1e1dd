#include "qcast/kernels/blas.hpp"
#include "qcast/ptq/gptq.hpp"


#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "groups.hpp"
#include "qcast/error.hpp"

namespace qcast::ptq {

GptqResult gptq(const Format& f, const float* W0, std::int64_t rows, std::int64_t cols, const float* H0,
                const GptqOptions& opt) {
  using namespace detail;
  if (rows <= 0 || cols <= 0) throw Error("gptq: empty weight matrix " + std::to_string(rows) + "x" + std::to_string(cols));
  const int threads = std::max(1, opt.threads);
  const int prev_blas = set_blas_threads(threads);
  struct Restore {
    int n;
    ~Restore() { set_blas_threads(n); }
  } restore{prev_blas};

  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const auto t0 = clock::now();
  const std::int64_t n = cols;
  const std::size_t nn = static_cast<std::size_t>(n * n);
  std::vector<float> W(W0, W0 + rows * cols), H(H0, H0 + nn);
  GptqResult res;

  // 1. Dead inputs: H_jj == 0 -> H_jj = 1 and W[:, j] = 0.
  for (std::int64_t j = 0; j < n; ++j)
    if (H[j * n + j] == 0) {
      H[j * n + j] = 1;
      for (std::int64_t r = 0; r < rows; ++r) W[r * cols + j] = 0;
      res.dead.push_back(j);
    }

  // 2. Group parameters: static ones now, from the unquantized W (dead columns already zeroed).
  const auto wg = WeightGroups::make(f, rows, cols);
  const bool scaled = wg.scaled();
  const float ts = scaled ? ref::tensor_scale_for(f, W.data(), rows * cols) : 1.0f;
  std::vector<ref::GroupParams> params(static_cast<std::size_t>(std::max<std::int64_t>(wg.num_groups(), 0)));
  auto compute_params = [&](const std::vector<std::int64_t>& groups, const std::function<float(std::int64_t)>& value_at) {
    parallel_for(static_cast<std::int64_t>(groups.size()), threads, [&](std::int64_t b, std::int64_t e) {
      std::vector<float> buf;
      for (std::int64_t k = b; k < e; ++k) {
        const std::int64_t g = groups[k];
        wg.layout.enumerate(g, g + 1, [&](std::int64_t, const std::vector<std::int64_t>& off) {
          buf.resize(off.size());
          for (std::size_t i = 0; i < off.size(); ++i) buf[i] = value_at(off[i]);
          params[g] = ref::group_params(f, buf.data(), buf.size(), ts, opt.round);
        });
      }
    });
  };
  if (scaled && opt.static_groups) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(wg.num_groups()));
    std::iota(all.begin(), all.end(), 0);
    compute_params(all, [&](std::int64_t o) { return W[o]; });
  }

  // 3. Act-order: permute columns by decreasing H_jj (stable, so ties keep their order).
  res.perm.resize(static_cast<std::size_t>(n));
  std::iota(res.perm.begin(), res.perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(res.perm.begin(), res.perm.end(), [&](std::int64_t a, std::int64_t b) { return H[a * n + a] > H[b * n + b]; });
  const auto& perm = res.perm;
  std::vector<std::int64_t> invperm(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k) invperm[perm[k]] = k;
  const std::size_t wsize = W.size();
  std::vector<float> Wp, Hp;
  if (opt.act_order) {
    Wp.resize(wsize);
    Hp.resize(nn);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t k = 0; k < n; ++k) Wp[r * n + k] = W[r * cols + perm[k]];
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = 0; k < n; ++k) Hp[i * n + k] = H[perm[i] * n + perm[k]];
    std::vector<float>().swap(H);
    std::vector<float>().swap(W);
  } else {
    Wp = std::move(W);
    Hp = std::move(H);
  }

  const auto t1 = clock::now();
  // 4. Dampening, then U = upper Cholesky factor of H^-1 (H^-1 = U^T U).
  double mean_diag = 0;
  for (std::int64_t j = 0; j < n; ++j) mean_diag += Hp[j * n + j];
  mean_diag /= static_cast<double>(n);
  const float damp = static_cast<float>(opt.damp * mean_diag);
  for (std::int64_t j = 0; j < n; ++j) Hp[j * n + j] += damp;
  if (!spd_inverse(Hp.data(), n) || !cholesky_upper(Hp.data(), n))
    throw Error("gptq: the dampened Hessian (" + std::to_string(n) + "x" + std::to_string(n) +
                ") is not positive definite; raise the dampening");
  const float* U = Hp.data();  // upper triangle valid
  const auto t2 = clock::now();

  // 5. Dynamic groups: a group's parameters are computed when the lazy batch holding its first column
  //    (in processing order) starts.
  const std::int64_t B = std::max(1, opt.block_size);
  const std::int64_t nbatches = (n + B - 1) / B;
  std::vector<std::vector<std::int64_t>> groups_at_batch(static_cast<std::size_t>(nbatches));
  if (scaled && !opt.static_groups) {
    std::vector<std::int64_t> first(static_cast<std::size_t>(wg.num_groups()), n);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) {
        auto& fp = first[static_cast<std::size_t>(wg.group_of(r, c))];
        fp = std::min(fp, invperm[c]);
      }
    for (std::int64_t g = 0; g < wg.num_groups(); ++g)
      if (first[g] < n) groups_at_batch[first[g] / B].push_back(g);
  }

  // 6. Column loop in lazy batches. Rows are independent given U: each thread runs the whole batch
  //    for its rows; the trailing update is one GEMM.
  std::vector<float> Qp(wsize);
  std::vector<float> W1(static_cast<std::size_t>(rows * B)), E1(static_cast<std::size_t>(rows * B));
  std::vector<double> row_loss(static_cast<std::size_t>(rows), 0.0);
  for (std::int64_t i1 = 0; i1 < n; i1 += B) {
    const std::int64_t i2 = std::min(n, i1 + B), cnt = i2 - i1;
    if (scaled && !opt.static_groups)
      compute_params(groups_at_batch[i1 / B], [&](std::int64_t o) { return Wp[(o / cols) * n + invperm[o % cols]]; });
    parallel_for(rows, threads, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        float* w1 = W1.data() + r * B;
        float* e1 = E1.data() + r * B;
        std::copy(Wp.begin() + r * n + i1, Wp.begin() + r * n + i2, w1);
        double loss = 0;
        for (std::int64_t i = 0; i < cnt; ++i) {
          const std::int64_t j = i1 + i, c = perm[j];
          const float w = w1[i];
          const std::uint32_t rnd = opt.round == RoundMode::Stochastic
                                        ? ref::counter_rand(opt.seed, static_cast<std::uint64_t>(r * cols + c)) : 0u;
          float q;
          if (scaled)
            q = ref::quantize_value(f, params[static_cast<std::size_t>(wg.group_of(r, c))], w, opt.round, rnd,
                                    Overflow::Saturate, nullptr);
          else
            q = f.elem().quantize(w, opt.round, rnd);
          Qp[r * n + j] = q;
          const float d = U[j * n + j];
          const float err = (w - q) / d;
          loss += static_cast<double>(w - q) * (w - q) / (2.0 * d * d);
          const float* urow = U + j * n + i1;
          for (std::int64_t k = i + 1; k < cnt; ++k) w1[k] -= err * urow[k];
          e1[i] = err;
        }
        row_loss[r] += loss;
      }
    });
    if (i2 < n)
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(n - i2),
                  static_cast<int>(cnt), -1.0f, E1.data(), static_cast<int>(B), U + i1 * n + i2, static_cast<int>(n),
                  1.0f, Wp.data() + i2, static_cast<int>(n));
  }
  res.loss = std::accumulate(row_loss.begin(), row_loss.end(), 0.0);
  const auto t3 = clock::now();
  res.seconds_setup = secs(t0, t1);
  res.seconds_cholesky = secs(t1, t2);
  res.seconds_loop = secs(t2, t3);

  // 7. Undo the permutation.
  std::vector<float> Q(wsize);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t k = 0; k < n; ++k) Q[r * cols + perm[k]] = Qp[r * n + k];
  res.q = make_result(f, rows, cols, std::move(Q), params, ts);
  return res;
}

}  // namespace qcast::ptq
