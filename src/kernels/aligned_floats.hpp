// Uninitialised float arrays on 64-byte (cache-line) boundaries, so that the kernels' vector loads of
// vector-aligned blocks never straddle two cache lines (a third more time in DRAM-bound passes here).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace qcast::kern {

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedFree>;

/// n floats (at least one), uninitialised; throws std::bad_alloc.
inline AlignedFloats aligned_floats(std::int64_t n) {
  const std::size_t bytes = (static_cast<std::size_t>(n < 1 ? 1 : n) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return AlignedFloats(p);
}

}  // namespace qcast::kern
