// The number-format model: Element (how one value is encoded), Scaling (how values share scales),
// Format = Element + Scaling, with a canonical name and a parser. Pure: no I/O, no threads.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qcast {

/// How a real value is rounded onto a grid. `stochastic` rounds up with probability equal to the
/// fractional distance; its random numbers are a hash of (seed, element index), so results do not
/// depend on thread count or chunking.
enum class RoundMode { Even, Away, Zero, Floor, Ceil, Stochastic };
RoundMode parse_round_mode(std::string_view s);  // "even" | "away" | "zero" | "floor" | "ceil" | "stochastic"
std::string round_mode_name(RoundMode m);

/// What happens to finite values beyond the largest finite element value.
enum class Overflow { Saturate, Inf };  // Inf: to +-inf (ieee) or NaN (fn/fnuz) where representable

/// Float variants: ieee (inf + NaN in the all-ones exponent), fn (no inf; NaN = all-ones code, OCP E4M3),
/// fnuz (no inf, no -0; NaN = 0x80 pattern i.e. sign bit alone), finite (every code a number: OCP FP6/FP4),
/// e8m0 (unsigned power of two; all-ones = NaN; used for MX scales), ufn (unsigned fn: UE4M3 NVFP4 scales).
enum class FloatVariant { Ieee, Fn, Fnuz, Finite, E8m0, Ufn };

struct Element {
  enum class Kind { Int, Float, Codebook };
  Kind kind = Kind::Float;
  int bits = 32;          // storage bits per code
  // Int: two's complement (is_signed) or unsigned; value = code * 2^-frac_bits (MXINT8 uses frac_bits 6).
  bool is_signed = true;
  int frac_bits = 0;
  // Float: sign (unless unsigned variant) + ebits exponent + mbits mantissa; value = 2^(e-bias) * 1.m.
  int ebits = 8, mbits = 23, bias = 127;
  FloatVariant variant = FloatVariant::Ieee;
  // Codebook: sorted distinct values; code = index.
  std::vector<float> values;
  std::string name;       // canonical name (e.g. "e4m3", "int4", "nf4")

  /// Largest finite value (for ints: the symmetric max, 2^(bits-1)-1 scaled by frac_bits).
  double max_value() const;
  /// Smallest positive value (subnormal for floats; one step for ints).
  double min_positive() const;
  /// floor(log2(max_value())) — the exponent OCP MX subtracts when it picks a shared scale.
  int emax() const;
  bool has_nan() const;
  bool has_inf() const;
  bool is_unsigned() const;
  /// Number of distinct codes (2^bits, or the codebook size).
  std::uint32_t num_codes() const;

  /// Value -> nearest code under `mode` (with saturation unless overflow == Inf). `rnd` is a uniform
  /// 32-bit random number, used only by stochastic rounding. NaN maps to the NaN code; throws
  /// qcast::Error if the element cannot represent NaN.
  std::uint32_t encode(float x, RoundMode mode = RoundMode::Even, std::uint32_t rnd = 0,
                       Overflow ov = Overflow::Saturate) const;
  /// Code -> value (exact). Codes >= num_codes() are invalid (assertion).
  float decode(std::uint32_t code) const;
  /// decode(encode(x)) computed directly in the value domain (same result, faster, no NaN error).
  float quantize(float x, RoundMode mode = RoundMode::Even, std::uint32_t rnd = 0,
                 Overflow ov = Overflow::Saturate) const;

  /// Parses an element name: fp32 tf32 bf16 fp16 e5m2 e4m3 e3m2 e2m3 e2m1 e8m0 ue4m3, intN, uintN,
  /// eXmY[fn|fnuz|fin], nf4, fp4tab, binary, ternary, pot<N> (power-of-two grid), cb:v1,v2,...
  static Element parse(std::string_view name);
};

enum class ScaleKind { None, Tensor, Channel, Block, Tile };
/// How a scale is chosen from a group's absolute max (amax):
///  floor  = 2^(floor(log2 amax) - emax_elem)    (OCP MX)
///  ceil   = 2^ceil(log2(amax / max_elem))       (never clips)
///  midmax = floor, raised one binade when amax/scale exceeds the midpoint between max_elem and 2^(emax+1)
///  amax   = amax / max_elem rounded (to nearest) into the scale element
///  mse    = search over candidate scales near `amax` for least squared error
enum class ScaleRule { Floor, Ceil, MidMax, Amax, Mse };

struct Scaling {
  ScaleKind kind = ScaleKind::None;
  int axis = -1;        // Channel: the channel axis; Block: the axis along which blocks run (-1 = last)
  int block = 0;        // Block size
  int tile_rows = 0, tile_cols = 0;  // Tile: over the last two axes
  Element scale_elem;   // element the scale is stored in
  ScaleRule rule = ScaleRule::Amax;
  bool asym = false;    // asymmetric integers with a zero point (stored as the element's unsigned code)
  bool tensor_scale = false;  // NVFP4: an extra fp32 per-tensor scale, block scales are relative to it
  bool axis_explicit = false; // axis was named in the format string (so --axis does not override it)
};

struct Format {
  Element elem;
  Scaling scaling;
  std::string name;  // canonical name

  /// Bits per element including scale (and zero-point) overhead, for block/tile/no scaling;
  /// per-channel/tensor overhead depends on the shape and is not included.
  double bits_per_element() const;
  /// Parses a named format (see docs/formats.md) or the composition grammar
  /// ELEM[@SCALE[+fp32]][/b<N>|/g<N>|/ch<A>|/t<R>x<C>|/tensor][/ax<A>][/asym][/floor|/ceil|/midmax|/amax|/mse].
  /// Throws qcast::Error naming the offending part.
  static Format parse(std::string_view name);
  /// Canonical composition string (parse(canonical()) == *this).
  std::string canonical() const;
  /// The composition string even for named formats (mxfp4 -> "e2m1@e8m0/b32/floor").
  std::string expanded() const;
};

/// The named formats listed by `qcast formats`, in a stable order.
const std::vector<std::string>& named_formats();

}  // namespace qcast
