// The arithmetic energy model by number format: a bit-level MAC built from array multipliers, adders,
// barrel shifters and multiplexers whose per-bit energies are fitted to Horowitz's 45 nm figures
// (ISSCC 2014, "Computing's energy problem"): int8 add 0.03 pJ, int32 add 0.1, int8 mult 0.2,
// fp16 add 0.4, fp32 add 0.9, fp16 mult 1.1, fp32 mult 3.7. docs/cost.md ("Arithmetic energy by
// format") derives each constant and lists what the model leaves out.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/hw.hpp"
#include "yaml_util.hpp"

namespace qcast::hw {

namespace arith {

namespace {
// Two equations, two unknowns: x * a1 + y * b1 = c1, x * a2 + y * b2 = c2.
std::pair<double, double> solve2(double a1, double b1, double c1, double a2, double b2, double c2) {
  const double det = a1 * b2 - b1 * a2;
  return {(c1 * b2 - b1 * c2) / det, (a1 * c2 - c1 * a2) / det};
}
// Float add = exponent compare (int add of e bits) + a significand adder linear in p + two barrel
// shifters (align, normalise) ~ p log2 p; fitted exactly to fp16 (p 11, e 5) 0.4 pJ and fp32 (p 24,
// e 8) 0.9 pJ.
const std::pair<double, double> kAdd = solve2(24, 24 * std::log2(24.0), 0.9 - int_add(8), 11, 11 * std::log2(11.0),
                                              0.4 - int_add(5));
// Stand-alone float multiply = significand array (c_m p^2) + rounding/normalising the 2p-bit product
// (c_r p) + exponent add (e + 1 bits); fitted exactly to fp16 1.1 pJ and fp32 3.7 pJ.
const std::pair<double, double> kMul = solve2(24.0 * 24, 24, 3.7 - int_add(9), 11.0 * 11, 11, 1.1 - int_add(6));
}  // namespace

double int_mult(double a, double b) { return 0.2 * a * b / 64.0; }
double int_add(double n) { return 0.03 + (n - 8.0) * (0.1 - 0.03) / 24.0; }
double fp_mult(double p, double e) { return kMul.first * p * p + kMul.second * p + int_add(e + 1); }
double fp_add(double p, double e) { return int_add(e) + kAdd.first * p + kAdd.second * p * std::log2(p); }
// One 2:1 multiplexer bit: half the fitted shifter coefficient (a float add has two shifters).
double shifter(double width, double stages) { return kAdd.second / 2.0 * width * stages; }
double sig_mult(double pa, double pb) { return kMul.first * pa * pb; }  // significand array only (no rounding)

}  // namespace arith

namespace {

// One operand as the multiplier sees it.
struct Operand {
  bool is_int = false, codebook = false;
  double p = 0, e = 0;  // significand bits into the multiplier (int: all bits), exponent bits
  double fx = 0;        // bits of an exact fixed-point image (sign included)
  int block = 0;        // elements sharing one scale along the reduction (0: per tensor/channel or none)
  bool pow2_scale = false;
  double scale_p = 0, scale_e = 0;
  double codes = 0, code_bits = 0;
};

double fixed_bits(const Element& el) {
  const double ratio = el.max_value() / el.min_positive();
  return std::ceil(std::log2(ratio + 1.0)) + (el.is_unsigned() ? 0.0 : 1.0);
}

Operand operand(const std::string& name) {
  const std::string f = detail::lower(name);
  Operand o;
  if (f == "fp64" || f == "float64") {
    o.p = 53, o.e = 11, o.fx = 2100;
    return o;
  }
  Format fm = Format::parse(f);
  const Element& el = fm.elem();
  if (el.kind == Element::Kind::Int) {
    o.is_int = true;
    o.p = el.bits, o.fx = el.bits;
  } else if (el.kind == Element::Kind::Float) {
    o.p = el.mbits + 1, o.e = el.ebits, o.fx = fixed_bits(el);
  } else {
    // A codebook (nf4): each code selects one of 2^b stored values (fp16 in bitsandbytes), which the
    // multiplier then sees as an fp16 operand.
    o.codebook = true;
    o.codes = el.num_codes(), o.code_bits = 16;
    const Element h = Element::parse("fp16");
    o.p = h.mbits + 1, o.e = h.ebits, o.fx = fixed_bits(h);
  }
  const Scaling& s = fm.scaling();
  if (s.kind == ScaleKind::Block || s.kind == ScaleKind::Tile) {
    o.block = s.kind == ScaleKind::Block ? s.block : s.tile_cols;
    const Element& se = s.scale_elem;
    o.pow2_scale = se.kind == Element::Kind::Float && se.variant == FloatVariant::E8m0;
    if (se.kind == Element::Kind::Int) o.scale_p = se.bits, o.scale_e = 0;
    else o.scale_p = o.pow2_scale ? 1 : se.mbits + 1, o.scale_e = se.ebits;
  }
  return o;
}

// intN / uintN of any width 2..64 (accumulators are wider than the element formats); 0 if not that form.
int int_width(const std::string& f) {
  std::size_t k = f.rfind("uint", 0) == 0 ? 4 : f.rfind("int", 0) == 0 ? 3 : 0;
  if (k == 0 || k == f.size() || f.size() - k > 2) return 0;
  for (std::size_t i = k; i < f.size(); ++i)
    if (f[i] < '0' || f[i] > '9') return 0;
  const int n = std::stoi(f.substr(k));
  return n >= 2 && n <= 64 ? n : 0;
}

}  // namespace

double accumulator_bits(const std::string& format) {
  const std::string f = detail::lower(format);
  if (int n = int_width(f)) return n;
  if (f.rfind("int", 0) == 0 || f.rfind("uint", 0) == 0)
    throw Error("bad accumulator '" + format + "': an integer accumulator is int2..int64");
  return bits_per_element(f);
}

std::string default_accumulator(const std::string& weights, const std::string& activations) {
  Operand w = operand(weights), a = operand(activations);
  return w.is_int && a.is_int && w.block == 0 && a.block == 0 ? "int32" : "fp32";
}

MacCost mac_cost(const std::string& weights, const std::string& activations, const std::string& accumulator) {
  using namespace arith;
  MacCost c;
  c.weights = weights, c.activations = activations;
  c.accumulator = accumulator.empty() ? default_accumulator(weights, activations) : detail::lower(accumulator);
  const Operand w = operand(weights), a = operand(activations);
  Element acc_el;
  if (const int n = int_width(c.accumulator)) {
    acc_el.kind = Element::Kind::Int;
    acc_el.bits = n;
  } else {
    try {
      acc_el = Format::parse(c.accumulator).elem();
    } catch (const Error& e) {
      throw Error("unknown accumulator '" + c.accumulator + "': " + e.what());
    }
    if (acc_el.kind == Element::Kind::Codebook || (acc_el.kind == Element::Kind::Float && acc_el.variant == FloatVariant::E8m0))
      throw Error("accumulator '" + c.accumulator + "' is not an int or float format (int32, fp32, fp16, bf16, ...)");
  }
  const bool acc_int = acc_el.kind == Element::Kind::Int;
  const double W = acc_el.bits;                                       // int accumulator width
  const double pacc = acc_int ? W : acc_el.mbits + 1, eacc = acc_int ? 0 : acc_el.ebits;
  auto clog2 = [](double x) { return std::ceil(std::log2(std::max(2.0, x))); };

  // Codebook decode: a (2^b - 1)-cell multiplexer tree per output bit.
  for (const Operand* o : {&w, &a})
    if (o->codebook) c.lookup += shifter((o->codes - 1) * o->code_bits, 1);

  // Element multiply: an exact product (a fused MAC does not round it).
  const bool int_product = w.is_int && a.is_int;
  const double pprod = w.p + a.p;
  c.multiply = int_product ? int_mult(w.p, a.p) : sig_mult(w.p, a.p) + int_add(std::max(w.e, a.e) + 1);

  // A product into the accumulator: a float accumulator aligns, adds and normalises (a float add);
  // an int one takes an int product as is and shifts a float product into place first.
  auto into_acc = [&](bool int_value, double& align, double& accumulate) {
    if (!acc_int) {
      accumulate += fp_add(pacc, eacc);
    } else {
      if (!int_value) align += shifter(W, clog2(W));
      accumulate += int_add(W);
    }
  };

  // Shared-scale blocks along the reduction: products of one block are summed first, then the block
  // sum is scaled once and accumulated (the OCP MX dot product: X_a X_b sum_i a_i b_i).
  int B = 0;
  if (w.block && a.block) B = std::gcd(w.block, a.block);
  else B = std::max(w.block, a.block);
  c.block = B;
  if (B == 0) {
    into_acc(int_product, c.align, c.accumulate);
    return c;
  }
  // The exact fixed-point sum of B products needs fx_w + fx_a - 1 + log2 B bits; up to 48 bits it is
  // an integer adder tree (MX-style), beyond that (fp16 or e5m2 elements) the block sum runs in the
  // accumulator's format.
  const double fxp = w.fx + a.fx - 1 + clog2(B);
  c.fixed_point_block = fxp <= 48;
  double per_block = 0, sum_p;
  if (c.fixed_point_block) {
    if (!int_product) c.align += shifter(fxp, clog2(fxp - pprod + 1));
    c.accumulate += int_add(fxp);
    if (!acc_int) per_block += shifter(fxp, clog2(fxp));  // normalise the block sum (leading-zero shift)
    sum_p = std::min(fxp, pacc);
  } else {
    into_acc(int_product, c.align, c.accumulate);
    sum_p = pacc;
  }
  // Combine the scales of the block: powers of two (E8M0) add exponents; scales with a significand
  // (UE4M3, fp16, fp32) multiply, then multiply the block sum.
  std::vector<const Operand*> scaled;
  for (const Operand* o : {&w, &a})
    if (o->block) scaled.push_back(o);
  bool pow2 = true;
  double sp = 1, se = 0;
  for (auto* o : scaled) {
    if (!o->pow2_scale) pow2 = false;
    se = std::max(se, o->scale_e);
  }
  if (scaled.size() == 2) {
    if (!pow2) per_block += sig_mult(scaled[0]->scale_p, scaled[1]->scale_p);
    per_block += int_add(se + 1);
    sp = scaled[0]->scale_p + scaled[1]->scale_p - (pow2 ? 1 : 0);
  } else {
    sp = scaled[0]->scale_p;
  }
  if (pow2) per_block += acc_int ? shifter(W, clog2(W)) : int_add(eacc + 1);  // shift / exponent add
  else per_block += acc_int ? int_mult(sp, sum_p) : sig_mult(sp, sum_p) + int_add(eacc + 1);
  c.scale = per_block / B;
  // The scaled block sum joins the running sum once per block (already counted per element when the
  // block sum itself runs in the accumulator).
  if (c.fixed_point_block) {
    double al = 0, ac = 0;
    into_acc(false, al, ac);
    c.accumulate += (al + ac) / B;
  } else {
    c.accumulate += (acc_int ? int_add(W) : fp_add(pacc, eacc)) / B;
  }
  return c;
}

}  // namespace qcast::hw
