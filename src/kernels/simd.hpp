// Plain-data descriptions of the fast quantization kernels and their entry points.
//
// fast_path.cpp decides whether a Format maps onto one of these kernels (exactly: anything it cannot
// express bit for bit stays on the scalar reference) and fills a Job; simd_kernels.cpp holds the
// Highway implementation, compiled for every attainable target and chosen at run time.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qcast/format.hpp"

namespace qcast::kern {

enum class ElemKind : int { Mini, Int, Codebook };

/// How decode computes an element's value from its code without a table lookup.
enum class DecodeArith : int {
  None,
  Mini,   // sign | magnitude: normal 2^(e-bias) * 1.m from bits, subnormal float(m) * 2^(1-bias-mbits)
  Shift,  // the code is the top bits of the float (bf16)
  Int,    // float(sign-extended code) * 2^-frac_bits
};

/// One element type as the kernels see it.
struct ElemSpec {
  ElemKind kind = ElemKind::Mini;
  int bits = 8;            // code width
  // Mini (signed minifloat): value = 2^(e-bias) * 1.m, subnormals below 2^emin.
  int ebits = 4, mbits = 3, bias = 7, emin = -6;
  bool has_sub_path = true;  // emin > -126: values below 2^emin use the fixed-point path
  bool ieee = false;         // inf passes through (elementwise), NaN code = nan_code
  bool fn_nan = false;       // fn variant: NaN code = sign | all ones
  bool has_nan = false;
  std::uint32_t nan_code = 0, inf_code = 0;  // ieee: positive NaN / +inf codes
  float maxv = 448.0f;       // largest finite magnitude (saturation)
  // Int (signed): value = code * 2^-frac_bits, -neg_max_code <= code <= max_code. Scaled groups are
  // symmetric (neg_max_code = max_code); an unscaled cast reaches the two's-complement minimum.
  int frac_bits = 0;
  float max_code = 127.0f, neg_max_code = 127.0f;
  // Codebook: sorted values; code = number of thresholds <= x (thresholds depend on the round mode).
  int ncodes = 0;
  std::vector<float> values, thresholds;
  std::uint32_t zero_code = 0;  // el.encode(0)
  double max_value = 0;         // Element::max_value()
  // Code -> value table for decode (bits <= 16).
  std::vector<float> lut;
  // Decode by arithmetic instead of lut (see arith_decode in fast_path.cpp, which checks the formula against
  // lut for every code): a vector whose codes all have (code & (2^(bits-1) - 1)) < dec_special and none
  // equal to dec_extra takes the formula, any other vector the table.
  DecodeArith dec = DecodeArith::None;
  std::uint32_t dec_special = 0, dec_extra = 0xffffffffu;
};

enum class ScaleMode : int { None, MxFloor, Amax };

struct ScaleSpec {
  ScaleMode mode = ScaleMode::None;
  int emax = 0;              // MxFloor: emax of the element
  // MxFloor with the rceil rule: e = ceil(log2(fl32(amax / mx_elmax))) instead of floor(log2 amax) - emax;
  // a scale code of 0 leaves the elements unscaled (inv = 1), as the reference does.
  bool rceil = false;
  float mx_elmax = 0;
  bool asym = false;
  double qrange = 0;         // asym: 2^bits - 1
  bool tensor_scale = false; // NVFP4 second level
  // Amax: the scale element: fp32 (is_fp32), or a minifloat (fp16 / bf16 / ue4m3) rounded to nearest even.
  bool is_fp32 = true;
  int s_mbits = 0, s_bias = 0, s_emin = 0, s_bits = 32;
  bool s_has_sub = false, s_signed = true;
  float s_maxv = 0;
  float s_sub_thr = 0, s_up = 1, s_down = 1;  // 2^emin, 2^(mbits - emin), 2^(emin - mbits)
  bool amax_div_exact = false;  // float(amax / max_elem) equals the reference's double division rounded to float
  ElemSpec sel;                // the scale element as a minifloat (Amax, !is_fp32)
  std::uint32_t nan_code = 0;  // scale code of a NaN/Inf group (scale_elem.encode(NaN))
  std::vector<float> s_lut;  // scale code -> value (<= 16-bit scale elements), for decode
};

/// Per-group parameters as the kernels use them (the fast equivalent of ref::GroupParams).
struct GroupP {
  float scale = 1.0f, inv = 1.0f;
  bool pow2 = false;  // multiply by inv instead of dividing by scale (exact for powers of two)
  bool nan = false, zero_group = false;
  float zero = 0;     // asym zero point
  std::uint32_t scale_code = 0, zero_code = 0;
};

/// Scale of a group under an amax rule, mirroring ref::group_params (fast_path.cpp).
void amax_params(const ScaleSpec& sc, const ElemSpec& el, float amax, float lo, float hi, float ts, GroupP& p);

/// A run of contiguous groups: group g covers elements [row*len + b*block, + min(block, len - b*block))
/// with row = g / gpr, b = g % gpr.
struct Job {
  const ElemSpec* el = nullptr;
  const ScaleSpec* sc = nullptr;
  RoundMode mode = RoundMode::Even;
  std::int64_t len = 0, block = 0, gpr = 1;
  float tensor_scale = 1.0f;
  const float* in = nullptr;       // element i is in[i - in_base]
  std::int64_t in_base = 0;        // first element index of `in` (streaming: a window of the input)
  float* out = nullptr;            // fake-quant / decode output: element i goes to out[i - out_base]
  std::int64_t out_base = 0;       // first element index of `out` (streaming: a window of the output)
  bool stream_out = false;         // `out` is large: non-temporal stores for its aligned full vectors
  std::uint8_t* codes = nullptr;   // encode: packed bitstream (zero-initialised); decode: input
  std::int64_t code_bytes = 0;     // decode: bytes of `codes` (vector loads past the last code stay inside)
  std::uint8_t* scales = nullptr;  // scale codes, s_bits / 8 bytes each (little-endian)
  std::uint32_t* zeros = nullptr;  // asym zero points, one per group
  int* saw_nan = nullptr;          // set (racy but monotone) when elementwise encode meets NaN
  // Largest |x| bits of every group, stored by groups_absmax in the tensor-scale pass (plus
  // kGroupMaximaSlack slots); null: the kernels find them themselves.
  const std::uint32_t* group_umax = nullptr;
};

/// Fake-quant (job.out) and/or encode (job.codes) groups [g0, g1).
void quant_groups(const Job& job, std::int64_t g0, std::int64_t g1);
/// Decode groups [g0, g1) from job.codes / job.scales / job.zeros into job.out.
void decode_groups(const Job& job, std::int64_t g0, std::int64_t g1);
/// max |x| over the finite values of x[0, n).
float finite_absmax(const float* x, std::int64_t n);
/// Whether groups_absmax covers the job (its fixed-block kernel does, on the dispatch target).
bool group_maxima_cover(const Job& job);
/// max |x| over the finite values of groups [g0, g1) (contiguous, job.in), storing each group's largest
/// |x| bits (NaN / Inf included) at umax[g] for Job::group_umax. Only where group_maxima_cover(job).
float groups_absmax(const Job& job, std::int64_t g0, std::int64_t g1, std::uint32_t* umax);
/// Slots past the last group that Job::group_umax must have (the kernels read whole vectors of it).
constexpr std::int64_t kGroupMaximaSlack = 64;

/// Packs n codes (< 2^bits) at element offset `start` of a zero-initialised LSB-first bitstream.
/// Bytes shared with neighbouring ranges are OR-ed atomically, so disjoint ranges may be packed
/// concurrently.
void pack_codes(std::uint8_t* bytes, std::int64_t start, std::int64_t n, int bits, const std::uint16_t* codes);
/// Reads n codes starting at element offset `start`.
void unpack_codes(const std::uint8_t* bytes, std::int64_t start, std::int64_t n, int bits, std::uint16_t* codes);

/// Dispatch-target control, for tests and benchmarks.
std::vector<std::int64_t> available_targets();  // compiled here and supported by this CPU, best first
std::string target_name(std::int64_t target);
void force_target(std::int64_t target);         // 0 = back to the best supported target
std::string current_target();

}  // namespace qcast::kern
