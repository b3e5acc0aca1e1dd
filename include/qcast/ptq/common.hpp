// Shared types of the layer-level post-training quantization algorithms (qcast::ptq).
//
// Conventions (every ptq module):
//  - A weight matrix W is [rows, cols] = [out_features, in_features], float32, row-major.
//  - Calibration activations X are [tokens, cols] row-major (one token per row), so y = x W^T.
//  - Scale groups follow the format exactly as fake_quant / encode with QuantOptions.axis = -1:
//    blocks / groups run along in_features (the last axis), per-channel (`/ch0`) is one scale per row.
//  - Every quantized result is on the format's grid with scales that are representable in the
//    format's scale element: QuantizedWeight::encode() gives packed codes + scale codes that
//    qcast::decode turns back into exactly QuantizedWeight::values.
#pragma once
#include <memory>
#include <cstdint>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast::ptq {

/// A quantized weight matrix with its per-group quantization parameters.
struct QuantizedWeight {
  Format format;
  std::int64_t rows = 0, cols = 0;
  std::vector<float> values;               ///< dequantized weights [rows, cols] (what the layer computes with)
  std::vector<std::uint32_t> scale_codes;  ///< one per scale group (GroupLayout order), codes of the scale element
  std::vector<std::int32_t> zeros;         ///< zero points per group (asymmetric ints only), else empty
  float tensor_scale = 1.0f;               ///< second-level fp32 scale (formats with `+fp32`, e.g. NVFP4)
  /// The packed codes when the quantizer produced them already (rtn's fast path): encode() returns them
  /// after checking that they still decode to `values`.
  std::shared_ptr<const Encoded> packed;
  /// `values` were made by the same quantizer as `packed` (fake_quant and encode of one format, or decoded from
  /// it): they equal decode(*packed) up to the sign of zero, so settle() need not decode to check.
  bool packed_exact = false;

  /// Packed codes + scales in the layout of qcast::encode; qcast::decode(encode()) == values bit for bit.
  Encoded encode() const;
  /// Sets `packed` to the codes (encode()'s) and `values` to exactly what they decode to (a -0 becomes +0, as a
  /// file read back gives it), with one decode; returns the codes.
  std::shared_ptr<const Encoded> settle(int threads = 1);
  /// Effective scale of group g (scale element value times the tensor scale).
  float group_scale(std::int64_t g) const;
};

/// Running first and second moments of calibration inputs per input feature (streamed in batches).
struct InputStats {
  std::int64_t dim = 0, count = 0;
  std::vector<double> sum, sumsq;
  explicit InputStats(std::int64_t d = 0) : dim(d), sum(static_cast<std::size_t>(d)), sumsq(static_cast<std::size_t>(d)) {}
  /// Adds `tokens` rows of X [tokens, dim].
  void add(const float* X, std::int64_t tokens);
  std::vector<float> mean() const;         ///< E[x_j]
  std::vector<float> second_moment() const;///< E[x_j^2] (the "importance" of input feature j)
};

/// Streaming accumulator of the GPTQ Hessian H = 2 X^T X / N over calibration batches (float32, as
/// in the reference implementation; running average so that early batches do not lose precision).
class HessianAccumulator {
 public:
  explicit HessianAccumulator(std::int64_t dim);
  /// Adds `tokens` rows of X [tokens, dim] (row-major).
  void add(const float* X, std::int64_t tokens);
  std::int64_t dim() const { return dim_; }
  std::int64_t samples() const { return n_; }
  /// The full symmetric H [dim, dim] row-major. Built on first use: while the inputs are kept (see error) H is
  /// not needed, and rtn on a large model spent 7 % of its time zero-filling dim^2 matrices it never read. The
  /// kept batches are replayed in order, so H has the same bits as if each add() had updated it.
  const std::vector<float>& H() const;
  /// tr((W - Q) H (W - Q)^T) for W, Q [rows, dim] (Q null: zero). While few inputs have been added (at most
  /// dim / 4 rows) it is computed from those inputs, 2/N sum_t |(W - Q) x_t|^2, at rows x dim x N instead of
  /// rows x dim^2 (RTN on a small calibration set spent most of its time here); else from H. Row chunks on up
  /// to `threads` threads: the same bits for any count.
  double error(const float* W, const float* Q, std::int64_t rows, int threads = 1) const;

 private:
  void fold(const float* X, std::int64_t tokens, std::int64_t n_before) const;  // H <- H n/(n+t) + 2/(n+t) X^T X
  std::int64_t dim_ = 0, n_ = 0;
  mutable std::vector<float> H_;                 // empty until needed
  mutable std::int64_t folded_ = 0;              // inputs already in H_
  std::vector<float> X_;                         // the inputs added so far, while there are at most dim / 4 of them
  std::vector<std::int64_t> batches_;            // their batch sizes, in order
  bool kept_ = true;
};

/// Weight bits per element including scale / zero-point / tensor-scale storage for a [rows, cols] matrix.
double bits_per_weight(const Format& f, std::int64_t rows, std::int64_t cols);

/// Output error ||(W - Q) X^T||_F^2 over X [tokens, cols].
double output_error(const float* W, const float* Q, std::int64_t rows, std::int64_t cols, const float* X,
                    std::int64_t tokens);
/// Proxy output error tr((W - Q) H (W - Q)^T) for a Hessian / second-moment matrix H [cols, cols]; Q null
/// means zero (the error of no weight at all). Row chunks on up to `threads` threads, the same bits for any count.
double hessian_error(const float* W, const float* Q, std::int64_t rows, std::int64_t cols, const float* H, int threads = 1);

/// Puts the BLAS / LAPACK calls (OpenBLAS) on one thread whatever `threads` is, and returns the previous
/// count: OpenBLAS's reductions depend on its thread count, and PTQ results must not (PTQ parallelises over
/// rows, groups and layers itself).
int set_blas_threads(int threads);

}  // namespace qcast::ptq
