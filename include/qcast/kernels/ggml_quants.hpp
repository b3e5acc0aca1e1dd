// llama.cpp's quantizers that search for their scales, as qcast formats of the ggml scale rule
// (docs/formats.md). The 32-block types with one scale found in closed form (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1)
// are the ggml rule's group parameters in kernels/reference.cpp; these are the others:
//  - the k-quants (Q2_K .. Q6_K): super-blocks of 256 values with an fp16 scale (and, for Q2_K / Q4_K /
//    Q5_K, an fp16 minimum) over 16 or 8 sub-blocks whose own scales are small integers:
//      q2_k = int2@fp16/b256/asym/ggml   q3_k = int3@fp16/b256/ggml   q4_k = int4@fp16/b256/asym/ggml
//      q5_k = int5@fp16/b256/asym/ggml   q6_k = int6@fp16/b256/ggml
//  - IQ4_NL: 32-blocks of a 16-value non-linear codebook under an fp16 scale found by a 15-step search:
//      iq4_nl = cb:-127,-104,-83,-65,-49,-35,-22,-10,1,13,25,38,53,69,89,113@fp16/b32/ggml
//  - MXFP4 as llama.cpp writes it (mxfp4_ggml = e2m1@e8m0/b32/ggml): OCP's floor scale, but each value takes
//    the first of ggml's 16 codes with the least error, so ties round toward zero (OCP: to even) and -0 is
//    never written. Not a search, but not qcast's rounding either.
//  - NVFP4 as upstream ggml defines it (nvfp4_ggml = e2m1@ue4m3/b16/ggml): a UE4M3 scale per 16 (amax / 6,
//    rounded half up by ggml's own converter) and no fp32 tensor scale, stored in blocks of 64 (four scales).
//    qcast's `nvfp4` (NVIDIA's, with the tensor scale) has no ggml type.
// The quantizers are llama.cpp's (quantize_row_q*_K_ref, and quantize_iq4_nl as llama-quantize runs it, in
// ggml-quants.c), rewritten from their algorithms with the same float operations in the same order, so the
// block bytes are equal bit for bit (tests/llamacpp/ggml_ref.cpp calls the real ggml library to check).
// Compiled without FMA contraction for that reason.
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

enum class GgmlQuant : std::uint8_t { Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, MXFP4, NVFP4 };
inline constexpr int kSuperBlock = 256;  // QK_K, the k-quants' block; the largest block of these types

struct GgmlQuantLayout {
  const char* name;   // ggml's name ("Q4_K")
  int block;          // values per block (256, IQ4_NL 32)
  int bits;           // bits per level
  int bytes;          // bytes per block
  int quant_at;       // offset of the (contiguous) quant bytes inside the block
  int quant_bytes;    // = block * bits / 8
  int sub_block;      // elements per sub-block scale (16 or 32)
  int level_offset;   // value = scale * (L - level_offset) [- min]: 4 (Q3_K), 32 (Q6_K), else 0 (IQ4_NL: scale * codebook[L])
  bool with_min;      // an fp16 dmin and per-sub-block minimums (Q2_K, Q4_K, Q5_K)
  int header_bytes() const { return bytes - quant_bytes; }
};
const GgmlQuantLayout& ggml_quant_layout(GgmlQuant t);

/// IQ4_NL's codebook (ggml's kvalues_iq4nl), in increasing order.
extern const std::int8_t kIq4nlValues[16];
/// ggml's kvalues_mxfp4 (MXFP4, NVFP4): the e2m1 values doubled so that they are integers, by code (the
/// scale is halved to match).
extern const std::int8_t kMxfp4Values[16];

/// Which of these types a format is, or none.
std::optional<GgmlQuant> ggml_quant_of(const Format& f);

/// The format a row of `row_len` values of `f` is stored in. A whole number of blocks: `f`. Otherwise
/// llama.cpp's fallback (llama-quant.cpp): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K / Q3_K -> IQ4_NL
/// (qcast's q5_0 / q5_1 / q8_0_ggml / iq4_nl), and fp16 (F16) where the row is not a whole number of
/// 32-blocks either (for IQ4_NL itself too).
Format ggml_quant_row_format(const Format& f, std::int64_t row_len);

