// The SIMD kernel of qcast/kernels/lowbit.hpp (lowbit_simd.cpp): rows [r0, r1) of every activation row.
#pragma once
#include <cstdint>

#include "qcast/kernels/lowbit.hpp"

namespace qcast::kern {

/// y[t * w.rows + r] for r in [r0, r1) and every activation row t; shapes already checked.
void lowbit_rows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1);

}  // namespace qcast::kern
