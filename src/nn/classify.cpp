#include "qcast/nn/classify.hpp"

#include <algorithm>

#include "qcast/error.hpp"
#include "qcast/nn/logits.hpp"

namespace qcast::nn {

ClassifyResult classify(const Graph& g, const ImageSet& set, std::int64_t batch, int threads, const std::string& what,
                        const std::function<void(const ClassifyResult&)>& on_batch) {
  if (batch < 1) throw Error("batch size must be at least 1");
  ClassifyResult r;
  const std::int64_t n = set.size(), per = set.sample_numel();
  for (std::int64_t b = 0; b < n; b += batch) {
    const std::int64_t bs = std::min(batch, n - b);
    Shape xs = set.sample_shape;
    xs.insert(xs.begin(), bs);
    Value x = Value::floats(xs);
    std::copy(set.data.begin() + b * per, set.data.begin() + (b + bs) * per, x.f->begin());
    auto out = g.run({x}, threads);
    const Value& y = out[0];
    if (y.shape.size() != 2 || y.shape[0] != bs) throw Error(what + ": expected logits [batch, classes], got " + shape_str(y.shape));
    const std::int64_t C = y.shape[1];
    for (std::int64_t i = 0; i < bs; ++i) {
      const float* lg = y.fp() + i * C;
      const std::int64_t lab = set.label(b + i, C);
      const bool hit = std::max_element(lg, lg + C) - lg == lab;
      const double l = nll(lg, C, lab);
      r.correct += hit;
      r.nll += l;
      r.hit.push_back(hit);
      r.sample_nll.push_back(l);
    }
    r.samples += bs;
    if (on_batch) on_batch(r);
  }
  return r;
}

}  // namespace qcast::nn
