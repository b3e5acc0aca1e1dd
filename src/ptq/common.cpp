
#include "qcast/kernels/blas.hpp"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "groups.hpp"
#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/error.hpp"
#include "qcast/quantize.hpp"


namespace qcast::ptq {

namespace detail {

WeightGroups WeightGroups::make(const Format& f, std::int64_t rows, std::int64_t cols) {
  // A k-quant's 256-block has sub-block scales and minimums, not one scale: only its own quantizer (rtn,
  // llama.cpp's quantize_row_q*_K_ref) chooses them.
  if (kern::ggml_quant_of(f))
    throw Error("format " + f.name() + " is llama.cpp's k-quant, quantized by its own reference quantizer: use --method rtn "
                "(the methods that choose scales or codes per group do not apply to its sub-block scales)");
  WeightGroups g;
  g.rows = rows;
  g.cols = cols;
  g.layout = ref::GroupLayout::make(f, Shape{rows, cols}, -1);
  return g;
}

std::vector<std::int64_t> WeightGroups::offsets(std::int64_t g) const {
  std::vector<std::int64_t> out;
  layout.enumerate(g, g + 1, [&](std::int64_t, const std::vector<std::int64_t>& off) { out = off; });
  return out;
}

ref::GroupParams params_from_code(const Format& f, std::uint32_t scale_code, std::int32_t zero, float ts) {
  ref::GroupParams p;
  const float s = f.scaling().scale_elem.decode(scale_code);
  p.scale_code = scale_code;
  p.nan = std::isnan(s);
  p.scale = f.scaling().tensor_scale ? s * ts : s;
  p.zero = zero;
  p.zero_group = !p.nan && !(p.scale > 0);
  ref::finish_stored_params(f, p);
  return p;
}

ref::GroupParams params_for_scale(const Format& f, float s, std::int32_t zero, float ts) {
  const std::uint32_t code = f.scaling().scale_elem.encode(s, RoundMode::Even);
  return params_from_code(f, code, zero, ts);
}

QuantizedWeight make_result(const Format& f, std::int64_t rows, std::int64_t cols, std::vector<float> values,
                            const std::vector<ref::GroupParams>& params, float ts) {
  QuantizedWeight q;
  q.format = f;
  q.rows = rows;
  q.cols = cols;
  q.values = std::move(values);
  q.tensor_scale = ts;
  q.scale_codes.resize(params.size());
  for (std::size_t g = 0; g < params.size(); ++g) q.scale_codes[g] = params[g].scale_code;
  if (f.scaling().asym) {
    q.zeros.resize(params.size());
    for (std::size_t g = 0; g < params.size(); ++g) q.zeros[g] = params[g].zero;
  }
  return q;
}

// Row-major upper U (A = U^T U) is column-major lower L (A = L L^T) of the same memory: uplo 'L'.
bool cholesky_upper(float* A, std::int64_t n) {
  const int nn = static_cast<int>(n);
  int info = 0;
  blas::spotrf("L", &nn, A, &nn, &info, 1);
  return info == 0;
}
bool cholesky_upper(double* A, std::int64_t n) {
  const int nn = static_cast<int>(n);
  int info = 0;
  blas::dpotrf("L", &nn, A, &nn, &info, 1);
  return info == 0;
}

template <class T, class Potrf, class Potri>
static bool spd_inverse_impl(T* A, std::int64_t n, Potrf potrf, Potri potri) {
  const int nn = static_cast<int>(n);
  int info = 0;
  potrf("L", &nn, A, &nn, &info, 1);
  if (info != 0) return false;
  potri("L", &nn, A, &nn, &info, 1);
  if (info != 0) return false;
  // Column-major lower = row-major upper holds the inverse: mirror it into the lower triangle.
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < i; ++j) A[i * n + j] = A[j * n + i];
  return true;
}
bool spd_inverse(float* A, std::int64_t n) { return spd_inverse_impl(A, n, blas::spotrf, blas::spotri); }
bool spd_inverse(double* A, std::int64_t n) { return spd_inverse_impl(A, n, blas::dpotrf, blas::dpotri); }

void svd(std::vector<double>& A, std::int64_t m, std::int64_t n, std::vector<double>& U, std::vector<double>& S,
         std::vector<double>& Vt) {
  // Row-major A [m, n] is column-major A^T [n, m] = U' S V'^T, so A = V' S U'^T: U = V'^T^T...
  // Column-major results: u' [n, k] (ld n), vt' [k, m] (ld k). Row-major views: u' -> [k, n] = Vt of A,
  // vt' -> [m, k] = U of A.
  const int cm = static_cast<int>(n), cn = static_cast<int>(m), k = static_cast<int>(std::min(m, n));
  S.assign(static_cast<std::size_t>(k), 0.0);
  Vt.assign(static_cast<std::size_t>(k) * n, 0.0);
  U.assign(static_cast<std::size_t>(m) * k, 0.0);
  std::vector<int> iwork(8 * static_cast<std::size_t>(k));
  int info = 0, lwork = -1;
  double wq = 0;
  blas::dgesdd("S", &cm, &cn, A.data(), &cm, S.data(), Vt.data(), &cm, U.data(), &k, &wq, &lwork, iwork.data(), &info, 1);
  lwork = static_cast<int>(wq) + 1;
  std::vector<double> work(static_cast<std::size_t>(lwork));
  blas::dgesdd("S", &cm, &cn, A.data(), &cm, S.data(), Vt.data(), &cm, U.data(), &k, work.data(), &lwork, iwork.data(),
          &info, 1);
  if (info != 0) throw Error("SVD of a " + std::to_string(m) + "x" + std::to_string(n) + " matrix did not converge");
}

}  // namespace detail

