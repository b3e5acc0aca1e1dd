#include "qcast/nn/act_quant.hpp"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "qcast/error.hpp"

namespace qcast::nn {

void ActQuant::apply(const float* in, float* out, const Shape& shape, int axis, int threads, const std::string& layer) const {
  QuantOptions o;
  o.axis = axis;
  o.threads = threads;
  if (!is_static()) {
    fake_quant(format, in, out, shape, o);
    return;
  }
  if (!range)
    throw Error("layer '" + layer + "': static activation quantization (" + format.name() + ", observer " + observer +
                ") has no calibrated scale; calibrate it (qcast eval / quantize --calib SPEC) or load a quantized model that stores it");
  try {
    fake_quant_static(format, *range, in, out, shape, o);
  } catch (const Error& e) {
    throw Error("layer '" + layer + "': " + e.what());
  }
}

std::string ObserverSpec::name() const {
  switch (kind) {
    case Kind::MinMax: return "minmax";
    case Kind::Mse: return "mse";
    case Kind::Percentile: {
      std::ostringstream o;
      o.precision(17);
      o << "percentile:" << percentile;
      return o.str();
    }
  }
  return "";
}

ObserverSpec parse_observer(const std::string& spec) {
  ObserverSpec o;
  if (spec == "minmax") return o;
  if (spec == "mse") { o.kind = ObserverSpec::Kind::Mse; return o; }
  const std::string pre = "percentile:";
  if (spec.rfind(pre, 0) == 0) {
    const std::string num = spec.substr(pre.size());
    char* end = nullptr;
    const double p = num.empty() ? NAN : std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !(p > 0.0 && p <= 100.0))
      throw Error("bad activation observer '" + spec + "': the percentile must be a number in (0, 100], e.g. percentile:99.99");
    o.kind = ObserverSpec::Kind::Percentile;
    o.percentile = p;
    return o;
  }
  throw Error("unknown activation observer '" + spec + "' (minmax, percentile:P e.g. percentile:99.99, mse)");
}

ActQuant make_act_quant(const Format& f, const std::string& observer, const std::string& layer) {
  ActQuant a;
  a.format = f;
  if (observer.empty()) return a;
  a.observer = parse_observer(observer).name();
  if (f.scaling().kind == ScaleKind::None) a.format = Format::parse(f.elem().name + "@fp32/tensor");
  const std::string at = layer.empty() ? std::string() : "layer '" + layer + "': ";
  if (const std::string why = static_range_unsupported(a.format); !why.empty()) throw Error(at + why);
  if (a.format.scaling().tensor_scale && parse_observer(observer).kind == ObserverSpec::Kind::Mse)
    throw Error(at + "the mse observer needs a per-tensor or per-channel format; " + a.format.name() +
                " keeps dynamic block scales under its static fp32 scale (use minmax or percentile)");
  return a;
}

}  // namespace qcast::nn
