// Private helpers of src/ptq: scale groups of a [rows, cols] weight matrix, parameter construction
// from stored scale codes, LAPACK prototypes and a tiny row-parallel loop.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "qcast/kernels/reference.hpp"
#include "qcast/kernels/thread_pool.hpp"
#include "qcast/ptq/common.hpp"

namespace qcast::ptq::detail {

/// Scale groups of a weight matrix [rows, cols] under format f (axis -1, as fake_quant).
struct WeightGroups {
  ref::GroupLayout layout;
  std::int64_t rows = 0, cols = 0;

  static WeightGroups make(const Format& f, std::int64_t rows, std::int64_t cols);
  std::int64_t num_groups() const { return layout.num_groups; }
  bool scaled() const { return layout.kind != ScaleKind::None; }
  /// Group id of element (r, c).
  std::int64_t group_of(std::int64_t r, std::int64_t c) const {
    const std::int64_t idx = r * cols + c;
    switch (layout.kind) {
      case ScaleKind::None: return -1;
      case ScaleKind::Tensor: return 0;
      case ScaleKind::Channel: return (idx / layout.inner) % layout.len;
      case ScaleKind::Block: {
        const std::int64_t o = idx / (layout.len * layout.inner), l = (idx / layout.inner) % layout.len, i = idx % layout.inner;
        return (o * layout.nblocks + l / layout.block) * layout.inner + i;
      }
      case ScaleKind::Tile: return (r / layout.tr) * layout.ntc + c / layout.tc;
    }
    return -1;
  }
  /// Flat offsets (r * cols + c) of group g.
  std::vector<std::int64_t> offsets(std::int64_t g) const;
};

/// Group parameters from a stored scale code (and zero point), exactly as qcast::decode rebuilds them.
ref::GroupParams params_from_code(const Format& f, std::uint32_t scale_code, std::int32_t zero, float tensor_scale);

/// Group parameters for a candidate scale value `s` (in scale-element units, before the tensor scale):
/// s is rounded into the scale element (so it is representable) and decoded back.
ref::GroupParams params_for_scale(const Format& f, float s, std::int32_t zero, float tensor_scale);

/// Builds a QuantizedWeight from per-group params and dequantized values.
QuantizedWeight make_result(const Format& f, std::int64_t rows, std::int64_t cols, std::vector<float> values,
                            const std::vector<ref::GroupParams>& params, float tensor_scale);

using kern::parallel_for;  // qcast's one thread pool

/// Lower-level linear algebra on row-major matrices.
/// In-place Cholesky of the SPD matrix A [n, n] (row-major): on return the upper triangle holds U
/// with A = U^T U (lower triangle unspecified). Returns false when A is not positive definite.
bool cholesky_upper(float* A, std::int64_t n);
bool cholesky_upper(double* A, std::int64_t n);
/// In-place inverse of an SPD matrix A [n, n] (full symmetric result). Returns false if not SPD.
bool spd_inverse(float* A, std::int64_t n);
bool spd_inverse(double* A, std::int64_t n);
/// Thin SVD of a row-major A [m, n] (double, destroyed): A = U diag(S) Vt with U [m, k], Vt [k, n], k = min(m, n).
void svd(std::vector<double>& A, std::int64_t m, std::int64_t n, std::vector<double>& U, std::vector<double>& S,
         std::vector<double>& Vt);

}  // namespace qcast::ptq::detail
