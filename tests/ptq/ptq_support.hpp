// Random layers and calibration data shared by the PTQ tests.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "qcast/kernels/blas.hpp"

namespace qcast::test {

inline std::vector<float> randn(std::int64_t n, std::uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, stddev);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

/// Correlated inputs X [tokens, dim] = Z M^T with Z standard normal and a random mixing M = I + G / sqrt(dim),
/// plus a per-feature scale spread over two decades.
inline std::vector<float> correlated_inputs(std::int64_t tokens, std::int64_t dim, std::uint32_t seed) {
  auto Z = randn(tokens * dim, seed);
  auto M = randn(dim * dim, seed + 1, 1.0f / std::sqrt(static_cast<float>(dim)) * 2.0f);
  for (std::int64_t i = 0; i < dim; ++i) M[i * dim + i] += 1.0f;
  std::vector<float> X(static_cast<std::size_t>(tokens * dim));
  blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(tokens), static_cast<int>(dim),
              static_cast<int>(dim), 1.0f, Z.data(), static_cast<int>(dim), M.data(), static_cast<int>(dim), 0.0f,
              X.data(), static_cast<int>(dim));
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t j = 0; j < dim; ++j) X[t * dim + j] *= std::pow(10.0f, static_cast<float>(j % 7) / 3.0f - 1.0f);
  return X;
}

}  // namespace qcast::test
