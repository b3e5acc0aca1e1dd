// Activation fake-quant of one layer input (Conv / Gemm / MatMul / Linear): dynamic (scales measured on
// each input at run time) or static (scales fixed by a calibrated range, see ptq/act_calib.hpp).
#pragma once
#include <optional>
#include <string>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"
#include "qcast/tensor.hpp"

namespace qcast::nn {

struct ActQuant {
  Format format;
  /// Static quantization was requested (recipe `observer`): the scale comes from `range`, never from the
  /// input. `observer` is the observer spec that calibrates it (minmax, percentile:P, mse).
  std::string observer;
  std::optional<StaticRange> range;  // set by calibration or by a stored recipe
  bool is_static() const { return !observer.empty(); }

  /// out = fake-quant of `in` [shape], blocks / channels along `axis` unless the format fixes it.
  /// qcast::Error naming `layer` if the quantization is static and not calibrated yet.
  void apply(const float* in, float* out, const Shape& shape, int axis, int threads, const std::string& layer) const;
};

/// An activation observer: how calibration turns the statistics of a layer input into its static range.
///  minmax        [min, max] (symmetric formats use max|x|)
///  percentile:P  the P-th percentile of |x| (asymmetric: the (100-P)-th and P-th percentiles of x), 0 < P <= 100
///  mse           the clipping range whose quantization error over the calibration histogram is least
struct ObserverSpec {
  enum class Kind { MinMax, Percentile, Mse };
  Kind kind = Kind::MinMax;
  double percentile = 100.0;
  std::string name() const;  // canonical spelling, parse_observer(name()) == *this
};
/// Parses an observer spec; qcast::Error naming the accepted spellings otherwise.
ObserverSpec parse_observer(const std::string& spec);

/// The format a recipe's activation entry means: a static observer on a format without a scale (int8,
/// e4m3) gets one fp32 per-tensor scale ("int8" -> "int8@fp32/tensor"); formats that cannot take a static
/// scale (block scales without +fp32, tiles, the /mse rule) are a qcast::Error naming `layer`.
/// `observer` empty = dynamic: the format is used as written.
ActQuant make_act_quant(const Format& f, const std::string& observer, const std::string& layer = "");

}  // namespace qcast::nn
