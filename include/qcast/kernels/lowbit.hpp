// Low-bit matrix-vector products on packed weights: the kernels that make a quantized LLaMA faster than
// its fp32 self, instead of dequantizing every weight to fp32 before an sgemv.
//
// Weights stay in ggml's 32-element blocks (ggml-common.h, as a GGUF stores them):
//   Q8_0: fp16 d, then 32 int8 codes                                   (34 bytes, value = d * q)
//   Q4_0: fp16 d, then 16 bytes; element j in the low nibble of byte j,
//         element j + 16 in the high nibble; value = d * (nibble - 8)  (18 bytes)
// or, for the 4-bit types with a minimum (ggml Q4_1 and Q4_K: Q4_K_M's bulk), unpacked at load into
//   Q4_MIN: 16 bytes of nibbles as Q4_0's, and per block a float scale d and a float c kept beside the
//           blocks; value = d * nibble - c (Q4_K: d = d_super * sc, c = dmin * m, as ggml decodes it)
// whose products add the term -c * d_x * (sum of the activation block's codes); and every other ggml type
// (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q6_K, IQ4_NL, MXFP4, NVFP4) unpacked at load into 8-bit codes with a
// scale (and a minimum) per half block, so that the 16-element sub-blocks of Q2_K / Q3_K / Q6_K / NVFP4
// keep their own scales:
//   Q8_S16:     32 int8 codes per block (the level minus its offset, or the codebook's integer value), and
//               float d per 16 (two per block, beside the blocks); value = d16 * code
//   Q8_S16_MIN: the same and a float c per 16; value = d16 * code - c16
// each d16 and c16 the sub-block scale and minimum as ggml's dequantize_row_* computes them, so that the
// decoded values are ggml's bit for bit. Their products take each half block's integer sum alone:
//   term = float(isum_half) * d16 * d_x [- c16 * d_x * float(sum of the half's activation codes)].
// These types run on the tiled kernel only; elsewhere lowbit_gemm falls back to the scalar reference.
// Activations are quantized per 32 as llama.cpp's quantize_row_q8_0_ref does (qcast's `q8_0_ggml` format:
// d = amax / 127, codes roundf(x / d), d kept in fp16), so every block's dot product is an exact integer:
//   y[r] = sum over blocks b, in order, of float(sum_j w_q[j] * x_q[j]) * d_w * d_x
// which is the summation of ggml's generic ggml_vec_dot_q8_0_q8_0 / ggml_vec_dot_q4_0_q8_0 (the scalar
// reference below). The tiled kernel (AVX-512 VNNI, one row per lane) equals the reference bit for bit.
// Elsewhere the SIMD kernels (Highway, chosen at run time) keep each block's integer sum in vector
// lanes and round per lane, as llama.cpp's own AVX2 kernels do: within a few float roundings of the
// reference (the tests bound it), and bit-identical for any thread count (rows are split into ranges;
// each row is computed alone, in the same order).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qcast::kern {

enum class LowbitType : std::uint8_t { Q8_0, Q4_0, Q4_MIN, Q8_S16, Q8_S16_MIN };
inline constexpr int kLowbitBlock = 32;

/// Bytes of one 32-element block of `t` in `blocks` (34, 18; 16 for Q4_MIN and 32 for Q8_S16*, whose
/// scales are apart).
std::size_t lowbit_block_bytes(LowbitType t);
/// Bytes of one 16-row group's block in LowbitMatrix::tiles (544, 288, 384, 640, 768).
std::size_t lowbit_tile_bytes(LowbitType t);
/// Whether this CPU runs the tiled kernel (x86 AVX-512 VNNI); finish() builds tiles only then.
bool lowbit_tiles_supported();
/// Scales (and minimums) per 32-block in LowbitMatrix::d (and c): 2 for Q8_S16*, else 1.
int lowbit_scales_per_block(LowbitType t);
/// "Q8_0" / "Q4_0" / "Q4_MIN" / "Q8_S16" / "Q8_S16_MIN".
const char* lowbit_name(LowbitType t);

