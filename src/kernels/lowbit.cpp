// Low-bit GEMV/GEMM on packed ggml blocks: block layouts, activation quantization, the scalar reference,
// and the threaded entry point over the SIMD kernels of lowbit_simd.cpp.
#include "qcast/kernels/lowbit.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/lowbit_simd.hpp"
#include "qcast/error.hpp"
#include "qcast/half.hpp"
#include "qcast/kernels/thread_pool.hpp"

namespace qcast::kern {

std::size_t lowbit_block_bytes(LowbitType t) { return t == LowbitType::Q8_0 ? 34 : 18; }
const char* lowbit_name(LowbitType t) { return t == LowbitType::Q8_0 ? "Q8_0" : "Q4_0"; }

void LowbitMatrix::finish() {
  if (rows <= 0 || cols <= 0 || cols % kLowbitBlock != 0)
    throw Error(std::string(lowbit_name(type)) + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) +
                "]: the row length must be a positive multiple of 32");
  const std::size_t want = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols / kLowbitBlock) * lowbit_block_bytes(type);
  if (blocks.size() != want)
    throw Error(std::string(lowbit_name(type)) + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " +
                std::to_string(blocks.size()) + " bytes of blocks, expected " + std::to_string(want));
  const std::size_t bytes = lowbit_block_bytes(type);
  d.resize(blocks.size() / bytes);
  for (std::size_t b = 0; b < d.size(); ++b) {
    std::uint16_t h;
    std::memcpy(&h, blocks.data() + b * bytes, 2);
    d[b] = f16_to_f32(h);
  }
}

void quantize_q8_0(const float* x, std::int64_t rows, std::int64_t cols, Q8Activations& out) {
  if (rows < 0 || cols <= 0 || cols % kLowbitBlock != 0)
    throw Error("8-bit activation blocks need a row length that is a positive multiple of 32, got " + std::to_string(cols));
  out.rows = rows;
  out.cols = cols;
  const std::int64_t nb = rows * (cols / kLowbitBlock);
  out.q.resize(static_cast<std::size_t>(rows * cols));
  out.d.resize(static_cast<std::size_t>(nb));
  out.sum.resize(static_cast<std::size_t>(nb));
  for (std::int64_t b = 0; b < nb; ++b) {
    const float* v = x + b * kLowbitBlock;
    float amax = 0.0f;
    for (int j = 0; j < kLowbitBlock; ++j) amax = std::max(amax, std::fabs(v[j]));
    // quantize_row_q8_0_ref: the codes use 1/d of the unrounded d; the stored d is its fp16 rounding.
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out.d[static_cast<std::size_t>(b)] = f16_to_f32(f32_to_f16(d));
    std::int8_t* q = out.q.data() + b * kLowbitBlock;
    std::int32_t sum = 0;
    for (int j = 0; j < kLowbitBlock; ++j) {
      q[j] = static_cast<std::int8_t>(std::round(v[j] * id));
      sum += q[j];
    }
    out.sum[static_cast<std::size_t>(b)] = sum;
  }
}

namespace {

float dot_row_reference(LowbitType type, const std::uint8_t* w, const std::int8_t* xq, const float* xd, std::int64_t nb) {
  const std::size_t bytes = lowbit_block_bytes(type);
  float sum = 0.0f;
  for (std::int64_t b = 0; b < nb; ++b, w += bytes, xq += kLowbitBlock) {
    std::uint16_t h;
    std::memcpy(&h, w, 2);
    const float dw = f16_to_f32(h);
    std::int32_t isum = 0;
    if (type == LowbitType::Q8_0) {
      for (int j = 0; j < kLowbitBlock; ++j) isum += static_cast<std::int8_t>(w[2 + j]) * xq[j];
    } else {
      for (int j = 0; j < kLowbitBlock / 2; ++j)
        isum += ((w[2 + j] & 0x0f) - 8) * xq[j] + ((w[2 + j] >> 4) - 8) * xq[j + kLowbitBlock / 2];
    }
    // ggml_vec_dot_*_q8_0 (generic): sumf += sumi * d_x * d_y, left to right.
    const float t = static_cast<float>(isum) * dw;
    sum += t * xd[b];
  }
  return sum;
}

void check_shapes(const LowbitMatrix& w, const Q8Activations& x) {
  if (w.rows <= 0 || w.cols <= 0 || w.cols % kLowbitBlock != 0 ||
      w.blocks.size() != static_cast<std::size_t>(w.rows * (w.cols / kLowbitBlock)) * lowbit_block_bytes(w.type) ||
      w.d.size() != static_cast<std::size_t>(w.rows * (w.cols / kLowbitBlock)))
    throw Error(std::string(lowbit_name(w.type)) + " matrix [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                "]: blocks or scales do not match the shape (LowbitMatrix::finish checks them)");
  if (x.cols != w.cols)
    throw Error(std::string(lowbit_name(w.type)) + " product: activations have " + std::to_string(x.cols) + " columns, weights " +
                std::to_string(w.cols));
}

}  // namespace

void lowbit_gemm_reference(const LowbitMatrix& w, const Q8Activations& x, float* y) {
  check_shapes(w, x);
  const std::int64_t nb = w.cols / kLowbitBlock;
  const std::size_t row_bytes = static_cast<std::size_t>(nb) * lowbit_block_bytes(w.type);
  for (std::int64_t t = 0; t < x.rows; ++t)
    for (std::int64_t r = 0; r < w.rows; ++r)
      y[t * w.rows + r] = dot_row_reference(w.type, w.blocks.data() + r * row_bytes, x.q.data() + t * w.cols, x.d.data() + t * nb, nb);
}

void lowbit_gemm(const LowbitMatrix& w, const Q8Activations& x, float* y, int threads) {
  check_shapes(w, x);
  // Ranges of whole rows: each row's value is computed alone, so the split cannot change a bit. At least
  // 16 rows a range keeps a thread's share worth its wake-up.
  parallel_for(
      w.rows, std::max(1, threads), [&](std::int64_t r0, std::int64_t r1) { lowbit_rows(w, x, y, r0, r1); }, 16);
}

}  // namespace qcast::kern
