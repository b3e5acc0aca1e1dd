// The number-format model: Element (how one value is encoded), Scaling (how values share scales),
// Format = Element + Scaling, with a canonical name and a parser. Pure: no I/O, no threads.
#pragma once
#include <cstddef>
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

  /// Value equality (kind, widths, bias, variant, codebook values); the name is not compared.
  friend bool operator==(const Element& a, const Element& b);
  /// The canonical spelling of this element's value (e4m3, int8, e5m3b11fnuz, cb:...).
  std::string canonical_name() const;

  /// Parses an element name (case-insensitive): fp32 tf32 bf16 fp16 e5m2 e4m3 e3m2 e2m3 e2m1 e8m0 ue4m3, intN, uintN,
  /// eXmY[b<bias>][ieee|fn|fnuz|fin], nf4, binary, ternary, pot<N> (power-of-two grid), cb:v1,v2,...
  static Element parse(std::string_view name);
};

enum class ScaleKind { None, Tensor, Channel, Block, Tile };
/// How a scale is chosen from a group's absolute max (amax):
///  floor  = 2^(floor(log2 amax) - emax_elem)    (OCP MX)
///  ceil   = 2^ceil(log2(amax / max_elem))       (never clips)
///  midmax = floor, raised one binade when amax/scale exceeds the midpoint between max_elem and 2^(emax+1)
///  amax   = amax / max_elem rounded (to nearest) into the scale element
///  mse    = search over candidate scales near `amax` for least squared error
///  rceil  = 2^ceil(log2(fl32(amax / max_elem))): ceil of the float32 quotient, as NVIDIA's cuBLAS MX
///           recipe and torchao's RCEIL compute it (cvt.rp.satfinite.ue8m0x2.f32); differs from ceil
///           where the float division rounds the quotient down onto a power of two
///  ggml   = llama.cpp's reference quantizers (quantize_row_*_ref) of Q8_0, Q4_0, Q5_0 and, with asym (an
///           fp16 block minimum instead of an integer zero point), Q4_1, Q5_1: int8 / int4 / int5@fp16/b32 only
enum class ScaleRule { Floor, Ceil, MidMax, Amax, Mse, RCeil, Ggml };
const char* scale_rule_name(ScaleRule r);



/// The scale of a group of values. Compared by value (`==`).
struct Scaling {
  ScaleKind kind = ScaleKind::None;
  int axis = -1;        // Channel: the channel axis; Block: the axis along which blocks run (-1 = last)
  int block = 0;        // Block size
  int tile_rows = 0, tile_cols = 0;  // Tile: over the last two axes
  Element scale_elem;   // element the scale is stored in
  ScaleRule rule = ScaleRule::Amax;
  bool asym = false;    // asymmetric integers with a zero point (stored as the element's unsigned code; the ggml rule: an fp16 minimum)
  bool tensor_scale = false;  // NVFP4: an extra fp32 per-tensor scale, block scales are relative to it
  bool axis_explicit = false; // axis was named in the format string (so --axis does not override it)
};
bool operator==(const Scaling& a, const Scaling& b);

/// A number format: an immutable value. Built only by `parse` (a name or a composition string) or by
/// `make` (an element and a scaling, validated like a parsed string); its canonical name and hash are
/// computed once at construction. `==` and `hash()` compare the composition, not the spelling: `mxfp4`
/// equals `e2m1@e8m0/b32/floor`.
class Format {
 public:
  /// fp32, elementwise (the identity format).
  Format();
  /// Parses a named format or an alias (table in named_formats(); case-insensitive) or the composition
  /// grammar ELEM[@SCALE[+fp32]][/b<N>|/g<N>|/ch<A>|/t<R>x<C>|/tensor][/ax<A>][/asym][/RULE] with RULE one of
  /// floor, ceil, rceil, midmax, amax, mse (docs/formats.md). Throws qcast::Error naming the offending
  /// part; an unknown name lists the nearest known names.
  static Format parse(std::string_view name);
  /// A format from its parts, checked as parse checks a composition; named by its composition.
  static Format make(Element elem, Scaling scaling);
  /// The same element with another scaling (e.g. a per-tensor view of a block format).
  Format with_scaling(Scaling scaling) const { return make(elem_, std::move(scaling)); }

  const Element& elem() const { return elem_; }
  const Scaling& scaling() const { return scaling_; }
  /// The canonical name: the table's name for a named format or alias, else the composition string.
  const std::string& name() const { return name_; }
  std::string canonical() const { return name_; }
  /// The composition string even for named formats (mxfp4 -> "e2m1@e8m0/b32/floor").
  std::string expanded() const;
  /// Bits per element including scale (and zero-point) overhead, for block/tile/no scaling;
  /// per-channel/tensor overhead depends on the shape and is not included.
  double bits_per_element() const { return bits_per_element_; }
  /// Hash of the composition (consistent with ==).
  std::size_t hash() const { return hash_; }

  friend bool operator==(const Format& a, const Format& b) {
    return a.hash_ == b.hash_ && a.elem_ == b.elem_ && a.scaling_ == b.scaling_;
  }

 private:
  static Format parse_composition(const std::string& lowered);
  void finish(std::string name);
  Element elem_;
  Scaling scaling_;
  std::string name_;
  double bits_per_element_ = 32;
  std::size_t hash_ = 0;
};

/// One row of the named-format table: the single list of named formats that the parser, `qcast
/// formats`, GGUF, the hardware bit widths, study, bench and the generated tests read.
struct NamedFormat {
  std::string name;                  // canonical name
  std::string composition;           // what it means, in the composition grammar (or an element name)
  std::vector<std::string> aliases;  // other accepted names (ml_dtypes, ggml, common short names)
  std::string ggml;                  // ggml tensor type it is stored as in GGUF ("" = none)
  int storage_bits = 0;              // bits a value occupies in memory where that differs (tf32: 32)
  /// fake_quant / encode / decode of a contiguous tensor take the SIMD kernels (asserted by the tests).
  bool fast = false;
  std::string description;
};
/// The table, in a stable order (the order of `qcast formats`).
const std::vector<NamedFormat>& format_table();
/// The row of a name or alias (case-insensitive), or nullptr.
const NamedFormat* find_named_format(std::string_view name);
/// The row whose composition equals `f` (by value), or nullptr.
const NamedFormat* named_row_of(const Format& f);
/// The table's canonical names, in table order.
std::vector<std::string> named_formats();
/// Up to `n` known names and aliases nearest to `name` (edit distance), for "did you mean" messages.
std::vector<std::string> nearest_format_names(std::string_view name, std::size_t n = 3);

}  // namespace qcast
