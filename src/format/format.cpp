// Parsing and naming of elements and formats (the grammar of docs/formats.md).
#include <algorithm>
#include <limits>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>

#include "qcast/error.hpp"
#include "format/text.hpp"
#include "qcast/format.hpp"

namespace qcast {

namespace {

// NF4 (Dettmers et al., QLoRA 2023): quantiles of N(0,1) normalised to [-1, 1], with an exact zero.
const std::vector<float> kNF4 = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                                 -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                                 0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                                 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                                 0.7229568362236023f, 1.0f};

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

Element make_float(int ebits, int mbits, int bias, FloatVariant v, int bits, std::string name) {
  Element e;
  e.kind = Element::Kind::Float;
  e.ebits = ebits;
  e.mbits = mbits;
  e.bias = bias;
  e.variant = v;
  e.bits = bits;
  e.name = std::move(name);
  return e;
}

Element make_codebook(std::vector<float> values, std::string name) {
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  if (values.size() < 2) throw Error("codebook '" + name + "' needs at least two distinct values");
  if (values.size() > 65536) throw Error("codebook '" + name + "' has more than 65536 values");
  Element e;
  e.kind = Element::Kind::Codebook;
  e.values = std::move(values);
  e.bits = 1;
  while ((std::size_t{1} << e.bits) < e.values.size()) ++e.bits;
  e.name = std::move(name);
  return e;
}

int ceil_log2_exact(double r) {  // smallest e with 2^e >= r (r > 0)
  int e;
  double m = std::frexp(r, &e);  // r = m * 2^e, m in [0.5, 1)
  return m == 0.5 ? e - 1 : e;
}

std::string nearest_hint(std::string_view name) {
  const auto near = nearest_format_names(name);
  if (near.empty()) return "see `qcast formats`";
  std::string s = "did you mean ";
  for (std::size_t i = 0; i < near.size(); ++i) s += (i ? (i + 1 == near.size() ? " or " : ", ") : "") + near[i];
  return s + "? (see `qcast formats`)";
}

struct RuleName {
  ScaleRule rule;
  const char* name;
};
constexpr RuleName kRules[] = {{ScaleRule::Floor, "floor"}, {ScaleRule::Ceil, "ceil"}, {ScaleRule::RCeil, "rceil"},
                               {ScaleRule::MidMax, "midmax"}, {ScaleRule::Amax, "amax"}, {ScaleRule::Mse, "mse"},
                               {ScaleRule::Ggml, "ggml"}};

// The elements with a name of their own, in the order canonical_name() prefers them.
const std::vector<std::pair<std::string, Element>>& named_elements() {
  static const std::vector<std::pair<std::string, Element>> v = [] {
    std::vector<std::pair<std::string, Element>> r;
    for (const char* n : {"fp32", "tf32", "bf16", "fp16", "e5m2", "e4m3", "e3m2", "e2m3", "e2m1", "e8m0", "ue4m3", "nf4",
                          "binary", "ternary"})
      r.emplace_back(n, Element::parse(n));
    return r;
  }();
  return v;
}

std::string fmt_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

}  // namespace

const char* scale_rule_name(ScaleRule r) {
  for (const auto& k : kRules)
    if (k.rule == r) return k.name;
  return "?";
}

bool operator==(const Element& a, const Element& b) {
  if (a.kind != b.kind || a.bits != b.bits) return false;
  switch (a.kind) {
    case Element::Kind::Int: return a.is_signed == b.is_signed && a.frac_bits == b.frac_bits;
    case Element::Kind::Float: return a.ebits == b.ebits && a.mbits == b.mbits && a.bias == b.bias && a.variant == b.variant;
    case Element::Kind::Codebook: return a.values == b.values;
  }
  return false;
}

bool operator==(const Scaling& a, const Scaling& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == ScaleKind::None) return true;  // nothing else of an unscaled format has a meaning
  return a.axis == b.axis && a.block == b.block && a.tile_rows == b.tile_rows && a.tile_cols == b.tile_cols &&
         a.scale_elem == b.scale_elem && a.rule == b.rule && a.asym == b.asym && a.tensor_scale == b.tensor_scale &&
         a.axis_explicit == b.axis_explicit;
}

