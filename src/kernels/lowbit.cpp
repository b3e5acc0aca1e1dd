// Low-bit GEMV/GEMM on packed ggml blocks: block layouts, activation quantization, the scalar reference,
// and the threaded entry point over the SIMD kernels of lowbit_simd.cpp.
#include "qcast/kernels/lowbit.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/lowbit_simd.hpp"
#include "qcast/error.hpp"
#include "qcast/half.hpp"
#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/kernels/thread_pool.hpp"

namespace qcast::kern {

namespace {
bool is_s16(LowbitType t) { return t == LowbitType::Q8_S16 || t == LowbitType::Q8_S16_MIN; }
bool with_min(LowbitType t) { return t == LowbitType::Q4_MIN || t == LowbitType::Q8_S16_MIN; }
}  // namespace

std::size_t lowbit_block_bytes(LowbitType t) {
  switch (t) {
    case LowbitType::Q8_0: return 34;
    case LowbitType::Q4_0: return 18;
    case LowbitType::Q4_MIN: return 16;
    default: return 32;
  }
}
std::size_t lowbit_tile_bytes(LowbitType t) {
  switch (t) {
    case LowbitType::Q8_0: return 544;
    case LowbitType::Q4_0: return 288;
    case LowbitType::Q4_MIN: return 384;
    case LowbitType::Q8_S16: return 640;
    default: return 768;
  }
}
int lowbit_scales_per_block(LowbitType t) { return is_s16(t) ? 2 : 1; }
const char* lowbit_name(LowbitType t) {
  switch (t) {
    case LowbitType::Q8_0: return "Q8_0";
    case LowbitType::Q4_0: return "Q4_0";
    case LowbitType::Q4_MIN: return "Q4_MIN";
    case LowbitType::Q8_S16: return "Q8_S16";
    default: return "Q8_S16_MIN";
  }
}

namespace {

// LowbitMatrix::tiles from the blocks (the layout lowbit.hpp describes).
void build_tiles(LowbitMatrix& w) {
  const std::int64_t nb = w.cols / kLowbitBlock, groups = (w.rows + 15) / 16;
  const std::size_t chunk = lowbit_tile_bytes(w.type), bytes = lowbit_block_bytes(w.type);
  const bool q8 = w.type == LowbitType::Q8_0 || is_s16(w.type), own_scales = w.type == LowbitType::Q4_MIN || is_s16(w.type);
  const std::size_t code_bytes = q8 ? 512 : 256, codes_at = own_scales ? 0 : 2;
  const std::size_t halves = static_cast<std::size_t>(lowbit_scales_per_block(w.type));
  // Padding rows: zero weights (Q8_0's code 0 is 128 here, Q4_0's nibble 8) and zero scales.
  w.tiles.assign(static_cast<std::size_t>(groups * nb) * chunk, 0);
  for (std::int64_t g = 0; g < groups; ++g)
    for (std::int64_t b = 0; b < nb; ++b) {
      std::uint8_t* t = w.tiles.data() + static_cast<std::size_t>(g * nb + b) * chunk;
      for (int i = 0; i < 16; ++i) {
        const std::int64_t r = 16 * g + i;
        if (r >= w.rows) {
          for (std::size_t k = 0; k < code_bytes / 64; ++k)
            std::memset(t + 64 * k + 4 * i, q8 ? 0x80 : w.type == LowbitType::Q4_0 ? 0x88 : 0, 4);
          continue;
        }
        const std::size_t blk = static_cast<std::size_t>(r * nb + b);
        const std::uint8_t* src = w.blocks.data() + blk * bytes;
        for (std::size_t k = 0; k < code_bytes / 64; ++k)
          for (int m = 0; m < 4; ++m) {
            const std::uint8_t v = src[codes_at + 4 * k + static_cast<std::size_t>(m)];
            t[64 * k + 4 * static_cast<std::size_t>(i) + static_cast<std::size_t>(m)] = q8 ? static_cast<std::uint8_t>(v ^ 0x80) : v;
          }
        if (own_scales) {  // d (per half block: first halves, then second halves), then c likewise
          for (std::size_t h = 0; h < halves; ++h) {
            std::memcpy(t + code_bytes + 64 * h + 4 * i, &w.d[blk * halves + h], 4);
            if (with_min(w.type)) std::memcpy(t + code_bytes + 64 * (halves + h) + 4 * i, &w.c[blk * halves + h], 4);
          }
        } else {
          std::memcpy(t + code_bytes + 2 * i, src, 2);  // the block's fp16 scale
        }
      }
    }
}

}  // namespace

void LowbitMatrix::finish() {
  if (rows <= 0 || cols <= 0 || cols % kLowbitBlock != 0)
    throw Error(std::string(lowbit_name(type)) + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) +
                "]: the row length must be a positive multiple of 32");
  const std::size_t want = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols / kLowbitBlock) * lowbit_block_bytes(type);
  if (blocks.size() != want)
    throw Error(std::string(lowbit_name(type)) + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " +
                std::to_string(blocks.size()) + " bytes of blocks, expected " + std::to_string(want));
  const std::size_t bytes = lowbit_block_bytes(type);
  if (type == LowbitType::Q4_MIN || is_s16(type)) {
    const std::size_t want_d = blocks.size() / bytes * static_cast<std::size_t>(lowbit_scales_per_block(type));
    if (d.size() != want_d || c.size() != (with_min(type) ? want_d : 0))
      throw Error(std::string(lowbit_name(type)) + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " +
                  std::to_string(d.size()) + " scales and " + std::to_string(c.size()) + " constants for " +
                  std::to_string(blocks.size() / bytes) + " blocks");
  } else {
    d.resize(blocks.size() / bytes);
    for (std::size_t b = 0; b < d.size(); ++b) {
      std::uint16_t h;
      std::memcpy(&h, blocks.data() + b * bytes, 2);
      d[b] = f16_to_f32(h);
    }
  }
  if (lowbit_tiles_supported())
    build_tiles(*this);
  else
    tiles.clear();
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
  out.sum16.resize(static_cast<std::size_t>(nb));
  quantize_q8_blocks(x, nb, out.q.data(), out.d.data(), out.sum.data(), out.sum16.data());
}

