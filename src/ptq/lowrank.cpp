#include "qcast/kernels/blas.hpp"
#include "qcast/ptq/lowrank.hpp"


#include <algorithm>
#include <cmath>

#include "groups.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/rtn.hpp"

namespace qcast::ptq {

namespace {

// Orthonormalises the k columns of Y [m, k] (row-major) in place: modified Gram-Schmidt, twice.
void orthonormalize(std::vector<double>& Y, std::int64_t m, std::int64_t k) {
  for (int pass = 0; pass < 2; ++pass)
    for (std::int64_t j = 0; j < k; ++j) {
      for (std::int64_t i = 0; i < j; ++i) {
        double d = 0;
        for (std::int64_t r = 0; r < m; ++r) d += Y[r * k + i] * Y[r * k + j];
        for (std::int64_t r = 0; r < m; ++r) Y[r * k + j] -= d * Y[r * k + i];
      }
      double nrm = 0;
      for (std::int64_t r = 0; r < m; ++r) nrm += Y[r * k + j] * Y[r * k + j];
      nrm = std::sqrt(nrm);
      if (nrm > 1e-300)
        for (std::int64_t r = 0; r < m; ++r) Y[r * k + j] /= nrm;
      else
        for (std::int64_t r = 0; r < m; ++r) Y[r * k + j] = 0;
    }
}

}  // namespace

void low_rank_factors(const float* M, std::int64_t rows, std::int64_t cols, int rank, std::vector<float>& A,
                      std::vector<float>& B, int oversample, int power_iters, std::uint64_t seed) {
  const std::int64_t mn = std::min(rows, cols);
  const std::int64_t r = std::min<std::int64_t>(rank, mn);
  if (r <= 0) throw Error("low-rank factors need a positive rank, got " + std::to_string(rank));
  const std::int64_t k = std::min<std::int64_t>(mn, r + std::max(0, oversample));
  std::vector<double> Md(M, M + rows * cols);
  const int m = static_cast<int>(rows), n = static_cast<int>(cols), kk = static_cast<int>(k);
  // Y = M Omega, Omega [cols, k] Gaussian (Box-Muller on the counter hash: deterministic).
  std::vector<double> Om(static_cast<std::size_t>(cols * k)), Y(static_cast<std::size_t>(rows * k)),
      Z(static_cast<std::size_t>(cols * k));
  for (std::size_t i = 0; i < Om.size(); ++i) {
    const double u1 = (ref::counter_rand(seed, 2 * i) + 1.0) / 4294967297.0, u2 = ref::counter_rand(seed, 2 * i + 1) / 4294967296.0;
    Om[i] = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  blas::dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, kk, n, 1.0, Md.data(), n, Om.data(), kk, 0.0, Y.data(), kk);
  for (int it = 0; it < power_iters; ++it) {
    orthonormalize(Y, rows, k);
    blas::dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, kk, m, 1.0, Md.data(), n, Y.data(), kk, 0.0, Z.data(), kk);
    orthonormalize(Z, cols, k);
    blas::dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, kk, n, 1.0, Md.data(), n, Z.data(), kk, 0.0, Y.data(), kk);
  }
  orthonormalize(Y, rows, k);  // Qm [rows, k]
  // Bs = Qm^T M [k, cols]; SVD Bs = Ub S Vt; M ~= (Qm Ub) S Vt.
  std::vector<double> Bs(static_cast<std::size_t>(k * cols));
  blas::dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kk, n, m, 1.0, Y.data(), kk, Md.data(), n, 0.0, Bs.data(), n);
  std::vector<double> Ub, S, Vt;
  detail::svd(Bs, k, cols, Ub, S, Vt);  // Ub [k, k'], Vt [k', cols], k' = min(k, cols) = k
  std::vector<double> QU(static_cast<std::size_t>(rows * k));
  blas::dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, kk, kk, 1.0, Y.data(), kk, Ub.data(), kk, 0.0, QU.data(), kk);
  A.assign(static_cast<std::size_t>(rows * r), 0.0f);
  B.assign(static_cast<std::size_t>(r * cols), 0.0f);
  for (std::int64_t j = 0; j < r; ++j) {
    const double s = std::sqrt(std::max(0.0, S[j]));
    for (std::int64_t i = 0; i < rows; ++i) A[i * r + j] = static_cast<float>(QU[i * k + j] * s);
    for (std::int64_t c = 0; c < cols; ++c) B[j * cols + c] = static_cast<float>(Vt[j * cols + c] * s);
  }
}

std::vector<float> LowRankResult::effective() const {
  std::vector<float> out = q.values;
  if (rank > 0)
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(q.rows), static_cast<int>(q.cols), rank,
                1.0f, A.data(), rank, B.data(), static_cast<int>(q.cols), 1.0f, out.data(), static_cast<int>(q.cols));
  return out;
}

LowRankResult lowrank(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, const LowRankOptions& opt) {
  LowRankResult res;
  res.rank = static_cast<int>(std::min<std::int64_t>(opt.rank, std::min(rows, cols)));
  const std::size_t n = static_cast<std::size_t>(rows * cols);
  std::vector<float> L(n, 0.0f), target(n), E(n);
  for (int it = 0; it < std::max(1, opt.iters); ++it) {
    for (std::size_t i = 0; i < n; ++i) target[i] = W[i] - L[i];
    res.q = rtn(f, target.data(), rows, cols);
    if (res.rank <= 0) break;
    for (std::size_t i = 0; i < n; ++i) E[i] = W[i] - res.q.values[i];
    low_rank_factors(E.data(), rows, cols, res.rank, res.A, res.B, opt.oversample, opt.power_iters, opt.seed + it);
    if (opt.branch_format) {
      fake_quant(*opt.branch_format, res.A.data(), res.A.data(), Shape{rows, res.rank});
      fake_quant(*opt.branch_format, res.B.data(), res.B.data(), Shape{res.rank, cols});
    }
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols), res.rank,
                1.0f, res.A.data(), res.rank, res.B.data(), static_cast<int>(cols), 0.0f, L.data(), static_cast<int>(cols));
  }
  // The returned branch belongs to the returned main layer: the last A, B were fitted to W - res.q.
  return res;
}

}  // namespace qcast::ptq
