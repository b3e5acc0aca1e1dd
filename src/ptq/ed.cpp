#include "qcast/kernels/blas.hpp"
#include "qcast/ptq/ed.hpp"


#include "groups.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/rtn.hpp"

namespace qcast::ptq {

EdAccumulator::EdAccumulator(std::int64_t dim)
    : dim_(dim), cqq_(static_cast<std::size_t>(dim * dim), 0.0), cfq_(static_cast<std::size_t>(dim * dim), 0.0) {
  if (dim <= 0) throw Error("error diffusion: input dimension must be positive, got " + std::to_string(dim));
}

void EdAccumulator::add(const float* Xf, const float* Xq, std::int64_t tokens) {
  if (tokens <= 0) return;
  const int d = static_cast<int>(dim_), t = static_cast<int>(tokens);
  std::vector<double> f(Xf, Xf + tokens * dim_), q(Xq, Xq + tokens * dim_);
  blas::dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, t, 1.0, q.data(), d, q.data(), d, 1.0, cqq_.data(), d);
  blas::dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, t, 1.0, f.data(), d, q.data(), d, 1.0, cfq_.data(), d);
  n_ += tokens;
}

EdResult error_diffusion(const Format& f, const float* W, std::int64_t rows, std::int64_t cols,
                         const EdAccumulator& st, const EdOptions& opt) {
  if (st.dim() != cols)
    throw Error("error diffusion: statistics of dimension " + std::to_string(st.dim()) + " for a layer with " +
                std::to_string(cols) + " inputs");
  if (st.samples() == 0) throw Error("error diffusion: no calibration samples");
  const std::int64_t n = cols;
  std::vector<double> C = st.cqq();
  double md = 0;
  for (std::int64_t j = 0; j < n; ++j) md += C[j * n + j];
  md /= static_cast<double>(n);
  for (std::int64_t j = 0; j < n; ++j) C[j * n + j] = C[j * n + j] == 0 ? 1.0 : C[j * n + j] + opt.ridge * md;
  if (!detail::spd_inverse(C.data(), n)) throw Error("error diffusion: input covariance is not positive definite");
  // W* = W C_fq C_qq^-1  (rows x n)
  std::vector<double> Wd(W, W + rows * cols), T(static_cast<std::size_t>(rows * n)), Ws(static_cast<std::size_t>(rows * n));
  const int r = static_cast<int>(rows), nn = static_cast<int>(n);
  blas::dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, nn, nn, 1.0, Wd.data(), nn, st.cfq().data(), nn, 0.0, T.data(), nn);
  blas::dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, nn, nn, 1.0, T.data(), nn, C.data(), nn, 0.0, Ws.data(), nn);
  EdResult res;
  res.target.assign(Ws.begin(), Ws.end());
  if (opt.inner == EdOptions::Inner::Gptq) {
    std::vector<float> H(st.cqq().size());
    const double s = 2.0 / static_cast<double>(st.samples());
    for (std::size_t i = 0; i < H.size(); ++i) H[i] = static_cast<float>(st.cqq()[i] * s);
    res.q = gptq(f, res.target.data(), rows, cols, H.data(), opt.gptq).q;
  } else {
    res.q = rtn(f, res.target.data(), rows, cols);
  }
  return res;
}

}  // namespace qcast::ptq
