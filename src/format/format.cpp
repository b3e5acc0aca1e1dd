// Parsing and naming of elements and formats (the grammar of docs/formats.md).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "qcast/error.hpp"
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

const char* rule_name(ScaleRule r) {
  switch (r) {
    case ScaleRule::Floor: return "floor";
    case ScaleRule::Ceil: return "ceil";
    case ScaleRule::MidMax: return "midmax";
    case ScaleRule::Amax: return "amax";
    case ScaleRule::Mse: return "mse";
  }
  return "?";
}

const std::map<std::string, std::string>& named_map() {
  static const std::map<std::string, std::string> m = {
      {"mxfp8", "e4m3@e8m0/b32/floor"},
      {"mxfp8_e4m3", "e4m3@e8m0/b32/floor"},
      {"mxfp8_e5m2", "e5m2@e8m0/b32/floor"},
      {"mxfp6_e3m2", "e3m2@e8m0/b32/floor"},
      {"mxfp6_e2m3", "e2m3@e8m0/b32/floor"},
      {"mxfp4", "e2m1@e8m0/b32/floor"},
      {"mxint8", "int8f6@e8m0/b32/floor"},
      {"nvfp4", "e2m1@ue4m3+fp32/b16/amax"},
      {"nf4", "nf4@fp32/b64/amax"},
  };
  return m;
}

}  // namespace

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

Element Element::parse(std::string_view n) {
  const std::string name(n);
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
        const int bias = (1 << (eb - 1)) - 1;
        if (suffix.empty()) {
          // A 1-bit IEEE exponent: its all-ones field is inf/NaN, so every finite value would be subnormal.
          if (eb < 2) throw Error("minifloat '" + name + "' has no finite normal values (IEEE needs 2+ exponent bits)");
          return make_float(eb, mb, bias, FloatVariant::Ieee, 1 + eb + mb, name);
        }
        if (suffix == "fn") {
          // e1m0fn: its only non-zero code (S.1) is the NaN.
          if (eb == 1 && mb == 0) throw Error("minifloat '" + name + "' has no finite non-zero values");
          return make_float(eb, mb, bias, FloatVariant::Fn, 1 + eb + mb, name);
        }
        if (suffix == "fnuz") return make_float(eb, mb, bias + 1, FloatVariant::Fnuz, 1 + eb + mb, name);
        if (suffix == "fin") return make_float(eb, mb, bias, FloatVariant::Finite, 1 + eb + mb, name);
        throw Error("unknown minifloat variant '" + std::string(suffix) + "' in '" + name + "' (fn, fnuz, fin)");
      }
    }
  }
  throw Error("unknown element '" + name + "' (see `qcast formats`)");
}