std::string Element::canonical_name() const {
  for (const auto& [n, e] : named_elements())
    if (e == *this) return n;
  switch (kind) {
    case Kind::Int: {
      std::string s = (is_signed ? "int" : "uint") + std::to_string(bits);
      if (frac_bits) s += "f" + std::to_string(frac_bits);
      return s;
    }
    case Kind::Float: {
      // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "e" + std::to_string(...).
      std::string s = "e";
      s += std::to_string(ebits);
      s += 'm';
      s += std::to_string(mbits);
      const int def_bias = (1 << (ebits - 1)) - 1 + (variant == FloatVariant::Fnuz ? 1 : 0);
      if (bias != def_bias) s += "b" + std::to_string(bias);
      switch (variant) {
        case FloatVariant::Ieee: {
          // Named elements (e4m3 = OCP fn, e2m1 = OCP finite) take the plain spelling.
          const std::string plain = s;
          bool taken = false;
          for (const auto& [n, e] : named_elements()) taken = taken || n == plain;
          return taken ? s + "ieee" : s;
        }
        case FloatVariant::Fn: return s + "fn";
        case FloatVariant::Fnuz: return s + "fnuz";
        case FloatVariant::Finite: return s + "fin";
        case FloatVariant::E8m0: return s + "e8m0";
        case FloatVariant::Ufn: return "u" + s;
      }
      return s;
    }
    case Kind::Codebook: {
      std::string s = "cb:";
      for (std::size_t i = 0; i < values.size(); ++i) s += (i ? "," : "") + fmt_float(values[i]);
      return s;
    }
  }
  return "?";
}

int ceil_log2(double r) { return ceil_log2_exact(r); }

RoundMode parse_round_mode(std::string_view s) {
  if (s == "even" || s == "nearest_even" || s == "rne") return RoundMode::Even;
  if (s == "away" || s == "nearest") return RoundMode::Away;
  if (s == "zero" || s == "trunc") return RoundMode::Zero;
  if (s == "floor" || s == "down") return RoundMode::Floor;
  if (s == "ceil" || s == "up") return RoundMode::Ceil;
  if (s == "stochastic" || s == "sr") return RoundMode::Stochastic;
  throw Error("unknown rounding mode '" + std::string(s) + "' (even, away, zero, floor, ceil, stochastic)");
}

std::string round_mode_name(RoundMode m) {
  switch (m) {
    case RoundMode::Even: return "even";
    case RoundMode::Away: return "away";
    case RoundMode::Zero: return "zero";
    case RoundMode::Floor: return "floor";
    case RoundMode::Ceil: return "ceil";
    case RoundMode::Stochastic: return "stochastic";
  }
  return "?";
}

