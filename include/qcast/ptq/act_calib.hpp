// Static activation quantization: observers that collect the statistics of each quantized layer input
// over a calibration set, and the calibration pass that turns them into fixed ranges (StaticRange) that
// the runtime then uses instead of per-input scales (nn/act_quant.hpp).
//
// Statistics are a streaming histogram per scale group (one group for per-tensor formats, one per channel
// for /ch formats): kBins bins per sign over [-R, R], R set to the first batch's max |x| and doubled (merging
// bin pairs, which is exact) whenever a later value exceeds it, plus the exact min and max. So nothing of
// the activations is kept, the result depends only on the values in stream order (not on thread counts),
// and the histogram's resolution is R / kBins <= 2 max|x| / kBins.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/nn/act_quant.hpp"
#include "qcast/nn/observer.hpp"
#include "qcast/ptq/model.hpp"
#include "qcast/quantize.hpp"

namespace qcast::ptq {

/// A streaming signed histogram of one scale group's values (non-finite values are not counted).
class ActHistogram {
 public:
  static constexpr int kBins = 2048;  ///< bins per sign

  void add(const float* x, std::size_t n);
  std::uint64_t count() const { return count_; }
  float min() const { return min_; }
  float max() const { return max_; }
  double range() const { return range_; }  ///< R: bins cover [-R, R]
  double bin_width() const { return range_ / kBins; }

  /// The observer's clipping range [lo, hi] for a format (symmetric formats get lo = -hi).
  /// minmax: the exact extremes; percentile: the bin edge holding the P-th percentile (of |x| when
  /// symmetric; the (100-P)-th / P-th of x when asymmetric), clamped to the extremes, so it is at most
  /// one bin width above the exact percentile; mse: the candidate clip c = m (1 - k/200), k = 0..199,
  /// m = max |x| (asymmetric: both ends scaled), whose fake-quant squared error over the bin centres
  /// (weighted by the counts, quantized with the format's own rounding) is least; ties keep the larger c.
  void range_for(const nn::ObserverSpec& obs, const Format& f, float& lo, float& hi) const;

 private:
  void grow(double amax);
  double range_ = 0;
  std::vector<std::uint64_t> pos_, neg_;  // pos_[j]: x in [jR/B, (j+1)R/B); neg_[j]: -x in that bin (x < 0)
  std::uint64_t count_ = 0;
  float min_ = 0, max_ = 0;
};

/// Statistics of one layer input: a histogram per scale group of `format` (which must take a static range).
class ActObserver {
 public:
  explicit ActObserver(Format format) : format_(std::move(format)) {}
  /// Observes one input tensor; `axis` is the channel / block axis the runtime uses for this input.
  void observe(const float* x, const Shape& shape, int axis);
  StaticRange range(const nn::ObserverSpec& obs) const;
  const std::vector<ActHistogram>& groups() const { return groups_; }

 private:
  Format format_;
  std::vector<ActHistogram> groups_;
};

/// Calibrates every static activation of `m` (layers whose ActQuant has an observer): streams the
/// calibration set through the model with its current (quantized) weights and full-precision activations
/// (activation fake-quant is off during calibration, as in Brevitas' calibration mode), then fixes each
/// layer's range. Attaches the ranges to the model and returns them by layer name. qcast::Error if the
/// model has no static activation. `progress`: a bar on stderr when it is a terminal.
std::map<std::string, StaticRange> calibrate_activations(Model& m, const CalibOptions& o, int threads, bool progress = true);

/// Streams the calibration set through `m` (images in batches of o.batch, stories one at a time) with
/// the observers, calling on_batch after each batch. Same data and order as quantize_model's passes.
void run_calibration(const Model& m, const CalibOptions& o, int threads, const nn::NodeObserver& gobs,
                     const nn::LinearObserver& lobs, const std::function<void()>& on_batch = {});

}  // namespace qcast::ptq