Format Format::parse(std::string_view text) {
  const std::string full(text);
  if (text.empty()) throw Error("empty format name");
  auto named = named_map().find(full);
  if (named != named_map().end()) {
    Format f = parse(named->second);
    f.name = full;
    return f;
  }
  Format f;
  std::vector<std::string_view> parts;
  std::string_view rest = text;
  while (true) {
    auto s = rest.find('/');
    parts.push_back(rest.substr(0, s));
    if (s == std::string_view::npos) break;
    rest = rest.substr(s + 1);
  }
  std::string_view head = parts[0];
  auto at = head.find('@');
  f.elem = Element::parse(head.substr(0, at));
  bool has_scale = at != std::string_view::npos;
  if (has_scale) {
    std::string_view sc = head.substr(at + 1);
    auto plus = sc.find('+');
    if (plus != std::string_view::npos) {
      if (sc.substr(plus + 1) != "fp32") throw Error("only '+fp32' is allowed as a second-level scale in '" + full + "'");
      f.scaling.tensor_scale = true;
      sc = sc.substr(0, plus);
    }
    f.scaling.scale_elem = Element::parse(sc);
    if (f.scaling.scale_elem.kind != Element::Kind::Float)
      throw Error("scale element must be a float (fp32, fp16, bf16, e8m0, ue4m3) in '" + full + "'");
    f.scaling.kind = ScaleKind::Tensor;
  } else {
    f.scaling.scale_elem = Element::parse("fp32");
  }
  bool rule_given = false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    int v = 0;
    const std::string ps(p);
    if ((p[0] == 'b' || p[0] == 'g') && parse_int(p.substr(1), v)) {
      if (v <= 0) throw Error("block size must be positive in '" + full + "'");
      f.scaling.kind = ScaleKind::Block;
      f.scaling.block = v;
    } else if (starts_with(p, "ch")) {
      f.scaling.kind = ScaleKind::Channel;
      f.scaling.axis = 0;
      f.scaling.axis_explicit = true;
      if (p.size() > 2 && !parse_int(p.substr(2), f.scaling.axis)) throw Error("bad channel axis '" + ps + "' in '" + full + "'");
    } else if (p[0] == 't' && p.find('x') != std::string_view::npos && p != "tensor") {
      auto x = p.find('x');
      if (!parse_int(p.substr(1, x - 1), f.scaling.tile_rows) || !parse_int(p.substr(x + 1), f.scaling.tile_cols) ||
          f.scaling.tile_rows <= 0 || f.scaling.tile_cols <= 0)
        throw Error("bad tile '" + ps + "' in '" + full + "' (expected t<rows>x<cols>)");
      f.scaling.kind = ScaleKind::Tile;
    } else if (p == "tensor") {
      f.scaling.kind = ScaleKind::Tensor;
    } else if (starts_with(p, "ax")) {
      if (!parse_int(p.substr(2), f.scaling.axis)) throw Error("bad axis '" + ps + "' in '" + full + "'");
      f.scaling.axis_explicit = true;
    } else if (p == "asym") {
      f.scaling.asym = true;
    } else if (p == "floor" || p == "ceil" || p == "midmax" || p == "amax" || p == "mse") {
      f.scaling.rule = p == "floor" ? ScaleRule::Floor : p == "ceil" ? ScaleRule::Ceil : p == "midmax" ? ScaleRule::MidMax
                     : p == "amax" ? ScaleRule::Amax : ScaleRule::Mse;
      rule_given = true;
    } else {
      throw Error("unknown format part '" + ps + "' in '" + full + "' (b<N>, g<N>, ch<A>, t<R>x<C>, tensor, ax<A>, asym, floor, ceil, midmax, amax, mse)");
    }
  }
  if (!has_scale && f.scaling.kind != ScaleKind::None) {
    f.scaling.scale_elem = Element::parse("fp32");
  }
  if (!rule_given) {
    f.scaling.rule = f.scaling.scale_elem.variant == FloatVariant::E8m0 ? ScaleRule::Floor : ScaleRule::Amax;
  }
  if (f.scaling.kind == ScaleKind::None && (f.scaling.asym || rule_given))
    throw Error("'" + full + "' has scaling options but no scale (add @fp32 or a /b, /ch, /t part)");
  if (f.scaling.asym && f.elem.kind != Element::Kind::Int)
    throw Error("asymmetric (zero point) scaling needs an integer element in '" + full + "'");
  if (f.scaling.tensor_scale && f.scaling.kind == ScaleKind::None) throw Error("'+fp32' needs a scaled format in '" + full + "'");
  f.name = f.canonical();
  return f;
}

std::string Format::canonical() const {
  auto named = std::find_if(named_map().begin(), named_map().end(), [&](auto& kv) { return kv.first == name; });
  if (named != named_map().end()) return named->first;
  return expanded();
}

std::string Format::expanded() const {
  std::string s = elem.name;
  if (scaling.kind == ScaleKind::None) return s;
  s += "@" + scaling.scale_elem.name + (scaling.tensor_scale ? "+fp32" : "");
  switch (scaling.kind) {
    case ScaleKind::Tensor: s += "/tensor"; break;
    case ScaleKind::Channel: s += "/ch" + std::to_string(scaling.axis); break;
    case ScaleKind::Block:
      s += "/b" + std::to_string(scaling.block);
      if (scaling.axis_explicit) s += "/ax" + std::to_string(scaling.axis);
      break;
    case ScaleKind::Tile: s += "/t" + std::to_string(scaling.tile_rows) + "x" + std::to_string(scaling.tile_cols); break;
    case ScaleKind::None: break;
  }
  if (scaling.asym) s += "/asym";
  s += std::string("/") + rule_name(scaling.rule);
  return s;
}

double Format::bits_per_element() const {
  const double eb = elem.bits;
  const double per_group = scaling.scale_elem.bits + (scaling.asym ? elem.bits : 0);
  switch (scaling.kind) {
    case ScaleKind::Block: return eb + per_group / scaling.block;
    case ScaleKind::Tile: return eb + per_group / (static_cast<double>(scaling.tile_rows) * scaling.tile_cols);
    default: return eb;
  }
}

const std::vector<std::string>& named_formats() {
  static const std::vector<std::string> v = {"fp32", "tf32", "bf16", "fp16", "e5m2", "e4m3", "e3m2", "e2m3", "e2m1",
                                             "e8m0", "ue4m3", "int8", "int4", "uint8", "uint4", "mxfp8", "mxfp8_e5m2",
                                             "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4", "mxint8", "nvfp4", "nf4"};
  return v;
}

}  // namespace qcast
