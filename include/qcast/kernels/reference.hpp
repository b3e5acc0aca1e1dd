// Scalar reference of quantization: group layout, scale selection and per-element rounding.
// SIMD kernels must agree with this bit for bit. Public so the layers above (PTQ, packed files) quantize
// groups exactly as the kernels do.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/format/groups.hpp"
#include "qcast/quantize.hpp"

namespace qcast {
/// Smallest e with 2^e >= r, for r > 0 (exact).
int ceil_log2(double r);
}  // namespace qcast

namespace qcast::ref {

/// Counter-based random number for stochastic rounding: a hash of (seed, flat element index).
inline std::uint32_t counter_rand(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + index * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<std::uint32_t>(z >> 32);
}

/// The scale-group geometry lives in the format layer (qcast/format/groups.hpp).
using GroupLayout = qcast::GroupLayout;


/// The quantization parameters of one group.
struct GroupParams {
  float scale = 1.0f;        // effective scale (for NVFP4: block scale * tensor scale)
  /// What elements are divided by before rounding, where it is not `scale`: the rceil rule's smallest
  /// scale (code 0, 2^-127) leaves the elements unscaled, as torchao's RCEIL does (0 = use `scale`).
  float divisor = 0.0f;
  std::uint32_t scale_code = 0;
  std::int32_t zero = 0;     // asymmetric zero point (in element codes)
  bool nan = false;          // the group held NaN/Inf: every element decodes to NaN
  bool zero_group = false;   // the scale is 0: every element decodes to (signed) zero
  // The ggml rule (llama.cpp's quantize_row_*_ref): codes are rounded with ggml's fp32 1/d and block
  // minimum, values decode with the stored fp16 d (`scale`) and fp16 minimum (`offset`, asym only, whose
  // fp16 code is `zero`).
  bool ggml = false;
  float inv = 0.0f, lo = 0.0f, offset = 0.0f;
};

/// Completes the parameters of a group rebuilt from its stored scale and zero codes (decoding, PTQ
/// re-encoding): for the ggml rule, its 1/d and fp16 minimum. Other rules need nothing more.
void finish_stored_params(const Format& f, GroupParams& p);
/// Bits of one stored zero point: the element's, or 16 for the ggml rule's fp16 block minimum.
int zero_bits(const Format& f);

/// Second-level fp32 tensor scale for formats with `+fp32` (NVFP4): amax / (max_scale_elem * max_elem).
float tensor_scale_for(const Format& f, const float* data, std::int64_t n);
/// The tensor scale for a largest finite |x| of `amax`: amax / (scale format's max x element's max), 1 when
/// that is 0 or not a number, and the largest float when it overflows (a scale format whose range lies far
/// below the data's, e.g. e4m3 with bias 136: the block scales then saturate, in every path alike).
float tensor_scale_from_amax(const Format& f, float amax);

/// Chooses the parameters of a group from its values.
GroupParams group_params(const Format& f, const float* vals, std::size_t n, float tensor_scale, RoundMode mode);

/// Quantizes one element of a group to its dequantized value and its code.
float quantize_value(const Format& f, const GroupParams& p, float x, RoundMode mode, std::uint32_t rnd, Overflow ov,
                     std::uint32_t* code);

/// Decodes one element code with its group's parameters.
float dequantize_code(const Format& f, const GroupParams& p, std::uint32_t code);

}  // namespace qcast::ref
