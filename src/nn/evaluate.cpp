// Model evaluation: see include/qcast/nn/evaluate.hpp.
#include "qcast/nn/evaluate.hpp"

#include <algorithm>
#include <cmath>

#include "qcast/error.hpp"

namespace qcast::nn {

ClassifierEval evaluate_classifier(const Graph& g, const DatasetSpec& d, std::int64_t limit, std::int64_t batch, int threads,
                                   const std::string& what, const std::function<void(std::int64_t, std::int64_t)>& on_batch) {
  if (d.kind == DatasetSpec::Kind::Text) throw Error(what + " is a graph model; text datasets need a language model");
  if (batch < 1) throw Error("batch size must be at least 1");
  std::vector<GraphInput> ins;
  for (auto& in : g.inputs) if (!g.is_const(in.id)) ins.push_back(in);
  if (ins.size() != 1) throw Error(what + ": eval supports models with one input, this one has " + std::to_string(ins.size()));
  const Shape want = ins[0].shape;
  if (want.empty()) throw Error(what + ": the model input has no batch dimension");
  ImageSet s = load_images(d, Shape(want.begin() + 1, want.end()), limit > 0 ? limit : -1);
  const std::int64_t n = s.size();
  const std::int64_t per = s.sample_numel();
  ClassifierEval r;
  r.samples = n;
  r.hit.assign(static_cast<std::size_t>(n), 0);
  r.sample_nll.assign(static_cast<std::size_t>(n), 0.0);
  double nll = 0;
  for (std::int64_t b = 0; b < n; b += batch) {
    const std::int64_t bs = std::min(batch, n - b);
    Shape xs = s.sample_shape;
    xs.insert(xs.begin(), bs);
    Value x = Value::floats(xs);
    std::copy(s.data.begin() + b * per, s.data.begin() + (b + bs) * per, x.f->begin());
    auto out = g.run({x}, threads);
    const Value& y = out[0];
    if (y.shape.size() != 2 || y.shape[0] != bs) throw Error(what + ": expected logits [batch, classes], got " + shape_str(y.shape));
    const std::int64_t C = y.shape[1];
    for (std::int64_t i = 0; i < bs; ++i) {
      const float* lg = y.fp() + i * C;
      const std::int64_t arg = std::max_element(lg, lg + C) - lg;
      const std::int64_t lab = s.label(b + i, C);
      if (arg == lab) {
        ++r.correct;
        r.hit[static_cast<std::size_t>(b + i)] = 1;
      }
      double mx = lg[arg], z = 0;
      for (std::int64_t k = 0; k < C; ++k) z += std::exp(static_cast<double>(lg[k]) - mx);
      const double l = -(lg[lab] - mx - std::log(z));
      r.sample_nll[static_cast<std::size_t>(b + i)] = l;
      nll += l;
    }
    if (on_batch) on_batch(bs, n);
  }
  r.nll = n ? nll / static_cast<double>(n) : 0.0;
  return r;
}

std::vector<std::string> eval_stories(const DatasetSpec& d, std::int64_t limit, const std::string& what) {
  if (d.kind != DatasetSpec::Kind::Text) throw Error(what + " is a language model; it needs a text dataset (text:FILE)");
  auto stories = load_stories(d.path_of(d.text));
  if (limit > 0 && static_cast<std::int64_t>(stories.size()) > limit) stories.resize(static_cast<std::size_t>(limit));
  if (stories.empty()) throw Error(d.path_of(d.text) + ": no stories (text separated by <|endoftext|>)");
  return stories;
}

}  // namespace qcast::nn
