// The SIMD kernel of qcast/kernels/lowbit.hpp (lowbit_simd.cpp): rows [r0, r1) of every activation row.
#pragma once
#include <cstdint>

#include "qcast/kernels/lowbit.hpp"

namespace qcast::kern {

/// y[t * w.rows + r] for r in [r0, r1) and every activation row t; shapes already checked.
void lowbit_rows(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t r0, std::int64_t r1);

/// quantize_q8_0's blocks (Highway, bit for bit the scalar rule): codes, fp16-rounded scales, code sums of
/// each block and of its first 16 codes.
void quantize_q8_blocks(const float* x, std::int64_t nblocks, std::int8_t* q, float* d, std::int32_t* sums, std::int32_t* sums16);

/// The tiled kernel (lowbit_vnni.cpp; w.tiles built): rows of the 16-row groups [g0, g1), every activation row.
void lowbit_tiled_groups(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t g0, std::int64_t g1);

}  // namespace qcast::kern