Encoded QuantizedWeight::encode() const {
  using namespace detail;
  if (kern::ggml_quant_of(format) && !packed)
    throw Error("format " + format.name() + ": these values were not made by the k-quant's quantizer (rtn) and have no ggml blocks");
  if (packed) {
    std::vector<float> back(values.size());
    decode(*packed, back.data());
    // Equal values: the codes of a fake-quant -0 decode to +0, as the reference's encoding below does.
    bool same = back.size() == values.size();
    for (std::size_t i = 0; same && i < back.size(); ++i) same = back[i] == values[i];
    if (same) return *packed;
  }
  const Shape shape{rows, cols};
  const auto wg = WeightGroups::make(format, rows, cols);
  Encoded e;
  e.format = format.name();
  e.shape = shape;
  e.axis = wg.layout.axis;
  e.num_groups = wg.num_groups();
  std::vector<std::uint32_t> codes(values.size());
  if (!wg.scaled()) {
    for (std::size_t i = 0; i < values.size(); ++i) codes[i] = format.elem().encode(values[i]);
    e.codes = pack_bits(codes.data(), codes.size(), format.elem().bits);
    return e;
  }
  e.tensor_scale = tensor_scale;
  wg.layout.enumerate(0, wg.num_groups(), [&](std::int64_t g, const std::vector<std::int64_t>& off) {
    const auto p = params_from_code(format, scale_codes[g], format.scaling().asym ? zeros[g] : 0, tensor_scale);
    for (auto o : off) {
      std::uint32_t c = 0;
      ref::quantize_value(format, p, values[o], RoundMode::Even, 0, Overflow::Saturate, &c);
      codes[o] = c;
    }
  });
  e.codes = pack_bits(codes.data(), codes.size(), format.elem().bits);
  e.scales = pack_bits(scale_codes.data(), scale_codes.size(), std::min(32, format.scaling().scale_elem.bits));
  if (format.scaling().asym) {
    std::vector<std::uint32_t> z(zeros.begin(), zeros.end());
    e.zeros = pack_bits(z.data(), z.size(), ref::zero_bits(format));
  }
  return e;
}