Element Element::parse(std::string_view text) {
  const std::string name = detail::ascii_lower(text);
  const std::string_view n = name;
  if (n == "fp32") return make_float(8, 23, 127, FloatVariant::Ieee, 32, name);
  if (n == "tf32") return make_float(8, 10, 127, FloatVariant::Ieee, 19, name);
  if (n == "bf16") return make_float(8, 7, 127, FloatVariant::Ieee, 16, name);
  if (n == "fp16") return make_float(5, 10, 15, FloatVariant::Ieee, 16, name);
  if (n == "e5m2") return make_float(5, 2, 15, FloatVariant::Ieee, 8, name);
  if (n == "e4m3") return make_float(4, 3, 7, FloatVariant::Fn, 8, name);
  if (n == "e3m2") return make_float(3, 2, 3, FloatVariant::Finite, 6, name);
  if (n == "e2m3") return make_float(2, 3, 1, FloatVariant::Finite, 6, name);
  if (n == "e2m1") return make_float(2, 1, 1, FloatVariant::Finite, 4, name);
  if (n == "e8m0") return make_float(8, 0, 127, FloatVariant::E8m0, 8, name);
  if (n == "ue4m3") return make_float(4, 3, 7, FloatVariant::Ufn, 8, name);
  if (n == "nf4") return make_codebook(kNF4, name);
  if (n == "binary") return make_codebook({-1.0f, 1.0f}, name);
  if (n == "ternary") return make_codebook({-1.0f, 0.0f, 1.0f}, name);
  if (starts_with(n, "pot")) {
    int b;
    if (!parse_int(n.substr(3), b) || b < 2 || b > 8) throw Error("bad power-of-two grid '" + name + "' (pot2..pot8)");
    std::vector<float> v{0.0f};
    for (int k = 0; k <= (1 << (b - 1)) - 2; ++k) {
      v.push_back(std::ldexp(1.0f, -k));
      v.push_back(-std::ldexp(1.0f, -k));
    }
    return make_codebook(v, name);
  }
  if (starts_with(n, "cb:")) {
    std::vector<float> v;
    std::string_view rest = n.substr(3);
    while (!rest.empty()) {
      auto comma = rest.find(',');
      std::string tok(rest.substr(0, comma));
      char* end = nullptr;
      float f = std::strtof(tok.c_str(), &end);
      if (tok.empty() || end != tok.c_str() + tok.size() || !std::isfinite(f))
        throw Error("bad codebook value '" + tok + "' in '" + name + "'");
      v.push_back(f);
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    return make_codebook(v, name);
  }
  if (starts_with(n, "int") || starts_with(n, "uint")) {
    const bool is_u = n[0] == 'u';
    std::string_view rest = n.substr(is_u ? 4 : 3);
    int frac = 0;
    auto f = rest.find('f');
    if (f != std::string_view::npos) {
      if (!parse_int(rest.substr(f + 1), frac) || frac < 0 || frac > 30) throw Error("bad fraction bits in '" + name + "'");
      rest = rest.substr(0, f);
    }
    int b;
    if (!parse_int(rest, b) || b < 2 || b > 16) throw Error("bad integer element '" + name + "' (int2..int16, uint2..uint16)");
    Element e;
    e.kind = Kind::Int;
    e.bits = b;
    e.is_signed = !is_u;
    e.frac_bits = frac;
    e.name = name;
    return e;
  }
  if (n.size() >= 4 && n[0] == 'e') {
    auto m = n.find('m');
    if (m != std::string_view::npos) {
      int eb, mb;
      std::string_view mpart = n.substr(m + 1);
      std::size_t digits = 0;
      while (digits < mpart.size() && std::isdigit(static_cast<unsigned char>(mpart[digits]))) ++digits;
      std::string_view suffix = mpart.substr(digits);
      if (parse_int(n.substr(1, m - 1), eb) && parse_int(mpart.substr(0, digits), mb)) {
        if (eb < 1 || eb > 8 || mb < 0 || mb > 23) throw Error("minifloat '" + name + "' out of range (e1..e8, m0..m23)");
        int bias = (1 << (eb - 1)) - 1;
        // An explicit bias: eXmYb<N> (ml_dtypes' float8_e4m3b11fnuz is e4m3b11fnuz).
        std::optional<int> bias_given;
        if (!suffix.empty() && suffix[0] == 'b') {
          std::size_t d = 1;
          while (d < suffix.size() && std::isdigit(static_cast<unsigned char>(suffix[d]))) ++d;
          int b = 0;
          if (!parse_int(suffix.substr(1, d - 1), b) || b < 0 || b > 255)
            throw Error("bad exponent bias in minifloat '" + name + "' (b0..b255)");
          bias_given = b;
          bias = b;
          suffix = suffix.substr(d);
        }
        // qcast computes in float32: every value of the element must be one, down to its smallest subnormal
        // (found by the format-name fuzzer: e6m2b212's values all lie below 2^-149, and encode / decode
        // and fake-quant disagreed on them).
        auto in_fp32 = [&](Element e) {
          if (1 - e.bias - e.mbits < -149)
            throw Error("minifloat '" + name + "' has values below float32's smallest (2^-149), which qcast computes in: bias + mantissa bits must be at most 150");
          if (!(e.max_value() <= static_cast<double>(std::numeric_limits<float>::max())))
            throw Error("minifloat '" + name + "' has values beyond float32's largest, which qcast computes in (a larger bias brings them in)");
          return e;
        };
        if (suffix.empty() || suffix == "ieee") {
          // A 1-bit IEEE exponent: its all-ones field is inf/NaN, so every finite value would be subnormal.
          if (eb < 2) throw Error("minifloat '" + name + "' has no finite normal values (IEEE needs 2+ exponent bits)");
          return in_fp32(make_float(eb, mb, bias, FloatVariant::Ieee, 1 + eb + mb, name));
        }
        if (suffix == "fn") {
          // e1m0fn: its only non-zero code (S.1) is the NaN.
          if (eb == 1 && mb == 0) throw Error("minifloat '" + name + "' has no finite non-zero values");
          return in_fp32(make_float(eb, mb, bias, FloatVariant::Fn, 1 + eb + mb, name));
        }
        if (suffix == "fnuz") return in_fp32(make_float(eb, mb, bias_given ? bias : bias + 1, FloatVariant::Fnuz, 1 + eb + mb, name));
        if (suffix == "fin") return in_fp32(make_float(eb, mb, bias, FloatVariant::Finite, 1 + eb + mb, name));
        throw Error("unknown minifloat variant '" + std::string(suffix) + "' in '" + name + "' (ieee, fn, fnuz, fin)");
      }
    }
  }
  throw Error("unknown element '" + name + "' (" + nearest_hint(name) + ")");
}

Format::Format() : elem_(Element::parse("fp32")) {
  scaling_.scale_elem = elem_;
  finish("");
}

namespace {

// The checks a composition must pass, whether it was parsed or built from parts.
void validate(const Element& elem, const Scaling& s, bool rule_given, const std::string& full) {
  if (s.kind == ScaleKind::None && (s.asym || rule_given || s.axis_explicit))
    throw Error("'" + full + "' has scaling options but no scale (add @fp32 or a /b, /ch, /t part)");
  if (s.asym && elem.kind != Element::Kind::Int)
    throw Error("asymmetric (zero point) scaling needs an integer element in '" + full + "'");
  if (s.tensor_scale && s.kind == ScaleKind::None) throw Error("'+fp32' needs a scaled format in '" + full + "'");
  if (s.kind == ScaleKind::None) return;
  if (s.scale_elem.kind != Element::Kind::Float)
    throw Error("scale element must be a float (fp32, fp16, bf16, e8m0, ue4m3) in '" + full + "'");
  // A tensor or tile scale has no axis to pick: '/ax<A>' there would be dropped from the name, and the
  // format would not re-parse from its own name.
  if (s.axis_explicit && (s.kind == ScaleKind::Tensor || s.kind == ScaleKind::Tile))
    throw Error("'/ax<A>' picks the axis of a block scale (/b<N>, /g<N>); '" + full + "' has a " +
                (s.kind == ScaleKind::Tensor ? "per-tensor" : "tile") + " scale");
  if (s.kind == ScaleKind::Block && s.block <= 0) throw Error("block size must be positive in '" + full + "'");
  if (s.kind == ScaleKind::Tile && (s.tile_rows <= 0 || s.tile_cols <= 0))
    throw Error("tile sides must be positive in '" + full + "'");
  if (s.rule == ScaleRule::RCeil && s.scale_elem.variant != FloatVariant::E8m0)
    throw Error("the rceil scale rule rounds up to a power of two and needs an e8m0 scale in '" + full + "'");
  if (s.rule == ScaleRule::Ggml) {
    // llama.cpp's reference quantizers (quantize_row_*_ref) of the 32-blocks with an fp16 scale: Q8_0
    // (int8), Q4_0 / Q5_0 (int4 / int5), Q4_1 / Q5_1 (int4 / int5 with /asym: an fp16 block minimum); and of
    // the k-quants' 256-blocks: Q3_K / Q6_K (int3 / int6), Q2_K / Q4_K / Q5_K (int2 / int4 / int5 with /asym:
    // fp16 d and dmin over sub-block scales and minimums).
    const bool base = s.kind == ScaleKind::Block && !s.tensor_scale && s.scale_elem == Element::parse("fp16") &&
                      elem.kind == Element::Kind::Int && elem.is_signed && elem.frac_bits == 0;
    const bool b32 = s.block == 32 && (elem.bits == 4 || elem.bits == 5 || (elem.bits == 8 && !s.asym));
    const bool b256 = s.block == 256 && !s.axis_explicit && (s.asym ? (elem.bits == 2 || elem.bits == 4 || elem.bits == 5) : (elem.bits == 3 || elem.bits == 6));
    // IQ4_NL: ggml's 16-value non-linear codebook (kvalues_iq4nl) under an fp16 scale per 32.
    static const std::vector<float> kIq4nl = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    const bool iq4nl = s.kind == ScaleKind::Block && s.block == 32 && !s.tensor_scale && !s.asym && s.scale_elem == Element::parse("fp16") &&
                       elem.kind == Element::Kind::Codebook && elem.values == kIq4nl;
    if (iq4nl) return;
    // MXFP4 as llama.cpp writes it (ties toward zero, no -0).
    const bool mxfp4 = s.kind == ScaleKind::Block && s.block == 32 && !s.tensor_scale && !s.asym && s.scale_elem == Element::parse("e8m0") &&
                       elem == Element::parse("e2m1");
    if (mxfp4) return;
    // NVFP4 as upstream ggml defines it: a UE4M3 scale per 16, no fp32 tensor scale.
    const bool nvfp4 = s.kind == ScaleKind::Block && s.block == 16 && !s.tensor_scale && !s.asym && s.scale_elem == Element::parse("ue4m3") &&
                       elem == Element::parse("e2m1");
    if (nvfp4) return;
    if (!base || !(b32 || b256))
      throw Error("the ggml scale rule is llama.cpp's quantizer of Q8_0, Q4_0, Q5_0 (int8 / int4 / int5@fp16/b32/ggml), Q4_1, "
                  "Q5_1 (int4 / int5@fp16/b32/asym/ggml) and the k-quants Q3_K, Q6_K (int3 / int6@fp16/b256/ggml), Q2_K, Q4_K, "
                  "Q5_K (int2 / int4 / int5@fp16/b256/asym/ggml) along rows, IQ4_NL (iq4_nl: ggml's codebook@fp16/b32/ggml), MXFP4 "
                  "(e2m1@e8m0/b32/ggml) and NVFP4 (e2m1@ue4m3/b16/ggml); '" +
                  full + "' is none of them");
  }
}

// An element keeps the spelling it was parsed from (pot4, cb:...) when that spelling still means its value;
// otherwise (built from fields, or edited) it is named by its value.
void name_element(Element& e) {
  bool ok = !e.name.empty();
  if (ok) {
    try {
      ok = Element::parse(e.name) == e;
    } catch (const Error&) {
      ok = false;
    }
  }
  if (!ok) e.name = e.canonical_name();
}

}  // namespace

void Format::finish(std::string name) {
  name_element(elem_);
  name_element(scaling_.scale_elem);
  if (scaling_.kind == ScaleKind::None) {
    // An unscaled format: the scaling fields have no meaning; keep them at their defaults so == and the
    // hash see one value.
    Scaling none;
    none.scale_elem = Element::parse("fp32");
    scaling_ = none;
  }
  name_ = name.empty() ? expanded() : std::move(name);
  const double eb = elem_.bits;
  // A zero point costs an element code per group, except for the ggml rule's fp16 block minimum (Q4_1, Q5_1).
  const double per_group = scaling_.scale_elem.bits +
                           (scaling_.asym ? (scaling_.rule == ScaleRule::Ggml ? scaling_.scale_elem.bits : elem_.bits) : 0);
  // A k-quant's sub-block scales (and minimums) add to its d (and dmin): ggml's block bytes over 256.
  const bool kquant = scaling_.rule == ScaleRule::Ggml && scaling_.kind == ScaleKind::Block && scaling_.block == 256;
  static constexpr int kKQuantBlockBytes[7] = {0, 0, 84, 110, 144, 176, 210};  // Q2_K .. Q6_K by bits
  switch (scaling_.kind) {
    case ScaleKind::Block:
      bits_per_element_ = kquant ? kKQuantBlockBytes[elem_.bits] * 8.0 / 256 : eb + per_group / scaling_.block;
      break;
    case ScaleKind::Tile: bits_per_element_ = eb + per_group / (static_cast<double>(scaling_.tile_rows) * scaling_.tile_cols); break;
    default: bits_per_element_ = eb; break;
  }
  // Hashed from the value's canonical spelling, so equal values hash alike however they were spelt.
  const Scaling& c = scaling_;
  std::string key = elem_.canonical_name() + "|" + std::to_string(static_cast<int>(c.kind));
  if (c.kind != ScaleKind::None)
    key += "|" + c.scale_elem.canonical_name() + "|" + std::to_string(c.axis) + "|" + std::to_string(c.block) + "|" +
           std::to_string(c.tile_rows) + "x" + std::to_string(c.tile_cols) + "|" + scale_rule_name(c.rule) +
           (c.asym ? "|asym" : "") + (c.tensor_scale ? "|ts" : "") + (c.axis_explicit ? "|ax" : "");
  hash_ = std::hash<std::string>{}(key);
}

// A scaling built field by field may carry fields its kind ignores (a block size on a channel scale, an
// implicit axis on a tile): reset them, so that the format equals the one parsed back from its name.
static void drop_unused_fields(Scaling& s) {
  if (s.kind != ScaleKind::Block) s.block = 0;
  if (s.kind != ScaleKind::Tile) s.tile_rows = s.tile_cols = 0;
  if (s.kind == ScaleKind::Channel && !s.axis_explicit) {
    s.axis = 0;  // what the group layout uses for a channel scale without an axis
    s.axis_explicit = true;
  }
  if (s.kind == ScaleKind::Block && !s.axis_explicit) s.axis = -1;
  if ((s.kind == ScaleKind::Tensor || s.kind == ScaleKind::Tile || s.kind == ScaleKind::None) && !s.axis_explicit) s.axis = -1;
}

Format Format::make(Element elem, Scaling scaling) {
  Format f;
  f.elem_ = std::move(elem);
  f.scaling_ = std::move(scaling);
  drop_unused_fields(f.scaling_);
  if (f.elem_.kind == Element::Kind::Codebook && f.elem_.values.size() < 2)
    throw Error("a codebook element needs at least two values");
  validate(f.elem_, f.scaling_, false, f.elem_.canonical_name());
  f.finish("");
  return f;
}

Format Format::parse(std::string_view text) {
  const std::string full = detail::ascii_lower(text);
  if (full.empty()) throw Error("empty format name");
  if (const NamedFormat* row = find_named_format(full)) {
    Format f = parse_composition(row->composition);
    f.finish(row->name);
    return f;
  }
  return parse_composition(full);
}

Format Format::parse_composition(const std::string& full) {
  Element elem;
  Scaling sc;
  std::vector<std::string_view> parts;
  std::string_view rest = full;
  while (true) {
    auto s = rest.find('/');
    parts.push_back(rest.substr(0, s));
    if (s == std::string_view::npos) break;
    rest = rest.substr(s + 1);
  }
  std::string_view head = parts[0];
  auto at = head.find('@');
  try {
    elem = Element::parse(head.substr(0, at));
  } catch (const Error& e) {
    // A bare unknown word is more likely a misspelt format name than a bad element.
    if (parts.size() == 1 && at == std::string_view::npos && std::string_view(e.what()).rfind("unknown element", 0) == 0)
      throw Error("unknown format '" + full + "' (" + nearest_hint(full) + ")");
    throw;
  }
  const bool has_scale = at != std::string_view::npos;
  if (has_scale) {
    std::string_view sp = head.substr(at + 1);
    auto plus = sp.find('+');
    if (plus != std::string_view::npos) {
      if (sp.substr(plus + 1) != "fp32") throw Error("only '+fp32' is allowed as a second-level scale in '" + full + "'");
      sc.tensor_scale = true;
      sp = sp.substr(0, plus);
    }
    sc.scale_elem = Element::parse(sp);
    if (sc.scale_elem.kind != Element::Kind::Float)
      throw Error("scale element must be a float (fp32, fp16, bf16, e8m0, ue4m3) in '" + full + "'");
    sc.kind = ScaleKind::Tensor;
  } else {
    sc.scale_elem = Element::parse("fp32");
  }
  bool rule_given = false;
  std::string granularity;  // the part that set the scale's granularity: a second one is an error
  const auto one_granularity = [&](const std::string& part) {
    if (!granularity.empty())
      throw Error("'" + full + "' names two scale granularities ('" + granularity + "' and '" + part +
                  "'); give one of b<N> / g<N>, ch<A>, t<R>x<C>, tensor");
    granularity = part;
  };
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    int v = 0;
    const std::string ps(p);
    if (p.empty()) throw Error("empty part in '" + full + "'");
    if ((p[0] == 'b' || p[0] == 'g') && parse_int(p.substr(1), v)) {
      if (v <= 0) throw Error("block size must be positive in '" + full + "'");
      one_granularity(ps);
      sc.kind = ScaleKind::Block;
      sc.block = v;
    } else if (starts_with(p, "ch")) {
      one_granularity(ps);
      sc.kind = ScaleKind::Channel;
      sc.axis = 0;
      sc.axis_explicit = true;
      if (p.size() > 2 && !parse_int(p.substr(2), sc.axis)) throw Error("bad channel axis '" + ps + "' in '" + full + "'");
    } else if (p[0] == 't' && p.find('x') != std::string_view::npos && p != "tensor") {
      auto x = p.find('x');
      if (!parse_int(p.substr(1, x - 1), sc.tile_rows) || !parse_int(p.substr(x + 1), sc.tile_cols) ||
          sc.tile_rows <= 0 || sc.tile_cols <= 0)
        throw Error("bad tile '" + ps + "' in '" + full + "' (expected t<rows>x<cols>)");
      one_granularity(ps);
      sc.kind = ScaleKind::Tile;
    } else if (p == "tensor") {
      one_granularity(ps);
      sc.kind = ScaleKind::Tensor;
    } else if (starts_with(p, "ax")) {
      if (!parse_int(p.substr(2), sc.axis)) throw Error("bad axis '" + ps + "' in '" + full + "'");
      sc.axis_explicit = true;
    } else if (p == "asym") {
      sc.asym = true;
    } else {
      auto r = std::find_if(std::begin(kRules), std::end(kRules), [&](const RuleName& k) { return p == k.name; });
      if (r == std::end(kRules))
        throw Error("unknown format part '" + ps + "' in '" + full +
                    "' (b<N>, g<N>, ch<A>, t<R>x<C>, tensor, ax<A>, asym, floor, ceil, rceil, midmax, amax, mse, ggml)");
      sc.rule = r->rule;
      rule_given = true;
    }
  }
  if (!rule_given) sc.rule = sc.scale_elem.variant == FloatVariant::E8m0 ? ScaleRule::Floor : ScaleRule::Amax;
  drop_unused_fields(sc);
  validate(elem, sc, rule_given, full);
  Format f;
  f.elem_ = std::move(elem);
  f.scaling_ = std::move(sc);
  f.finish("");
  return f;
}

std::string Format::expanded() const {
  std::string s = elem_.name;
  if (scaling_.kind == ScaleKind::None) return s;
  s += "@" + scaling_.scale_elem.name + (scaling_.tensor_scale ? "+fp32" : "");
  switch (scaling_.kind) {
    case ScaleKind::Tensor: s += "/tensor"; break;
    case ScaleKind::Channel: s += "/ch" + std::to_string(scaling_.axis); break;
    case ScaleKind::Block:
      s += "/b" + std::to_string(scaling_.block);
      if (scaling_.axis_explicit) s += "/ax" + std::to_string(scaling_.axis);
      break;
    case ScaleKind::Tile: s += "/t" + std::to_string(scaling_.tile_rows) + "x" + std::to_string(scaling_.tile_cols); break;
    case ScaleKind::None: break;
  }
  if (scaling_.asym) s += "/asym";
  s += std::string("/") + scale_rule_name(scaling_.rule);
  return s;
}

}  // namespace qcast
