// Block-diagonal Hadamard rotations along in_features (QuaRot-style incoherence processing, per block).
//   R = diag(d) * blockdiag(H_n, ..., H_n) / sqrt(n),  n a power of two <= 128 (e.g. the MX block 32,
//   NVFP4 16), d in {+1, -1}^cols (random, seeded) or all ones.
// R is orthogonal, so y = x W^T = (x R)(W R)^T: weights are rotated once (W R, fused) and activations
// get the matching online transform x R (the same function applied to activation rows). A Hessian
// (or second-moment) matrix of the inputs transforms as R^T H R, which makes `rotate+gptq`:
//   gptq(f, W R, R^T H R)  then run the layer on x R.
#pragma once
#include <cstdint>
#include <vector>

namespace qcast::ptq {

struct Rotation {
  std::int64_t dim = 0;      ///< in_features
  int block = 32;            ///< Hadamard size (power of two, <= 128, divides dim)
  std::vector<float> signs;  ///< the diagonal d (dim entries of +-1)

  /// A rotation of `dim` features with Hadamard blocks of `block`; random signs from `seed` unless
  /// `random_signs` is false. Throws qcast::Error if block is not a power of two <= 128 or does not divide dim.
  static Rotation make(std::int64_t dim, int block, bool random_signs = true, std::uint64_t seed = 0);

  /// rows x dim row-major, in place: each row v -> v R (weights W -> W R, activations x -> x R).
  void apply(float* rows_data, std::int64_t rows) const;
  /// The inverse, in place: v -> v R^T (undoes apply).
  void apply_inverse(float* rows_data, std::int64_t rows) const;
  /// H [dim, dim] -> R^T H R, in place.
  void conjugate(float* H) const;
};

/// In-place fast Walsh-Hadamard transform of n = 2^k values (unnormalised: H_n with entries +-1).
void fwht(float* v, int n);

}  // namespace qcast::ptq
