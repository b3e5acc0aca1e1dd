// Model evaluation: see include/qcast/nn/evaluate.hpp.
#include "qcast/nn/evaluate.hpp"

#include <algorithm>
#include <cmath>

#include "qcast/error.hpp"
#include "qcast/nn/classify.hpp"

namespace qcast::nn {

ClassifierEval evaluate_classifier(const Graph& g, const DatasetSpec& d, std::int64_t limit, std::int64_t batch, int threads,
                                   const std::string& what, const std::function<void(const ClassifyResult&, std::int64_t)>& on_batch) {
  if (d.kind == DatasetSpec::Kind::Text) throw Error(what + " is a graph model; text datasets need a language model");
  if (batch < 1) throw Error("batch size must be at least 1");
  std::vector<GraphInput> ins;
  for (auto& in : g.inputs) if (!g.is_const(in.id)) ins.push_back(in);
  if (ins.size() != 1) throw Error(what + ": eval supports models with one input, this one has " + std::to_string(ins.size()));
  const Shape want = ins[0].shape;
  if (want.empty()) throw Error(what + ": the model input has no batch dimension");
  ImageSet s = load_images(d, Shape(want.begin() + 1, want.end()), limit > 0 ? limit : -1);
  const ClassifyResult c = classify(g, s, batch, threads, what, [&](const ClassifyResult& so_far) {
    if (on_batch) on_batch(so_far, s.size());
  });
  ClassifierEval r;
  r.samples = c.samples;
  r.correct = c.correct;
  r.nll = c.mean_nll();
  r.hit = c.hit;
  r.sample_nll = c.sample_nll;
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