/// llama.cpp's quantizer: `n` values (whole blocks) into n / block blocks. Throws qcast::Error on a NaN or
/// infinity (ggml's quantizers have no meaning for them; llama.cpp refuses such rows).
/// With `importance` (n non-negative weights, one per value: an importance matrix's column means of x^2),
/// llama.cpp's importance-weighted quantizer (quantize_q*_K / quantize_iq4_nl with an imatrix); MXFP4 has none
/// and ignores it.
void ggml_quant_quantize(GgmlQuant t, const float* x, std::uint8_t* blocks, std::int64_t n, const float* importance = nullptr);
/// ggml's dequantize_row_*, bit for bit: n / block blocks into `n` values.
void ggml_quant_dequantize(GgmlQuant t, const std::uint8_t* blocks, float* y, std::int64_t n);

/// Each element's representable range in its block: the values of the lowest and highest level under its
/// sub-block's scale and minimum (for `stats`' clipped count).
void ggml_quant_ranges(GgmlQuant t, const std::uint8_t* block, float* lo, float* hi);

/// Each sub-block's scale and subtracted minimum as ggml's decoder computes them (value = dl * (L - offset)
/// - ml; IQ4_NL, MXFP4, NVFP4: dl * codebook value, ml = 0): block / sub_block entries each.
void ggml_quant_sub_scales(GgmlQuant t, const std::uint8_t* block, float* dl, float* ml);

/// A block's levels (0 .. 2^bits - 1), and the inverse (writes only the quant bytes).
void ggml_quant_levels(GgmlQuant t, const std::uint8_t* block, std::uint8_t* levels);
void ggml_quant_pack_levels(GgmlQuant t, const std::uint8_t* levels, std::uint8_t* block);

/// encode / decode in qcast's packed layout (docs/packed-layout.md): `codes` holds the levels bit-packed
/// with the element's bits, `scales` each block's header bytes (ggml_quant_layout().header_bytes() per block),
/// num_groups the number of blocks. Rows that are not whole blocks are encoded in their fallback format
/// (ggml_quant_row_format), which the Encoded's `format` then names.
/// `importance`: one weight per column (shape.back() values), or null.
Encoded ggml_quant_encode(const Format& f, const float* in, const Shape& shape, int threads, const float* importance = nullptr);
void ggml_quant_decode(const Format& f, const Encoded& e, float* out, int threads);
/// llama.cpp's importance-weighted quantizers of the 32-block types Q4_0, Q4_1, Q5_0, Q5_1 (q4_0_ggml, q4_1,
/// q5_0, q5_1; quantize_row_q4_0_impl .. q5_1_impl): a weighted search where the unweighted quantizers are
/// closed-form. `importance`: one weight per column. Rows must be whole 32-blocks.
Encoded ggml_legacy_encode_weighted(const Format& f, const float* in, const Shape& shape, int threads, const float* importance);
/// Whether `f` is one of those four.
bool ggml_legacy_has_importance(const Format& f);

/// The Encoded tensor of `shape` whose blocks (whole blocks of `f` along every row) are `blocks`: the inverse
/// of ggml_quant_blocks. Throws when the shape's rows are not whole blocks of `f`.
Encoded ggml_quant_encoded(const Format& f, const Shape& shape, const std::uint8_t* blocks);
/// The ggml blocks of an Encoded k-quant tensor (its rows one after the other), as a GGUF stores them.
std::vector<std::uint8_t> ggml_quant_blocks(const Encoded& e);

/// fake-quant of a row-major tensor in format `f`: each row (the last axis) quantized and decoded as
/// llama.cpp would store it (ggml_quant_row_format). A block holding a NaN or infinity becomes NaN.
/// Rows are split over `threads` threads; the result does not depend on it.
void ggml_quant_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, int threads,
                           const float* importance = nullptr);

}  // namespace qcast::kern
