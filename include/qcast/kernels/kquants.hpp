// llama.cpp's k-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): super-blocks of 256 values with an fp16 scale (and,
// for Q2_K / Q4_K / Q5_K, an fp16 minimum) over 16 or 8 sub-blocks whose own scales are small integers.
// In qcast's format grammar they are the ggml scale rule over 256-blocks (docs/formats.md):
//   q2_k = int2@fp16/b256/asym/ggml   q3_k = int3@fp16/b256/ggml   q4_k = int4@fp16/b256/asym/ggml
//   q5_k = int5@fp16/b256/asym/ggml   q6_k = int6@fp16/b256/ggml
// The quantizers are llama.cpp's reference quantizers (quantize_row_q*_K_ref in ggml-quants.c) rewritten
// from their algorithms, with the same float operations in the same order, so the block bytes are equal bit
// for bit (tests/llamacpp/ggml_ref.cpp calls the real ggml library to check). Compiled without FMA
// contraction for that reason.
//
// A block splits into the per-element levels (the unsigned quant L that ggml packs, 0 .. 2^bits - 1) and
// the rest, called the header here (d, dmin and the packed sub-block scales, in ggml's byte order with the
// quant bytes cut out). qcast's packed layout (encode / decode) stores exactly those two parts.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"
#include "qcast/tensor.hpp"

namespace qcast::kern {

enum class KQuant : std::uint8_t { Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };
inline constexpr int kKBlock = 256;  // QK_K

struct KQuantLayout {
  const char* name;   // ggml's name ("Q4_K")
  int bits;           // bits per level
  int bytes;          // bytes per block of 256
  int quant_at;       // offset of the (contiguous) quant bytes inside the block
  int quant_bytes;    // = 256 * bits / 8
  int sub_block;      // elements per sub-block scale (16 or 32)
  int level_offset;   // value = scale * (L - level_offset) [- min]: 4 (Q3_K), 32 (Q6_K), else 0
  bool with_min;      // an fp16 dmin and per-sub-block minimums (Q2_K, Q4_K, Q5_K)
  int header_bytes() const { return bytes - quant_bytes; }
};
const KQuantLayout& kquant_layout(KQuant t);

/// The k-quant a format is (the ggml rule over 256-blocks), or none.
std::optional<KQuant> kquant_of(const Format& f);

/// The format a row of `row_len` values of k-quant `f` is stored in. A whole number of 256-blocks: `f`.
/// Otherwise llama.cpp's fallback (llama-quant.cpp): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (qcast's
/// q5_0 / q5_1 / q8_0_ggml), and fp16 where the row is not a whole number of 32-blocks either. Q2_K and Q3_K
/// fall back to IQ4_NL in llama.cpp, which qcast does not have: an Error says so.
Format kquant_row_format(const Format& f, std::int64_t row_len);

/// quantize_row_q*_K_ref: `n` values (a multiple of 256) into n / 256 blocks. Throws qcast::Error on a
/// NaN or infinity (ggml's reference quantizers have no meaning for them; llama.cpp refuses such rows).
void kquant_quantize(KQuant t, const float* x, std::uint8_t* blocks, std::int64_t n);
/// dequantize_row_q*_K, bit for bit: n / 256 blocks into `n` values.
void kquant_dequantize(KQuant t, const std::uint8_t* blocks, float* y, std::int64_t n);

/// Each element's representable range in its block: the values of the lowest and highest level under its
/// sub-block's scale and minimum (for `stats`' clipped count).
void kquant_ranges(KQuant t, const std::uint8_t* block, float* lo, float* hi);

/// A block's 256 levels (0 .. 2^bits - 1), and the inverse (writes only the quant bytes).
void kquant_levels(KQuant t, const std::uint8_t* block, std::uint8_t* levels);
void kquant_pack_levels(KQuant t, const std::uint8_t* levels, std::uint8_t* block);

/// encode / decode in qcast's packed layout (docs/packed-layout.md): `codes` holds the levels bit-packed
/// with the element's bits, `scales` each block's header bytes (kquant_layout().header_bytes() per block),
/// num_groups the number of 256-blocks. Rows that are not whole 256-blocks are encoded in their fallback
/// format (kquant_row_format), which the Encoded's `format` then names.
Encoded kquant_encode(const Format& f, const float* in, const Shape& shape, int threads);
void kquant_decode(const Format& f, const Encoded& e, float* out, int threads);
/// The ggml blocks of an Encoded k-quant tensor (its rows one after the other), as a GGUF stores them.
std::vector<std::uint8_t> kquant_blocks(const Encoded& e);

/// fake-quant of a row-major tensor in k-quant `f`: each row (the last axis) quantized and decoded as
/// llama.cpp would store it (kquant_row_format). A super-block holding a NaN or infinity becomes NaN.
/// Rows are split over `threads` threads; the result does not depend on it.
void kquant_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, int threads);

}  // namespace qcast::kern
