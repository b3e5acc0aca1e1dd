#include "qcast/ptq/rotate.hpp"

#include <cmath>
#include <vector>

#include "qcast/kernels/reference.hpp"
#include "qcast/error.hpp"

namespace qcast::ptq {

void fwht(float* v, int n) {
  for (int h = 1; h < n; h *= 2)
    for (int i = 0; i < n; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        const float a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
}

Rotation Rotation::make(std::int64_t dim, int block, bool random_signs, std::uint64_t seed) {
  if (block <= 0 || block > 128 || (block & (block - 1)) != 0)
    throw Error("rotation block size must be a power of two <= 128, got " + std::to_string(block));
  if (dim <= 0 || dim % block != 0)
    throw Error("rotation block size " + std::to_string(block) + " does not divide in_features " + std::to_string(dim));
  Rotation r;
  r.dim = dim;
  r.block = block;
  r.signs.assign(static_cast<std::size_t>(dim), 1.0f);
  if (random_signs)
    for (std::int64_t j = 0; j < dim; ++j)
      r.signs[j] = (ref::counter_rand(seed, static_cast<std::uint64_t>(j)) & 1u) ? -1.0f : 1.0f;
  return r;
}

void Rotation::apply(float* data, std::int64_t rows) const {
  const float norm = 1.0f / std::sqrt(static_cast<float>(block));
  for (std::int64_t r = 0; r < rows; ++r) {
    float* v = data + r * dim;
    for (std::int64_t j = 0; j < dim; ++j) v[j] *= signs[j];
    for (std::int64_t b = 0; b < dim; b += block) fwht(v + b, block);
    for (std::int64_t j = 0; j < dim; ++j) v[j] *= norm;
  }
}

void Rotation::apply_inverse(float* data, std::int64_t rows) const {
  // R^T = blockdiag(H)/sqrt(n) * diag(d): v R^T = (v H / sqrt(n)) * d (H symmetric).
  const float norm = 1.0f / std::sqrt(static_cast<float>(block));
  for (std::int64_t r = 0; r < rows; ++r) {
    float* v = data + r * dim;
    for (std::int64_t b = 0; b < dim; b += block) fwht(v + b, block);
    for (std::int64_t j = 0; j < dim; ++j) v[j] *= norm * signs[j];
  }
}

void Rotation::conjugate(float* H) const {
  // M = H R (rows of H rotated), then R^T M = (M^T R)^T.
  apply(H, dim);
  std::vector<float> T(static_cast<std::size_t>(dim * dim));
  for (std::int64_t i = 0; i < dim; ++i)
    for (std::int64_t j = 0; j < dim; ++j) T[j * dim + i] = H[i * dim + j];
  apply(T.data(), dim);
  for (std::int64_t i = 0; i < dim; ++i)
    for (std::int64_t j = 0; j < dim; ++j) H[j * dim + i] = T[i * dim + j];
}

}  // namespace qcast::ptq