LowbitMatrix lowbit_q4_min(bool q4_k, std::int64_t rows, std::int64_t cols, const std::uint8_t* src, std::size_t nbytes) {
  const int super = q4_k ? kSuperBlock : kLowbitBlock, sbytes = q4_k ? 144 : 20;
  if (rows <= 0 || cols <= 0 || cols % super != 0 || nbytes != static_cast<std::size_t>(rows * (cols / super) * sbytes))
    throw Error(std::string(q4_k ? "Q4_K" : "Q4_1") + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " +
                std::to_string(nbytes) + " bytes do not hold it");
  LowbitMatrix w;
  w.type = LowbitType::Q4_MIN;
  w.rows = rows;
  w.cols = cols;
  const std::int64_t nb = rows * cols / kLowbitBlock;
  w.blocks.resize(static_cast<std::size_t>(nb) * 16);
  w.d.resize(static_cast<std::size_t>(nb));
  w.c.resize(static_cast<std::size_t>(nb));
  std::uint8_t L[kSuperBlock];
  float dl[16], ml[16];
  for (std::int64_t s = 0; s < rows * cols / super; ++s) {
    const std::uint8_t* blk = src + s * sbytes;
    const std::int64_t b0 = s * (super / kLowbitBlock);  // its first 32-block
    if (q4_k) {
      ggml_quant_levels(GgmlQuant::Q4_K, blk, L);
      ggml_quant_sub_scales(GgmlQuant::Q4_K, blk, dl, ml);
    } else {  // block_q4_1 {f16 d; f16 m; u8 qs[16]}: value = q * d + m, i.e. d * q - (-m)
      for (int j = 0; j < 16; ++j) {
        L[j] = blk[4 + j] & 0x0F;
        L[j + 16] = blk[4 + j] >> 4;
      }
      std::uint16_t h;
      std::memcpy(&h, blk, 2);
      dl[0] = f16_to_f32(h);
      std::memcpy(&h, blk + 2, 2);
      ml[0] = -f16_to_f32(h);
    }
    for (int k = 0; k < super / kLowbitBlock; ++k) {
      std::uint8_t* q = w.blocks.data() + (b0 + k) * 16;
      for (int j = 0; j < 16; ++j) q[j] = static_cast<std::uint8_t>(L[32 * k + j] | (L[32 * k + j + 16] << 4));
      w.d[static_cast<std::size_t>(b0 + k)] = dl[k];
      w.c[static_cast<std::size_t>(b0 + k)] = ml[k];
    }
  }
  w.finish();
  return w;
}