std::shared_ptr<const Encoded> QuantizedWeight::settle(int threads) {
  if (packed && packed_exact) {  // only the sign of zero can differ: codes have no -0
    for (float& v : values)
      if (v == 0.0f) v = 0.0f;
    return packed;
  }
  std::vector<float> back(values.size());
  std::shared_ptr<const Encoded> e = packed;
  if (e) {
    decode(*e, back.data(), threads);
    // Equal values (the codes of a fake-quant -0 decode to +0), as encode() checks.
    for (std::size_t i = 0; i < back.size(); ++i)
      if (!(back[i] == values[i])) {
        e.reset();
        break;
      }
  }
  if (!e) {
    e = std::make_shared<const Encoded>(encode());
    decode(*e, back.data(), threads);
  }
  values.swap(back);
  packed = e;
  return e;
}

float QuantizedWeight::group_scale(std::int64_t g) const {
  return detail::params_from_code(format, scale_codes[g], 0, tensor_scale).scale;
}

void InputStats::add(const float* X, std::int64_t tokens) {
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t j = 0; j < dim; ++j) {
      const double v = X[t * dim + j];
      sum[j] += v;
      sumsq[j] += v * v;
    }
  count += tokens;
}

std::vector<float> InputStats::mean() const {
  std::vector<float> m(static_cast<std::size_t>(dim));
  for (std::int64_t j = 0; j < dim; ++j) m[j] = count ? static_cast<float>(sum[j] / count) : 0.0f;
  return m;
}

std::vector<float> InputStats::second_moment() const {
  std::vector<float> m(static_cast<std::size_t>(dim));
  for (std::int64_t j = 0; j < dim; ++j) m[j] = count ? static_cast<float>(sumsq[j] / count) : 0.0f;
  return m;
}

HessianAccumulator::HessianAccumulator(std::int64_t dim) : dim_(dim) {
  if (dim <= 0) throw Error("Hessian dimension must be positive, got " + std::to_string(dim));
}

void HessianAccumulator::fold(const float* X, std::int64_t tokens, std::int64_t n_before) const {
  if (H_.empty()) H_.assign(static_cast<std::size_t>(dim_ * dim_), 0.0f);
  // H <- H * n / (n + t) + 2 / (n + t) * X^T X  (upper triangle by syrk, then mirrored)
  const float keep = static_cast<float>(static_cast<double>(n_before) / static_cast<double>(n_before + tokens));
  const float alpha = static_cast<float>(2.0 / static_cast<double>(n_before + tokens));
  const int d = static_cast<int>(dim_);
  blas::ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, static_cast<int>(tokens), alpha, X, d, keep, H_.data(), d);
  for (std::int64_t i = 0; i < dim_; ++i)
    for (std::int64_t j = 0; j < i; ++j) H_[i * dim_ + j] = H_[j * dim_ + i];
}

const std::vector<float>& HessianAccumulator::H() const {
  // Replay the kept batches not yet in H_, in order (the same calls add() would have made).
  if (kept_ && (H_.empty() || folded_ < n_)) {
    if (H_.empty()) folded_ = 0;
    std::int64_t at = 0, n = 0;
    for (std::int64_t t : batches_) {
      if (n >= folded_) fold(X_.data() + at * dim_, t, n);
      at += t;
      n += t;
    }
    folded_ = n_;
  }
  if (H_.empty()) H_.assign(static_cast<std::size_t>(dim_ * dim_), 0.0f);  // no input yet
  return H_;
}

void HessianAccumulator::add(const float* X, std::int64_t tokens) {
  if (tokens <= 0) return;
  if (kept_ && n_ + tokens <= dim_ / 4) {
    X_.insert(X_.end(), X, X + tokens * dim_);
    batches_.push_back(tokens);
    n_ += tokens;
    return;
  }
  if (kept_) {
    H();  // the kept inputs into H first
    kept_ = false;
    std::vector<float>().swap(X_);
    batches_.clear();
  }
  fold(X, tokens, n_);
  n_ += tokens;
  folded_ = n_;
}