/// A row-major [rows, cols] weight matrix in blocks (cols a multiple of 32): row r's blocks are
/// blocks[r * cols / 32 ...], each lowbit_block_bytes(type) long.
struct LowbitMatrix {
  LowbitType type = LowbitType::Q8_0;
  std::int64_t rows = 0, cols = 0;
  std::vector<std::uint8_t> blocks;
  std::vector<float> d;  ///< every block's fp16 scale as float (finish() fills it; the kernels read it);
                         ///< Q4_MIN, Q8_S16*: the scales the builder computed (per block, per half block)
  std::vector<float> c;  ///< Q4_MIN, Q8_S16_MIN: the subtracted constants (the builder fills d and c)
  /// The same weights laid out for the tiled kernel (lowbit_vnni.cpp), built by finish() where the CPU
  /// has it (AVX-512 VNNI), else empty; lowbit_gemm uses it when it is not empty. Rows in groups of 16
  /// (the last one padded with zero weights); per group, per block b, lowbit_tile_bytes(type) bytes:
  ///   codes: for k = 0 .. 7 (Q8_0, Q8_S16*) 64 bytes, lane i's 4 bytes = row i's codes 4k .. 4k + 3 plus 128;
  ///          for k = 0 .. 3 (Q4_0, Q4_MIN) 64 bytes, lane i's 4 bytes = row i's ggml bytes 4k .. 4k + 3
  ///          (nibbles of elements 4k .. 4k + 3 low, 16 + 4k .. 16 + 4k + 3 high; Q4_0's as stored, + 8)
  ///   then the 16 rows' scales: fp16 as in the blocks (Q8_0, Q4_0), or 16 float d and 16 float c (Q4_MIN),
  ///   or 16 float d of the first halves, 16 of the second halves [and the same two of c] (Q8_S16*).
  std::vector<std::uint8_t> tiles;
  /// Checks the shape against the bytes, fills `d` (Q8_0, Q4_0) or checks d and c (Q4_MIN), and builds
  /// `tiles` where the CPU runs the tiled kernel. Throws qcast::Error when cols is not a positive multiple
  /// of 32 or a size does not match.
  void finish();
};

/// A Q4_MIN matrix from ggml Q4_1 or Q4_K blocks (rows of `cols` values, one after the other); its values
/// are ggml's decoded values bit for bit. Throws for another type or sizes that do not match.
LowbitMatrix lowbit_q4_min(bool q4_k, std::int64_t rows, std::int64_t cols, const std::uint8_t* blocks, std::size_t nbytes);

/// Whether lowbit_from_ggml takes a ggml type (by ggml's name: "Q8_0", "Q4_K", "IQ4_NL", ...).
bool lowbit_takes_ggml(const std::string& ggml_type);
/// Whether this CPU runs that type's products on a SIMD kernel: Q8_0 / Q4_0 / Q4_1 / Q4_K everywhere, the
/// types unpacked to Q8_S16* only on the tiled kernel (elsewhere lowbit_gemm would run the scalar reference,
/// slower than fp32 BLAS, so callers keep such layers in fp32).
bool lowbit_fast_for_ggml(const std::string& ggml_type);
/// The matrix of ggml blocks of type `ggml_type` (rows of `cols` values, one after the other): Q8_0 and Q4_0
/// as they are, Q4_1 / Q4_K as Q4_MIN, Q5_0 / Q5_1 / Q2_K / Q3_K / Q5_K / Q6_K / IQ4_NL / MXFP4 / NVFP4 as
/// Q8_S16 or Q8_S16_MIN. Its values are ggml's decoded values bit for bit. Throws qcast::Error for another
/// type or sizes that do not match.
LowbitMatrix lowbit_from_ggml(const std::string& ggml_type, std::int64_t rows, std::int64_t cols, const std::uint8_t* blocks,
                              std::size_t nbytes);

/// The weights a matrix holds, as floats ([rows, cols]).
void lowbit_decode(const LowbitMatrix& w, float* out);

/// Activations quantized per block of 32 (rows of `cols` values, one after the other).
struct Q8Activations {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int8_t> q;  ///< rows * cols codes
  std::vector<float> d;        ///< rows * cols / 32 scales (fp16 values, held as float)
  std::vector<std::int32_t> sum;  ///< each block's sum of codes (Q4_0's offset of 8 folds into it)
  std::vector<std::int32_t> sum16;  ///< each block's sum of its first 16 codes (the Q8_S16 types' halves)
};

/// Quantizes `rows` rows of `cols` floats (cols a multiple of 32) as llama.cpp's quantize_row_q8_0_ref.
void quantize_q8_0(const float* x, std::int64_t rows, std::int64_t cols, Q8Activations& out);

/// y[t * w.rows + r] = the dot product of weight row r with activation row t (x.rows rows), split over up
/// to `threads` threads by weight rows (the result does not depend on `threads`).
void lowbit_gemm(const LowbitMatrix& w, const Q8Activations& x, float* y, int threads = 1);
/// The scalar definition (one row, one block at a time).
void lowbit_gemm_reference(const LowbitMatrix& w, const Q8Activations& x, float* y);

}  // namespace qcast::kern