bool lowbit_takes_ggml(const std::string& t) {
  for (const char* k : {"Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q5_K", "Q6_K", "IQ4_NL", "MXFP4", "NVFP4"})
    if (t == k) return true;
  return false;
}

bool lowbit_fast_for_ggml(const std::string& t) {
  return lowbit_takes_ggml(t) && (t == "Q8_0" || t == "Q4_0" || t == "Q4_1" || t == "Q4_K" || lowbit_tiles_supported());
}

LowbitMatrix lowbit_from_ggml(const std::string& type, std::int64_t rows, std::int64_t cols, const std::uint8_t* src, std::size_t nbytes) {
  if (!lowbit_takes_ggml(type)) throw Error("the low-bit kernels take no ggml " + type + " weights");
  if (type == "Q4_1" || type == "Q4_K") return lowbit_q4_min(type == "Q4_K", rows, cols, src, nbytes);
  LowbitMatrix w;
  w.rows = rows;
  w.cols = cols;
  if (type == "Q8_0" || type == "Q4_0") {
    w.type = type == "Q8_0" ? LowbitType::Q8_0 : LowbitType::Q4_0;
    if (rows <= 0 || cols <= 0 || cols % kLowbitBlock != 0 ||
        nbytes != static_cast<std::size_t>(rows * (cols / kLowbitBlock)) * lowbit_block_bytes(w.type))
      throw Error(type + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " + std::to_string(nbytes) + " bytes do not hold it");
    w.blocks.assign(src, src + nbytes);
    w.finish();
    return w;
  }
  // The rest become 8-bit codes with a scale (and a minimum) per half block.
  const bool legacy = type == "Q5_0" || type == "Q5_1";
  GgmlQuant gq = GgmlQuant::Q6_K;
  for (GgmlQuant t : {GgmlQuant::Q2_K, GgmlQuant::Q3_K, GgmlQuant::Q5_K, GgmlQuant::Q6_K, GgmlQuant::IQ4_NL, GgmlQuant::MXFP4, GgmlQuant::NVFP4})
    if (type == ggml_quant_layout(t).name) gq = t;
  const GgmlQuantLayout& lay = ggml_quant_layout(gq);
  const int block = legacy ? 32 : lay.block, bytes = legacy ? (type == "Q5_0" ? 22 : 24) : lay.bytes;
  const int sub = legacy ? 32 : lay.sub_block;
  const bool min = type == "Q5_1" || (!legacy && lay.with_min);
  if (rows <= 0 || cols <= 0 || cols % block != 0 || nbytes != static_cast<std::size_t>(rows * (cols / block) * bytes))
    throw Error(type + " matrix [" + std::to_string(rows) + ", " + std::to_string(cols) + "]: " + std::to_string(nbytes) + " bytes do not hold it");
  w.type = min ? LowbitType::Q8_S16_MIN : LowbitType::Q8_S16;
  const std::int64_t nb = rows * cols / kLowbitBlock;
  w.blocks.resize(static_cast<std::size_t>(nb) * 32);
  w.d.resize(static_cast<std::size_t>(nb) * 2);
  if (min) w.c.resize(static_cast<std::size_t>(nb) * 2);
  std::uint8_t L[kSuperBlock];
  float dl[kSuperBlock / 16], ml[kSuperBlock / 16];
  for (std::int64_t s = 0; s < rows * cols / block; ++s) {
    const std::uint8_t* blk = src + s * bytes;
    auto half = [&](int at) {
      std::uint16_t h;
      std::memcpy(&h, blk + at, 2);
      return f16_to_f32(h);
    };
    int offset = 0;
    const std::int8_t* codebook = nullptr;
    if (legacy) {  // block_q5_0 {f16 d; u8 qh[4]; u8 qs[16]}, block_q5_1 {f16 d; f16 m; u8 qh[4]; u8 qs[16]}
      const int qh_at = type == "Q5_0" ? 2 : 4;
      std::uint32_t qh;
      std::memcpy(&qh, blk + qh_at, 4);
      const std::uint8_t* qs = blk + qh_at + 4;
      for (int j = 0; j < 16; ++j) {
        L[j] = static_cast<std::uint8_t>((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4));
        L[j + 16] = static_cast<std::uint8_t>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
      }
      dl[0] = half(0);
      if (type == "Q5_0")
        offset = 16;  // value = (L - 16) * d
      else
        ml[0] = -half(2);  // value = L * d + m = d * L - (-m)
    } else {
      ggml_quant_levels(gq, blk, L);
      ggml_quant_sub_scales(gq, blk, dl, ml);
      offset = lay.level_offset;
      if (gq == GgmlQuant::IQ4_NL) codebook = kIq4nlValues;
      if (gq == GgmlQuant::MXFP4 || gq == GgmlQuant::NVFP4) codebook = kMxfp4Values;
    }
    const std::int64_t e0 = s * block;  // first element (rows are whole blocks, so this is row-major)
    for (int j = 0; j < block; ++j)
      w.blocks[static_cast<std::size_t>(e0 + j)] = static_cast<std::uint8_t>(codebook ? codebook[L[j]] : static_cast<std::int8_t>(L[j] - offset));
    for (int h = 0; h < block / 16; ++h) {
      const std::size_t k = static_cast<std::size_t>(e0 / 16 + h);
      w.d[k] = dl[16 * h / sub];
      if (min) w.c[k] = ml[16 * h / sub];
    }
  }
  w.finish();
  return w;
}

void lowbit_decode(const LowbitMatrix& w, float* out) {
  const std::int64_t nb = w.rows * (w.cols / kLowbitBlock);
  const std::size_t bytes = lowbit_block_bytes(w.type);
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::uint8_t* p = w.blocks.data() + b * bytes;
    float* y = out + b * kLowbitBlock;
    const float d = w.d[static_cast<std::size_t>(b)];
    if (w.type == LowbitType::Q8_0) {
      for (int j = 0; j < kLowbitBlock; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(p[2 + j])) * d;
    } else if (w.type == LowbitType::Q4_0) {
      for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((p[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((p[2 + j] >> 4) - 8) * d;
      }
    } else if (is_s16(w.type)) {  // ggml's order: (d * sc) * q [- dmin * m], per half block
      for (int j = 0; j < kLowbitBlock; ++j) {
        const std::size_t h = static_cast<std::size_t>(2 * b + j / 16);
        const float v = w.d[h] * static_cast<float>(static_cast<std::int8_t>(p[j]));
        y[j] = w.type == LowbitType::Q8_S16_MIN ? v - w.c[h] : v;
      }
    } else {  // ggml's order: (d * sc) * q - dmin * m
      const float c = w.c[static_cast<std::size_t>(b)];
      for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>(p[j] & 0x0F) - c;
        y[j + 16] = d * static_cast<float>(p[j] >> 4) - c;
      }
    }
  }
}

namespace {

float dot_row_reference(const LowbitMatrix& w, std::int64_t r, const std::int8_t* xq, const float* xd) {
  const LowbitType type = w.type;
  const std::int64_t nb = w.cols / kLowbitBlock;
  const std::size_t bytes = lowbit_block_bytes(type);
  const std::uint8_t* wp = w.blocks.data() + static_cast<std::size_t>(r * nb) * bytes;
  if (is_s16(type)) {
    // Per half block: d16 d_x (sum q_w q_x) [- c16 d_x (sum q_x)], halves and blocks left to right.
    float sum = 0.0f;
    for (std::int64_t b = 0; b < nb; ++b, wp += bytes, xq += kLowbitBlock)
      for (int h = 0; h < 2; ++h) {
        std::int32_t isum = 0, xsum = 0;
        for (int j = 16 * h; j < 16 * h + 16; ++j) {
          isum += static_cast<std::int8_t>(wp[j]) * xq[j];
          xsum += xq[j];
        }
        const std::size_t k = static_cast<std::size_t>(2 * (r * nb + b) + h);
        const float prod = static_cast<float>(isum) * w.d[k] * xd[b];
        sum += type == LowbitType::Q8_S16_MIN ? prod - w.c[k] * xd[b] * static_cast<float>(xsum) : prod;
      }
    return sum;
  }
  if (type == LowbitType::Q4_MIN) {
    // sum over blocks of d_w d_x (sum q_w q_x) - c_w d_x (sum q_x), left to right.
    float sum = 0.0f;
    for (std::int64_t b = 0; b < nb; ++b, wp += bytes, xq += kLowbitBlock) {
      std::int32_t isum = 0, xsum = 0;
      for (int j = 0; j < kLowbitBlock / 2; ++j) {
        isum += (wp[j] & 0x0f) * xq[j] + (wp[j] >> 4) * xq[j + kLowbitBlock / 2];
        xsum += xq[j] + xq[j + kLowbitBlock / 2];
      }
      const float dw = w.d[static_cast<std::size_t>(r * nb + b)], cw = w.c[static_cast<std::size_t>(r * nb + b)];
      sum += static_cast<float>(isum) * dw * xd[b] - cw * xd[b] * static_cast<float>(xsum);
    }
    return sum;
  }
  float sum = 0.0f;
  for (std::int64_t b = 0; b < nb; ++b, wp += bytes, xq += kLowbitBlock) {
    std::uint16_t h;
    std::memcpy(&h, wp, 2);
    const float dw = f16_to_f32(h);
    std::int32_t isum = 0;
    if (type == LowbitType::Q8_0) {
      for (int j = 0; j < kLowbitBlock; ++j) isum += static_cast<std::int8_t>(wp[2 + j]) * xq[j];
    } else {
      for (int j = 0; j < kLowbitBlock / 2; ++j)
        isum += ((wp[2 + j] & 0x0f) - 8) * xq[j] + ((wp[2 + j] >> 4) - 8) * xq[j + kLowbitBlock / 2];
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
      w.d.size() != static_cast<std::size_t>(w.rows * (w.cols / kLowbitBlock) * lowbit_scales_per_block(w.type)) ||
      (with_min(w.type) && w.c.size() != w.d.size()) ||
      (!w.tiles.empty() && w.tiles.size() != static_cast<std::size_t>((w.rows + 15) / 16 * (w.cols / kLowbitBlock)) * lowbit_tile_bytes(w.type)))
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
  for (std::int64_t t = 0; t < x.rows; ++t)
    for (std::int64_t r = 0; r < w.rows; ++r) y[t * w.rows + r] = dot_row_reference(w, r, x.q.data() + t * w.cols, x.d.data() + t * nb);
}

void lowbit_gemm(const LowbitMatrix& w, const Q8Activations& x, float* y, int threads) {
  check_shapes(w, x);
  if (!w.tiles.empty()) {
    // Ranges of whole 16-row groups; the tiled kernel equals the reference, so the split cannot matter.
    parallel_for(
        (w.rows + 15) / 16, std::max(1, threads), [&](std::int64_t g0, std::int64_t g1) { lowbit_tiled_groups(w, x, y, g0, g1); }, 1);
    return;
  }
  if (is_s16(w.type)) {  // no kernel but the tiled one: the reference, row ranges over the threads
    const std::int64_t nb = w.cols / kLowbitBlock;
    parallel_for(
        w.rows, std::max(1, threads),
        [&](std::int64_t r0, std::int64_t r1) {
          for (std::int64_t t = 0; t < x.rows; ++t)
            for (std::int64_t r = r0; r < r1; ++r) y[t * w.rows + r] = dot_row_reference(w, r, x.q.data() + t * w.cols, x.d.data() + t * nb);
        },
        16);
    return;
  }
  // Ranges of whole rows: each row's value is computed alone, so the split cannot change a bit. At least
  // 16 rows a range keeps a thread's share worth its wake-up.
  parallel_for(
      w.rows, std::max(1, threads), [&](std::int64_t r0, std::int64_t r1) { lowbit_rows(w, x, y, r0, r1); }, 16);
}

}  // namespace qcast::kern