namespace {

// sum over fixed 64-row chunks of W - Q (Q null: zero) of term(D, rows of the chunk), the chunks on up to
// `threads` threads and their sums added in chunk order: the same bits for any thread count, and only one
// chunk's difference in memory per thread.
double chunked_error(const float* W, const float* Q, std::int64_t rows, std::int64_t cols, int threads,
                     const std::function<double(const std::vector<float>&, std::int64_t)>& term) {
  constexpr std::int64_t kChunk = 64;
  const std::int64_t nchunks = (rows + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<std::size_t>(nchunks));
  kern::parallel_items(nchunks, threads, [&](std::int64_t c) {
    const std::int64_t r0 = c * kChunk, nr = std::min(kChunk, rows - r0);
    std::vector<float> D(static_cast<std::size_t>(nr * cols));
    for (std::size_t i = 0; i < D.size(); ++i) D[i] = W[r0 * cols + static_cast<std::int64_t>(i)] - (Q ? Q[r0 * cols + static_cast<std::int64_t>(i)] : 0.0f);
    part[static_cast<std::size_t>(c)] = term(D, nr);
  });
  double e = 0;
  for (double p : part) e += p;
  return e;
}

}  // namespace

double HessianAccumulator::error(const float* W, const float* Q, std::int64_t rows, int threads) const {
  if (!kept_ || n_ == 0) return hessian_error(W, Q, rows, dim_, H().data(), threads);
  const std::int64_t cols = dim_;
  const double e = chunked_error(W, Q, rows, cols, threads, [&](const std::vector<float>& D, std::int64_t nr) {
    std::vector<float> DX(static_cast<std::size_t>(nr * n_));
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(nr), static_cast<int>(n_), static_cast<int>(cols), 1.0f,
                D.data(), static_cast<int>(cols), X_.data(), static_cast<int>(cols), 0.0f, DX.data(), static_cast<int>(n_));
    double s = 0;
    for (float v : DX) s += static_cast<double>(v) * v;
    return s;
  });
  return e * 2.0 / static_cast<double>(n_);
}

double bits_per_weight(const Format& f, std::int64_t rows, std::int64_t cols) {
  const auto wg = detail::WeightGroups::make(f, rows, cols);
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  double bits = f.elem().bits * n;
  if (wg.scaled()) {
    bits += static_cast<double>(wg.num_groups()) * (f.scaling().scale_elem.bits + (f.scaling().asym ? f.elem().bits : 0));
    if (f.scaling().tensor_scale) bits += 32;
  }
  return bits / n;
}

double output_error(const float* W, const float* Q, std::int64_t rows, std::int64_t cols, const float* X,
                    std::int64_t tokens) {
  std::vector<float> D(static_cast<std::size_t>(rows * cols)), Y(static_cast<std::size_t>(rows * tokens));
  for (std::size_t i = 0; i < D.size(); ++i) D[i] = W[i] - Q[i];
  blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(tokens),
              static_cast<int>(cols), 1.0f, D.data(), static_cast<int>(cols), X, static_cast<int>(cols), 0.0f, Y.data(),
              static_cast<int>(tokens));
  double e = 0;
  for (float v : Y) e += static_cast<double>(v) * v;
  return e;
}

double hessian_error(const float* W, const float* Q, std::int64_t rows, std::int64_t cols, const float* H, int threads) {
  return chunked_error(W, Q, rows, cols, threads, [&](const std::vector<float>& D, std::int64_t nr) {
    std::vector<float> DH(D.size());
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(nr), static_cast<int>(cols), static_cast<int>(cols), 1.0f,
                D.data(), static_cast<int>(cols), H, static_cast<int>(cols), 0.0f, DH.data(), static_cast<int>(cols));
    double s = 0;
    for (std::size_t i = 0; i < D.size(); ++i) s += static_cast<double>(D[i]) * DH[i];
    return s;
  });
}

int set_blas_threads(int threads) {
  // OpenBLAS splits a GEMM / SYRK reduction differently for different thread counts, so the Hessians,
  // rotations and error sums would change in their last bits with --threads (issue 19's determinism
  // matrix, tests/cli/determinism.sh: lenet5 gptq, quarot+rtn on stories260K). PTQ therefore keeps BLAS
  // on one thread and parallelises over rows, groups and layers itself; `threads` is that budget.
  (void)threads;
  const int prev = blas::get_num_threads();
  blas::set_num_threads(1);
  return prev;
}

}  // namespace qcast::ptq
