// Model-level PTQ: calibration capture through the runtime's observers, sequential layer quantization,
// packed output. See include/qcast/ptq/model.hpp.
#include "qcast/ptq/model.hpp"
#include "qcast/ptq/method.hpp"
#include "qcast/sniff.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/logits.hpp"
#include "qcast/nn/observer.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/packed.hpp"
#include "qcast/progress.hpp"
#include "qcast/ptq/act_calib.hpp"
#include "qcast/ptq/bias.hpp"
#include "qcast/ptq/ed.hpp"
#include "qcast/ptq/gptq.hpp"
#include "qcast/ptq/lowrank.hpp"
#include "qcast/ptq/mixed.hpp"
#include "qcast/ptq/quarot.hpp"
#include "qcast/ptq/rotate.hpp"
#include "qcast/ptq/rtn.hpp"
#include "qcast/ptq/search.hpp"

namespace qcast::ptq {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Thrown by observers to end a forward pass once the wanted layer inputs are captured.
struct StopForward {};

using nn::LayerRef;
using nn::linears;

/// The recipe with every weight format removed (activation / KV formats and skips kept).
nn::Recipe acts_only(const nn::Recipe& r) {
  nn::Recipe a = r;
  a.weights.clear();
  for (auto& o : a.layers) o.weights = std::string("none");
  return a;
}

void attach_acts(Model& m, const nn::Recipe& r, int threads) {
  const nn::Recipe a = acts_only(r);
  if (m.is_graph) nn::apply_recipe(m.graph, a, threads);
  else m.llama.apply_recipe(a, threads);
}

/// Rows [T, cols] that a graph layer multiplies its weight with (im2col columns for Conv), from the
/// node's raw input, with the node's activation fake-quant applied as the operator does.
std::vector<float> graph_rows(const nn::Node& n, const LayerRef& L, const nn::Value& X, std::int64_t& T) {
  if (X.is_int) throw Error("layer '" + n.name + "': integer input");
  const float* x = X.fp();
  std::vector<float> qbuf;
  if (n.quant.act) {
    int axis = 1;
    if (n.op == "Gemm") axis = n.get_i("transA", 0) ? 0 : 1;
    if (n.op == "MatMul") axis = static_cast<int>(X.shape.size()) - 1;
    qbuf.resize(static_cast<std::size_t>(X.numel()));
    n.quant.act->apply(x, qbuf.data(), X.shape, axis, 1, n.name);
    x = qbuf.data();
  }
  std::vector<float> rows;
  if (n.op == "Conv") {
    if (n.get_i("group", 1) != 1) throw Error("layer '" + n.name + "': grouped convolutions are not supported by calibration");
    const std::int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
    const std::int64_t kh = L.wshape[2], kw = L.wshape[3];
    auto st = n.get_ints("strides", {1, 1});
    auto di = n.get_ints("dilations", {1, 1});
    auto pads = n.get_ints("pads", {0, 0, 0, 0});
    const std::string ap = n.get_s("auto_pad", "NOTSET");
    if (ap == "VALID") pads = {0, 0, 0, 0};
    else if (ap != "NOTSET") throw Error("layer '" + n.name + "': auto_pad " + ap + " is not supported by calibration");
    const std::int64_t P = (H + pads[0] + pads[2] - di[0] * (kh - 1) - 1) / st[0] + 1;
    const std::int64_t Q = (W + pads[1] + pads[3] - di[1] * (kw - 1) - 1) / st[1] + 1;
    const std::int64_t K = C * kh * kw;
    T = N * P * Q;
    rows.assign(static_cast<std::size_t>(T * K), 0.0f);
    for (std::int64_t b = 0; b < N; ++b)
      for (std::int64_t p = 0; p < P; ++p)
        for (std::int64_t q = 0; q < Q; ++q) {
          float* r = rows.data() + ((b * P + p) * Q + q) * K;
          for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t i = 0; i < kh; ++i) {
              const std::int64_t ih = p * st[0] - pads[0] + i * di[0];
              if (ih < 0 || ih >= H) continue;
              for (std::int64_t j = 0; j < kw; ++j) {
                const std::int64_t iw = q * st[1] - pads[1] + j * di[1];
                if (iw < 0 || iw >= W) continue;
                r[(c * kh + i) * kw + j] = x[((b * C + c) * H + ih) * W + iw];
              }
            }
        }
  } else if (n.op == "Gemm" && n.get_i("transA", 0)) {
    const std::int64_t K = X.shape[0], M = X.shape[1];
    T = M;
    rows.resize(static_cast<std::size_t>(M * K));
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t m = 0; m < M; ++m) rows[m * K + k] = x[k * M + m];
  } else {
    T = X.numel() / L.cols;
    rows.assign(x, x + X.numel());
  }
  return rows;
}

/// Calibration data, streamed in batches.
class Calib {
 public:
  Calib(const Model& m, const CalibOptions& o) : o_(o) {
    const nn::DatasetSpec d = nn::parse_dataset_spec(o.spec, o.data_root);
    if (m.is_graph) {
      if (d.kind == nn::DatasetSpec::Kind::Text) throw Error(m.path + " is a graph model; calibration needs an image dataset");
      std::vector<nn::GraphInput> ins;
      for (auto& in : m.graph.inputs) if (!m.graph.is_const(in.id)) ins.push_back(in);
      if (ins.size() != 1) throw Error(m.path + ": calibration supports models with one input");
      const Shape& want = ins[0].shape;
      if (want.empty()) throw Error(m.path + ": the model input has no batch dimension");
      // Only the samples calibration uses are read (offset + samples).
      const std::int64_t need = o.samples > INT64_MAX - o.offset ? -1 : o.offset + o.samples;
      set_ = nn::load_images(d, Shape(want.begin() + 1, want.end()), need);
      total_ = std::max<std::int64_t>(0, std::min(o.samples, set_.size() - o.offset));
      batches_ = (total_ + o.batch - 1) / o.batch;
    } else {
      if (d.kind != nn::DatasetSpec::Kind::Text) throw Error(m.path + " is a language model; calibration needs a text dataset (text:FILE)");
      const nn::Tokenizer tok = nn::load_tokenizer_for(m.path, o.tokenizer, m.llama.cfg.vocab_size);
      const auto stories = nn::load_stories(d.path_of(d.text));
      const int cap = std::min(m.llama.cfg.seq_len, o.max_tokens > 0 ? o.max_tokens : m.llama.cfg.seq_len);
      for (std::int64_t k = o.offset; k < static_cast<std::int64_t>(stories.size()) && static_cast<std::int64_t>(seqs_.size()) < o.samples; ++k) {
        auto t = tok.encode(stories[static_cast<std::size_t>(k)], true, false);
        if (static_cast<int>(t.size()) > cap) t.resize(static_cast<std::size_t>(cap));
        if (t.size() >= 2) seqs_.push_back(std::move(t));
      }
      total_ = static_cast<std::int64_t>(seqs_.size());
      batches_ = total_;
    }
    if (total_ == 0) throw Error(o.spec + ": no calibration samples (offset " + std::to_string(o.offset) + ")");
  }
  std::int64_t batches() const { return batches_; }
  std::int64_t samples() const { return total_; }

  /// The model's outputs on every calibration sample, as log-probabilities (log-softmax of the last axis):
  /// LLaMA one [n-1, vocab] block per sequence (teacher forcing), graph one [batch, classes] block per batch.
  /// Deterministic and independent of `threads`.
  std::vector<std::vector<float>> log_probs(const Model& m, int threads) const {
    const std::int64_t n = m.is_graph ? batches_ : total_;
    std::vector<std::vector<float>> out(static_cast<std::size_t>(n));
    auto log_softmax = [](std::vector<float>& v, std::int64_t C) {
      nn::log_softmax_rows(v.data(), static_cast<std::int64_t>(v.size()) / C, C);
    };
    if (m.is_graph) {  // the graph runs batches on `threads` itself
      for (std::int64_t b = 0; b < n; ++b) {
        const std::int64_t bs = std::min(o_.batch, total_ - b * o_.batch);
        const nn::Value y = m.graph.run({image_batch(b)}, threads)[0];
        out[b].assign(y.fp(), y.fp() + y.numel());
        log_softmax(out[b], y.numel() / bs);
      }
      return out;
    }
    kern::parallel_items(n, threads, [&](std::int64_t k) {  // one sequence per task
      const auto& t = seqs_[static_cast<std::size_t>(k)];
      out[k] = m.llama.forward_seq(std::vector<int>(t.begin(), t.end() - 1));
      log_softmax(out[k], m.llama.cfg.vocab_size);
    });
    return out;
  }

  /// Mean calibration loss: NLL per predicted token (LLaMA) or cross-entropy of the labels per image (graph).
  double loss(const Model& m, int threads) const {
    const auto lp = log_probs(m, threads);
    double sum = 0;
    std::int64_t cnt = 0;
    for (std::size_t k = 0; k < lp.size(); ++k) {
      if (m.is_graph) {
        const std::int64_t start = o_.offset + static_cast<std::int64_t>(k) * o_.batch;
        const std::int64_t bs = std::min(o_.batch, total_ - static_cast<std::int64_t>(k) * o_.batch), C = static_cast<std::int64_t>(lp[k].size()) / bs;
        for (std::int64_t i = 0; i < bs; ++i) sum -= lp[k][static_cast<std::size_t>(i * C + set_.label(start + i, C))];
        cnt += bs;
      } else {
        const auto& t = seqs_[k];
        const std::int64_t V = m.llama.cfg.vocab_size;
        for (std::size_t i = 0; i + 1 < t.size(); ++i) sum -= lp[k][i * V + t[i + 1]];
        cnt += static_cast<std::int64_t>(t.size()) - 1;
      }
    }
    return cnt ? sum / static_cast<double>(cnt) : 0.0;
  }

  /// Mean KL(p_ref || p_model) per output row (token / image) against reference log-probabilities.
  double kl(const Model& m, int threads, const std::vector<std::vector<float>>& ref, std::int64_t classes) const {
    const auto lp = log_probs(m, threads);
    double sum = 0;
    std::int64_t rows = 0;
    for (std::size_t k = 0; k < lp.size(); ++k) {
      const std::size_t R = lp[k].size() / static_cast<std::size_t>(classes);
      for (std::size_t r = 0; r < R; ++r) {
        const float *p = ref[k].data() + r * classes, *q = lp[k].data() + r * classes;
        double d = 0;
        for (std::int64_t c = 0; c < classes; ++c) d += std::exp(static_cast<double>(p[c])) * (static_cast<double>(p[c]) - q[c]);
        sum += d;
      }
      rows += static_cast<std::int64_t>(R);
    }
    return rows ? sum / static_cast<double>(rows) : 0.0;
  }

  /// Image batch b of a graph model's calibration set, as the model's input value.
  nn::Value image_batch(std::int64_t b) const {
    const std::int64_t start = o_.offset + b * o_.batch, bs = std::min(o_.batch, total_ - b * o_.batch);
    Shape xs = set_.sample_shape;
    xs.insert(xs.begin(), bs);
    nn::Value x = nn::Value::floats(xs);
    const std::int64_t per = set_.sample_numel();
    std::copy(set_.data.begin() + start * per, set_.data.begin() + (start + bs) * per, x.f->begin());
    return x;
  }

  /// Runs batch b through the model with the observer; StopForward ends the pass.
  void run(const Model& m, std::int64_t b, int threads, const nn::NodeObserver& gobs, const nn::LinearObserver& lobs) const {
    try {
      if (m.is_graph) {
        nn::run_observed(m.graph, {image_batch(b)}, threads, gobs);
      } else {
        nn::forward_seq_observed(m.llama, seqs_[static_cast<std::size_t>(b)], lobs);
      }
    } catch (const StopForward&) {
    }
  }

 private:
  CalibOptions o_;
  nn::ImageSet set_;
  std::vector<std::vector<int>> seqs_;
  std::int64_t total_ = 0, batches_ = 0;
};

/// Streams the inputs of the layers of `group` (or of every layer when group < 0) over all batches:
/// fn(layer index, rows, T). Stops each pass after the group's input is seen.
void capture(const Model& m, const std::vector<LayerRef>& refs, int group, const Calib& calib, std::int64_t b, int threads,
             const std::function<void(std::size_t, const float*, std::int64_t)>& fn) {
  std::map<std::size_t, std::size_t> by_node;  // graph node -> layer index
  std::map<const nn::Linear*, std::size_t> by_lin;
  std::vector<const nn::Linear*> lins;
  if (!m.is_graph) {
    for (auto& L : m.llama.layers)
      for (const nn::Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w3, &L.w2}) lins.push_back(p);
    lins.push_back(&m.llama.cls);
  }
  for (std::size_t k = 0; k < refs.size(); ++k) {
    if (group >= 0 && refs[k].group != group) continue;
    if (m.is_graph) by_node[refs[k].node] = k;
    else by_lin[lins[static_cast<std::size_t>(refs[k].lin)]] = k;
  }
  nn::NodeObserver gobs = [&](std::size_t idx, const nn::Node& n, const std::vector<const nn::Value*>& ins) {
    auto it = by_node.find(idx);
    if (it == by_node.end()) return;
    std::int64_t T = 0;
    auto rows = graph_rows(n, refs[it->second], *ins[0], T);
    fn(it->second, rows.data(), T);
    if (group >= 0) throw StopForward{};  // members of a group share this input
  };
  nn::LinearObserver lobs = [&](const nn::Linear& L, const float* x, int T) {
    auto it = by_lin.find(&L);
    if (it == by_lin.end()) return;
    fn(it->second, x, T);
    if (group >= 0) throw StopForward{};
  };
  calib.run(m, b, threads, gobs, lobs);
}

/// One batch through the model, reporting the input of each group in `groups` once: fn(group, rows, T).
/// The pass stops after the last of them. A group's members share their input, so the first member seen
/// stands for the group.
void capture_groups(const Model& m, const std::vector<LayerRef>& refs, const std::vector<int>& groups, const Calib& calib, std::int64_t b,
                    int threads, const std::function<void(int, const float*, std::int64_t)>& fn) {
  std::set<int> wanted(groups.begin(), groups.end()), seen;
  const int last = groups.empty() ? -1 : *std::max_element(groups.begin(), groups.end());
  capture(m, refs, -1, calib, b, threads, [&](std::size_t k, const float* X, std::int64_t T) {
    const int g = refs[k].group;
    if (!wanted.count(g) || !seen.insert(g).second) return;
    fn(g, X, T);
    if (g == last) throw StopForward{};
  });
}

/// mixed@BITS: the allocation and what it was chosen from.
struct MixedChoice {
  std::vector<std::string> formats;  ///< per layer ref ("" = left in float)
  bool uniform_fits = false;         ///< the recipe's own formats meet the budget
  std::string json;                  ///< Allocation::to_json plus the sensitivities
  double seconds = 0;
};

MixedChoice mixed_allocation(Model& m, const std::vector<LayerRef>& refs, const std::vector<std::string>& fmt,
                             const QuantizeOptions& opt, const Calib& calib, const Method& pm);

/// mixed@energy= / mixed@cycles=: the same sensitivities, each option priced by the cost model on the
/// accelerator (the layer's energy or cycles with its activations as the recipe gives them); layers the
/// allocation does not choose for (skipped, or not quantizable) keep their recipe price, which the budget
/// pays first.
MixedChoice hardware_allocation(Model& m, const std::vector<LayerRef>& refs, const std::vector<std::string>& fmt,
                                const QuantizeOptions& opt, const Method& pm, std::vector<LayerSensitivity> sens,
                                const std::vector<std::size_t>& idx, double base_loss, const nlohmann::ordered_json& js,
                                Clock::time_point t0) {
  const bool cycles = pm.budget == Method::Budget::Cycles;
  LayerCoster coster(m.path, opt.hardware, cycles, opt.threads);
  std::int64_t n = 1;
  for (const auto& s : sens) n += static_cast<std::int64_t>(s.options.size());
  Progress bar(cycles ? "mixed: cycles" : "mixed: energy", n, opt.progress);
  const double fp32 = coster.fp32_total();
  bar.advance(1);
  std::map<std::string, bool> chosen_here;
  for (auto& s : sens) {
    if (!coster.has(s.name)) throw Error("mixed: layer '" + s.name + "' is not among the cost model's layers of " + m.path);
    chosen_here[s.name] = true;
    for (auto& o : s.options) {
      o.cost = coster.price(s.name, opt.recipe, o.format);
      bar.advance(1);
    }
  }
  bar.finish();
  // The rest of the model (layers with MACs that are not being allocated) at the recipe's formats.
  double fixed = 0;
  for (const auto& name : coster.layers())
    if (!chosen_here.count(name)) fixed += coster.price(name, opt.recipe);
  const double budget = pm.mixed_fraction ? pm.mixed_budget * fp32 : pm.mixed_budget;
  const std::string unit = coster.unit();
  auto describe = [&](double total) {
    char b[96];
    std::snprintf(b, sizeof b, "%.6g %s (%.4g of the fp32 model)", total + fixed, unit.c_str(), (total + fixed) / fp32);
    return std::string(b);
  };
  if (budget <= fixed)
    throw Error("mixed: budget " + describe(budget - fixed) + " does not even pay for the layers it does not allocate (" +
                describe(0) + ")");
  const Allocation a = allocate_cost(sens, budget - fixed, describe);
  double ucost = 0, uerr = 0;
  for (const auto& s : sens) {
    ucost += s.options[0].cost;
    uerr += s.options[0].error;
  }
  MixedChoice mc;
  mc.uniform_fits = ucost <= (budget - fixed) * (1 + 1e-12);
  mc.formats = fmt;
  const bool take_uniform = mc.uniform_fits && uerr <= a.predicted_error;
  if (!take_uniform)
    for (std::size_t i = 0; i < a.recipe.size(); ++i) mc.formats[idx[i]] = a.recipe[i].second;
  const char* key = cycles ? "cycles" : "energy_pj";
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(a.to_json(0));
  j.erase("budget_bits");
  j.erase("cost");
  j["budget"] = {{"kind", cycles ? "cycles" : "energy"}, {key, budget}, {"fraction_of_fp32", budget / fp32},
                 {"arch", opt.hardware.arch}, {"table", opt.hardware.table},
                 {"mapper", {{"samples", opt.hardware.samples}, {"refine", opt.hardware.refine}, {"seed", opt.hardware.seed}}}};
  j[std::string("fp32_") + key] = fp32;
  j[std::string("predicted_") + key] = (take_uniform ? ucost : a.cost) + fixed;
  j[std::string("uniform_") + key] = ucost + fixed;
  j["uniform_predicted_error"] = uerr;
  if (take_uniform) {
    j["predicted_error"] = uerr;
    j["solver"] = "uniform";
    for (const auto& s : sens) j["layers"][s.name] = s.options[0].format;
  }
  nlohmann::ordered_json prices = nlohmann::ordered_json::object();
  for (const auto& s : sens)
    for (const auto& o : s.options) prices[s.name][o.format] = o.cost;
  j[std::string("layer_") + key] = prices;
  j["calib_loss_fp32"] = base_loss;
  j["sensitivity"] = js;
  mc.json = j.dump();
  mc.seconds = since(t0);
  return mc;
}

/// Sensitivity of each layer to each candidate format, measured at the model's output: the mean
/// KL(p_float || p) over the calibration tokens / images when only that layer is RTN-quantized in that
/// format, the rest of the model as it is (float weights, the recipe's activation formats). Unlike a
/// per-layer output-error proxy (tr(dW H dW^T), in each layer's own output units) these numbers are on one
/// scale across layers, so their sum predicts the damage of an allocation to first order. KL rather than the
/// change of the calibration NLL: it is never negative and much less noisy on a few calibration samples
/// (single-layer NLL changes are of the order of their sampling noise, and the solver exploits the
/// negative ones). Then the least-predicted-loss allocation under the budget (mixed.hpp).
MixedChoice mixed_allocation(Model& m, const std::vector<LayerRef>& refs, const std::vector<std::string>& fmt,
                             const QuantizeOptions& opt, const Calib& calib, const Method& pm) {
  const double budget = pm.mixed_bits;
  const auto t0 = Clock::now();
  MixedChoice mc;
  std::vector<std::vector<std::string>> cands(refs.size());
  std::int64_t runs = 1;
  for (std::size_t k = 0; k < refs.size(); ++k) {
    if (fmt[k].empty()) continue;
    cands[k] = {fmt[k]};  // option 0: the layer's own format
    for (auto& f : opt.mixed_formats) if (std::find(cands[k].begin(), cands[k].end(), f) == cands[k].end()) cands[k].push_back(f);
    runs += static_cast<std::int64_t>(cands[k].size());
  }
  Progress bar("mixed: sensitivities", runs, opt.progress);
  const double base = calib.loss(m, opt.threads);
  const auto ref = calib.log_probs(m, opt.threads);
  const std::int64_t classes = m.is_graph ? static_cast<std::int64_t>(ref[0].size()) / std::min(opt.calib.batch, calib.samples())
                                          : m.llama.cfg.vocab_size;
  bar.advance(1);
  std::vector<LayerSensitivity> sens;
  std::vector<std::size_t> idx;
  nlohmann::ordered_json js = nlohmann::ordered_json::object();
  for (std::size_t k = 0; k < refs.size(); ++k) {
    if (fmt[k].empty()) continue;
    const LayerRef& R = refs[k];
    const std::vector<float> W = m.weights(R);
    LayerSensitivity s;
    s.name = R.name;
    s.params = R.rows * R.cols;
    for (const auto& fn : cands[k]) {
      const Format f = Format::parse(fn);
      m.set_weights(R, rtn(f, W.data(), R.rows, R.cols).values);
      s.options.push_back({fn, bits_per_weight(f, R.rows, R.cols), calib.kl(m, opt.threads, ref, classes)});
      js[R.name][fn] = s.options.back().error;
      bar.advance(1);
    }
    m.set_weights(R, W);
    sens.push_back(std::move(s));
    idx.push_back(k);
  }
  bar.finish();
  if (pm.budget != Method::Budget::Bits) return hardware_allocation(m, refs, fmt, opt, pm, std::move(sens), idx, base, js, t0);
  const Allocation a = allocate(sens, budget);
  double ubits = 0, P = 0, uerr = 0;
  for (const auto& s : sens) {
    ubits += s.options[0].bits * static_cast<double>(s.params);
    uerr += s.options[0].error;
    P += static_cast<double>(s.params);
  }
  mc.uniform_fits = ubits <= budget * P * (1 + 1e-12);
  mc.formats = fmt;
  // The solvers may miss the uniform choice (rounded DP costs, greedy): it is an allocation too.
  const bool take_uniform = mc.uniform_fits && uerr <= a.predicted_error;
  if (!take_uniform)
    for (std::size_t i = 0; i < a.recipe.size(); ++i) mc.formats[idx[i]] = a.recipe[i].second;
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(a.to_json(budget));
  j["uniform_avg_bits"] = P > 0 ? ubits / P : 0.0;
  j["uniform_predicted_error"] = uerr;
  if (take_uniform) {  // the allocation that is used
    j["predicted_error"] = uerr;
    j["avg_bits"] = ubits / P;
    j["solver"] = "uniform";
    for (const auto& s : sens) j["layers"][s.name] = s.options[0].format;
  }
  j["calib_loss_fp32"] = base;
  j["sensitivity"] = js;  // mean KL(float || quantized) per layer and format (RTN, that layer alone)
  mc.json = j.dump();
  mc.seconds = since(t0);
  return mc;
}

}  // namespace

void run_calibration(const Model& m, const CalibOptions& o, int threads, const nn::NodeObserver& gobs, const nn::LinearObserver& lobs,
                     const std::function<void()>& on_batch) {
  const Calib calib(m, o);
  for (std::int64_t b = 0; b < calib.batches(); ++b) {
    calib.run(m, b, threads, gobs, lobs);
    if (on_batch) on_batch();
  }
}

std::vector<float> effective_weights(const QuantizedLayer& L) {
  std::vector<float> W = L.q.values;
  if (L.rotate_block > 0) {
    const Rotation r = Rotation::make(L.cols, L.rotate_block, true, L.rotate_seed);
    r.apply_inverse(W.data(), L.rows);
  }
  if (!L.A.empty()) {
    for (std::int64_t i = 0; i < L.rows; ++i)
      for (std::int64_t j = 0; j < L.cols; ++j) {
        float s = 0.0f;
        for (int k = 0; k < L.rank; ++k) s += L.A[i * L.rank + k] * L.B[k * L.cols + j];
        W[i * L.cols + j] += s;
      }
  }
  return W;
}

QuantizeResult quantize_model(Model& m, const QuantizeOptions& opt) {
  const auto t_all = Clock::now();
  QuantizeResult res;
  res.recipe = opt.recipe;
  // The method string is parsed once (qcast/ptq/method.hpp): quarot+ rotates the float model first and
  // the per-layer method then quantizes the rotated weights; +bias corrects biases after each layer.
  const Method pm = parse_method(opt.method);
  const std::string& method = pm.name();
  const bool use_quarot = pm.quarot, bias_corr = pm.bias;
  if (opt.rotate_block < 1 || opt.rotate_block > 128 || (opt.rotate_block & (opt.rotate_block - 1)) != 0)
    throw Error("rotate block " + std::to_string(opt.rotate_block) + " is not a power of two in [1, 128]");
  set_blas_threads(opt.threads);
  if (use_quarot) {
    if (m.is_graph) throw Error(m.path + ": method " + opt.method + ": quarot+ rotates LLaMA residual streams; it needs a LLaMA model");
    QuarotOptions qo;
    qo.seed = opt.seed;
    res.quarot_json = quarot(m.llama, qo).to_json();
  }

  // The float model: error diffusion's targets and bias correction's reference means.
  const Model fp = (pm.needs(kNeedsFloatInputs) || bias_corr) ? m : Model{};
  attach_acts(m, opt.recipe, opt.threads);
  // Static activation scales: calibrated on the float weights so that the weight passes see static
  // quantization, and again on the quantized weights at the end (the stored, final ranges).
  const bool static_acts = opt.recipe.has_static_acts();
  if (static_acts) calibrate_activations(m, opt.calib, opt.threads, opt.progress);
  const std::vector<LayerRef> refs = m.layers();
  {
    std::vector<std::string> names;
    for (auto& L : refs) names.push_back(L.name);
    const std::string w = nn::unmatched_warning(opt.recipe, names);
    (void)w;
  }
  // Per-layer weight format from the recipe ("" = left in full precision).
  std::vector<std::string> fmt(refs.size());
  for (std::size_t k = 0; k < refs.size(); ++k) {
    std::string w, a;
    opt.recipe.formats_for(refs[k].name, w, a);
    if (w == "none" || w == "fp32") w.clear();
    fmt[k] = w;
  }
  Calib calib(m, opt.calib);
  res.calib_samples = calib.samples();
  const int ngroups = refs.empty() ? 0 : refs.back().group + 1;
  Progress bar("quantize", static_cast<std::int64_t>(ngroups) * calib.batches() * (method == "mixed" ? 2 : 1), opt.progress);

  // Methods that read no calibration inputs (rtn, lowrank) and no bias correction: the inputs only feed the
  // reported per-layer errors. Quantize every layer first, then capture each group's inputs from the finished
  // model: a group's input depends only on the groups before it, so these are the inputs (and the errors, bit
  // for bit) that the sequential passes below would have seen, in a few forward passes instead of one per
  // group. Groups are taken in waves whose kept weights and Hessians fit opt.capture_wave_bytes.
  const bool inputs_free = pm.info->needs == kNeedsNothing && !bias_corr && !opt.sequential_capture;
  // The method on layer R's weights W (with whatever inputs it reads), its codes settled: the weights go into
  // the model through the packed codes, exactly as load_quantized does.
  auto quantize_layer = [&](const Model& mm, const LayerRef& R, const std::string& fmt, const std::vector<float>& W,
                            const HessianAccumulator* H, const InputStats* stats, const EdAccumulator* ed) {
    LayerJob job;
    job.format = Format::parse(fmt);
    job.W = W.data();
    job.rows = R.rows;
    job.cols = R.cols;
    if (H && pm.needs(kNeedsHessian)) job.H = &H->H();  // built on first use (HessianAccumulator::H)
    job.stats = stats;
    job.ed = ed;
    job.threads = opt.threads;
    job.rotate_block = opt.rotate_block;
    job.seed = opt.seed;
    job.rank = opt.rank;
    job.act_order = opt.act_order;
    job.stored = mm.stored_blocks(R);
    LayerQuant lq = pm.info->run(job);
    QuantizedLayer Q;
    Q.name = R.name;
    Q.rows = R.rows;
    Q.cols = R.cols;
    Q.q = std::move(lq.q);
    Q.rotate_block = lq.rotate_block;
    Q.rotate_seed = lq.rotate_seed;
    Q.A = std::move(lq.A);
    Q.B = std::move(lq.B);
    Q.rank = lq.rank;
    Q.q.settle(opt.threads);
    return Q;
  };
  auto quantize_then_measure = [&](Model& mm, const std::vector<std::string>& fm, QuantizeResult& rr) {
    // Groups with a quantized member, and each one's bytes while its wave is open: the members' weights
    // before quantization (kept until their errors are taken) and a Hessian of at most cols^2 floats.
    std::vector<int> todo;
    std::vector<double> held;
    for (int g = 0; g < ngroups; ++g) {
      double bytes = 0;
      bool any = false;
      for (std::size_t k = 0; k < refs.size(); ++k) {
        if (refs[k].group != g) continue;
        if (bytes == 0) bytes = 4.0 * static_cast<double>(refs[k].cols) * static_cast<double>(refs[k].cols);
        if (fm[k].empty()) continue;
        any = true;
        bytes += 4.0 * static_cast<double>(refs[k].rows) * static_cast<double>(refs[k].cols);
      }
      if (any) {
        todo.push_back(g);
        held.push_back(bytes);
      } else {
        bar.advance(calib.batches());
      }
    }
    for (std::size_t w0 = 0; w0 < todo.size();) {
      std::size_t w1 = w0;
      double bytes = 0;
      do bytes += held[w1++];  // at least one group per wave
      while (w1 < todo.size() && bytes + held[w1] <= opt.capture_wave_bytes);
      const std::vector<int> wave(todo.begin() + static_cast<std::ptrdiff_t>(w0), todo.begin() + static_cast<std::ptrdiff_t>(w1));
      // Quantize the wave's layers, in order, into the model.
      std::map<std::size_t, std::pair<std::size_t, std::vector<float>>> before;  // layer -> (rr.layers entry, W)
      std::map<int, HessianAccumulator> H;
      for (int g : wave)
        for (std::size_t k = 0; k < refs.size(); ++k) {
          if (refs[k].group != g) continue;
          H.emplace(g, HessianAccumulator(refs[k].cols));
          if (fm[k].empty()) continue;
          const LayerRef& R = refs[k];
          const auto t1 = Clock::now();
          std::vector<float> W = mm.weights(R);
          QuantizedLayer Q = quantize_layer(mm, R, fm[k], W, nullptr, nullptr, nullptr);
          mm.set_weights(R, effective_weights(Q));
          Q.seconds = since(t1);
          rr.seconds_quant += Q.seconds;
          before[k] = {rr.layers.size(), std::move(W)};
          rr.layers.push_back(std::move(Q));
        }
      // One pass per batch through the model as it now is, to the wave's last group.
      const auto t0 = Clock::now();
      for (std::int64_t b = 0; b < calib.batches(); ++b) {
        capture_groups(mm, refs, wave, calib, b, opt.threads, [&](int g, const float* X, std::int64_t T) {
          H.at(g).add(X, T);
          rr.calib_rows += T;
        });
        bar.advance(static_cast<std::int64_t>(wave.size()));
      }
      rr.seconds_calib += since(t0);
      for (auto& [k, entry] : before) {
        QuantizedLayer& Q = rr.layers[entry.first];
        const HessianAccumulator& Hg = H.at(refs[k].group);
        const std::vector<float> eff = effective_weights(Q);
        Q.error = Hg.error(entry.second.data(), eff.data(), Q.rows, opt.threads);
        const double ref = Hg.error(entry.second.data(), nullptr, Q.rows, opt.threads);
        Q.rel_error = ref > 0 ? Q.error / ref : 0.0;
      }
      w0 = w1;
    }
  };

  // Quantizes the layers of `mm` with formats `fm`, group by group in execution order, each against the
  // inputs that the already-quantized prefix produces; per-layer results into `rr`.
  // (body kept at the indentation of the loop it was)
  auto quantize_layers = [&](Model& mm, const std::vector<std::string>& fm, QuantizeResult& rr) {
  if (inputs_free) return quantize_then_measure(mm, fm, rr);
  for (int g = 0; g < ngroups; ++g) {
    std::vector<std::size_t> members;
    for (std::size_t k = 0; k < refs.size(); ++k) if (refs[k].group == g) members.push_back(k);
    const std::int64_t cols = refs[members[0]].cols;
    bool any = false;
    for (auto k : members) any = any || !fm[k].empty();
    if (!any) { bar.advance(calib.batches()); continue; }
    // Stream this group's inputs as produced by the already-quantized prefix.
    const auto t0 = Clock::now();
    HessianAccumulator H(cols);
    InputStats stats(cols);
    std::unique_ptr<EdAccumulator> ed;
    if (pm.needs(kNeedsFloatInputs)) ed = std::make_unique<EdAccumulator>(cols);
    std::unique_ptr<InputStats> fstats;  // the group's input statistics in the float model
    bool biased = false;
    for (auto k : members) biased = biased || (!fm[k].empty() && mm.has_bias(refs[k]));
    if (bias_corr && biased) fstats = std::make_unique<InputStats>(cols);
    std::vector<float> xf;
    for (std::int64_t b = 0; b < calib.batches(); ++b) {
      if (ed || fstats) {
        capture(fp, refs, g, calib, b, opt.threads, [&](std::size_t, const float* X, std::int64_t T) { xf.assign(X, X + T * cols); });
      }
      capture(mm, refs, g, calib, b, opt.threads, [&](std::size_t, const float* X, std::int64_t T) {
        H.add(X, T);
        stats.add(X, T);
        if (ed) ed->add(xf.data(), X, T);
        if (fstats) fstats->add(xf.data(), T);
        rr.calib_rows += T;
      });
      bar.advance(1);
    }
    rr.seconds_calib += since(t0);
    for (auto k : members) {
      if (fm[k].empty()) continue;
      const LayerRef& R = refs[k];
      const auto t1 = Clock::now();
      const std::vector<float> W = mm.weights(R);
      QuantizedLayer Q = quantize_layer(mm, R, fm[k], W, &H, &stats, ed.get());
      std::vector<float> eff = effective_weights(Q);
      if (fstats && mm.has_bias(R)) {
        const auto mf = fstats->mean(), mq = stats.mean();
        const auto b0 = mm.bias(R);
        Q.bias = correct_bias(W.data(), eff.data(), R.rows, R.cols, mf.data(), mq.data(), b0.data());
        mm.set_bias(R, Q.bias);
      }
      Q.error = H.error(W.data(), eff.data(), R.rows, opt.threads);
      const double ref = H.error(W.data(), nullptr, R.rows, opt.threads);
      Q.rel_error = ref > 0 ? Q.error / ref : 0.0;
      mm.set_weights(R, std::move(eff));
      Q.seconds = since(t1);
      rr.seconds_quant += Q.seconds;
      rr.layers.push_back(std::move(Q));
    }
  }
  };

  if (method == "mixed") {
    const Model orig = m;  // for the uniform alternative
    const MixedChoice mc = mixed_allocation(m, refs, fmt, opt, calib, pm);
    quantize_layers(m, mc.formats, res);
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(mc.json);
    const double loss_alloc = calib.loss(m, opt.threads);
    j["calib_loss_allocation"] = loss_alloc;
    std::vector<std::string> chosen = mc.formats;
    j["chosen"] = "allocation";
    // The uniform recipe is itself an allocation under the budget when it fits: the bits are only
    // redistributed if that measurably lowers the calibration loss after the same GPTQ.
    if (mc.uniform_fits && mc.formats != fmt) {
      Model mu = orig;
      QuantizeResult ru;
      quantize_layers(mu, fmt, ru);
      const double loss_uniform = calib.loss(mu, opt.threads);
      j["calib_loss_uniform"] = loss_uniform;
      if (loss_uniform <= loss_alloc) {
        m = std::move(mu);
        ru.seconds_calib += res.seconds_calib;
        ru.seconds_quant += res.seconds_quant;
        res.layers = std::move(ru.layers);
        res.calib_rows = ru.calib_rows;
        res.seconds_calib = ru.seconds_calib;
        res.seconds_quant = ru.seconds_quant;
        chosen = fmt;
        j["chosen"] = "uniform";
      }
    }
    res.mixed_json = j.dump(2);
    std::vector<nn::LayerOverride> ov;
    for (std::size_t k = 0; k < refs.size(); ++k) {
      if (chosen[k].empty()) continue;
      nn::LayerOverride o;
      o.pattern = refs[k].name;
      o.weights = chosen[k];
      std::string w, act, obs;
      opt.recipe.formats_for(refs[k].name, w, act, obs);
      o.acts = act.empty() ? std::string("none") : act;
      o.act_observer = obs;
      ov.push_back(o);
    }
    res.recipe.layers.insert(res.recipe.layers.begin(), ov.begin(), ov.end());
    res.seconds_calib += mc.seconds;
  } else {
    quantize_layers(m, fmt, res);
  }
  bar.finish();
  if (static_acts) {
    const auto t0 = Clock::now();
    res.recipe.act_ranges = calibrate_activations(m, opt.calib, opt.threads, opt.progress);
    res.seconds_calib += since(t0);
  }
  res.seconds_total = since(t_all);
  return res;
}

// ---------------------------------------------------------------------------------------------
// Recipe JSON and the packed file.

void write_quantized(const std::string& path, const Model& m, const QuantizeResult& r, const std::string& method) {
  PackedFile pf;
  json layers = json::array();
  for (const auto& L : r.layers) {
    pf.quantized.emplace_back(L.name, L.q.encode());
    json e = {{"name", L.name}, {"rows", L.rows}, {"cols", L.cols}, {"format", L.q.format.name()},
              {"rotate_block", L.rotate_block}, {"rotate_seed", L.rotate_seed}, {"rank", L.rank}};
    layers.push_back(e);
    if (!L.A.empty()) {
      Tensor a = Tensor::zeros_f32({L.rows, L.rank});
      std::copy(L.A.begin(), L.A.end(), a.mutable_f32());
      Tensor b = Tensor::zeros_f32({L.rank, L.cols});
      std::copy(L.B.begin(), L.B.end(), b.mutable_f32());
      pf.plain.push_back({L.name + ".lowrank_A", a});
      pf.plain.push_back({L.name + ".lowrank_B", b});
    }
    if (!L.bias.empty()) {
      Tensor b = Tensor::zeros_f32({static_cast<std::int64_t>(L.bias.size())});
      std::copy(L.bias.begin(), L.bias.end(), b.mutable_f32());
      pf.plain.push_back({L.name + ".bias", b});
    }
  }
  if (!r.quarot_json.empty()) {
    // The rotation changed tensors that are not quantized layers: store them (fp32) so the file is
    // self-contained; the base model's copies are stale.
    auto plain = [&](const std::string& name, const std::vector<float>& v, Shape shape) {
      Tensor t = Tensor::zeros_f32(std::move(shape));
      std::copy(v.begin(), v.end(), t.mutable_f32());
      pf.plain.push_back({"quarot." + name, t});
    };
    const nn::Llama& l = m.llama;
    const std::int64_t D = l.cfg.dim;
    plain("tok_embeddings", l.tok_emb, {l.cfg.vocab_size, D});
    for (std::size_t k = 0; k < l.layers.size(); ++k) {
      plain("layers." + std::to_string(k) + ".attention_norm", l.layers[k].rms_att, {D});
      plain("layers." + std::to_string(k) + ".ffn_norm", l.layers[k].rms_ffn, {D});
    }
    plain("norm", l.rms_final, {D});
    for (const nn::Linear* lin : linears(const_cast<nn::Llama&>(l))) {
      bool quantized = false;
      for (const auto& L : r.layers) quantized = quantized || L.name == lin->name;
      if (!quantized) plain(lin->name, lin->w_fp32.empty() ? lin->w : lin->w_fp32, {lin->out, lin->in});
    }
    pf.metadata["quantize.quarot"] = r.quarot_json;
  }
  pf.metadata["quantize.model"] = fs::absolute(m.path).lexically_normal().string();
  pf.metadata["quantize.method"] = method;
  pf.metadata["quantize.recipe"] = nn::recipe_to_json(r.recipe);
  pf.metadata["quantize.layers"] = layers.dump();
  write_packed(path, pf);
}

bool is_quantized_model(const std::string& path) {
  return sniff_model_file(path) == FileKind::QcastQuantized;
}

namespace {
QuantizedFileInfo info_from_metadata(const std::map<std::string, std::string>& md, const std::string& path,
                                     const std::string& model_override) {
  auto meta = [&](const char* k) {
    auto it = md.find(k);
    if (it == md.end()) throw Error(path + ": not a qcast quantize output (no " + k + " metadata)");
    return it->second;
  };
  QuantizedFileInfo info;
  info.base_model = model_override.empty() ? meta("quantize.model") : model_override;
  if (!fs::exists(info.base_model)) throw Error(path + ": its base model " + info.base_model + " does not exist (pass --base-model)");
  info.method = meta("quantize.method");
  info.recipe = nn::parse_recipe(meta("quantize.recipe"), "quantized model metadata (quantize.recipe)");
  return info;
}
}  // namespace

QuantizedFileInfo read_quantized_info(const std::string& path, const std::string& model_override) {
  return info_from_metadata(read_safetensors(path).metadata, path, model_override);
}

Model load_quantized(const std::string& path, const std::string& model_override, std::string* method, nn::Recipe* recipe) {
  const PackedFile pf = read_packed(path);
  const QuantizedFileInfo info = info_from_metadata(pf.metadata, path, model_override);
  Model m = load_model(info.base_model);
  const nn::Recipe& rec = info.recipe;
  if (method) *method = info.method;
  if (recipe) *recipe = rec;
  attach_acts(m, rec, 1);
  std::map<std::string, const Encoded*> enc;
  for (auto& [n, e] : pf.quantized) enc[n] = &e;
  std::map<std::string, const Tensor*> plain;
  for (auto& t : pf.plain) plain[t.name] = &t.tensor;
  if (pf.metadata.count("quantize.quarot")) {
    // quarot+: the rotated embedding, unit norms and unquantized linears replace the base model's.
    if (m.is_graph) throw Error(path + ": quarot metadata on a graph model");
    auto get = [&](const std::string& name, std::size_t n) {
      auto it = plain.find("quarot." + name);
      if (it == plain.end()) throw Error(path + ": quarot model lacks tensor quarot." + name);
      const Tensor t = it->second->to_f32();
      if (static_cast<std::size_t>(t.numel()) != n)
        throw Error(path + ": tensor quarot." + name + " has " + std::to_string(t.numel()) + " values, the model needs " + std::to_string(n));
      return std::vector<float>(t.f32(), t.f32() + n);
    };
    nn::Llama& l = m.llama;
    const std::size_t D = static_cast<std::size_t>(l.cfg.dim);
    l.tok_emb = get("tok_embeddings", l.tok_emb.size());
    for (std::size_t k = 0; k < l.layers.size(); ++k) {
      l.layers[k].rms_att = get("layers." + std::to_string(k) + ".attention_norm", D);
      l.layers[k].rms_ffn = get("layers." + std::to_string(k) + ".ffn_norm", D);
    }
    l.rms_final = get("norm", D);
    l.cfg.shared_classifier = false;
    for (nn::Linear* lin : linears(l))
      if (plain.count("quarot." + lin->name)) {
        // attach_acts already ran: this layer keeps its activation format; its fp32 weight is the rotated one.
        lin->w = get(lin->name, static_cast<std::size_t>(lin->out) * lin->in);
        lin->w_fp32 = lin->w;
      }
  }
  std::map<std::string, LayerRef> refs;
  for (auto& L : m.layers()) refs[L.name] = L;
  json layers;
  try {
    auto it = pf.metadata.find("quantize.layers");
    if (it == pf.metadata.end()) throw Error(path + ": not a qcast quantize output (no quantize.layers metadata)");
    layers = json::parse(it->second);
  } catch (const json::exception& e) {
    throw Error(path + ": bad quantize.layers metadata: " + e.what());
  }
  for (const auto& e : layers) {
    QuantizedLayer L;
    L.name = e.at("name").get<std::string>();
    L.rows = e.at("rows").get<std::int64_t>();
    L.cols = e.at("cols").get<std::int64_t>();
    L.rotate_block = e.value("rotate_block", 0);
    L.rotate_seed = e.value("rotate_seed", std::uint64_t{0});
    L.rank = e.value("rank", 0);
    auto r = refs.find(L.name);
    auto c = enc.find(L.name);
    if (r == refs.end()) throw Error(path + ": layer '" + L.name + "' is not in " + info.base_model);
    if (c == enc.end()) throw Error(path + ": no packed tensor for layer '" + L.name + "'");
    if (r->second.rows != L.rows || r->second.cols != L.cols)
      throw Error(path + ": layer '" + L.name + "' is " + std::to_string(L.rows) + "x" + std::to_string(L.cols) + ", the model's is " +
                  std::to_string(r->second.rows) + "x" + std::to_string(r->second.cols));
    L.q.values.resize(static_cast<std::size_t>(L.rows * L.cols));
    decode(*c->second, L.q.values.data());
    if (L.rank > 0) {
      auto a = plain.find(L.name + ".lowrank_A"), b = plain.find(L.name + ".lowrank_B");
      if (a == plain.end() || b == plain.end()) throw Error(path + ": layer '" + L.name + "' lacks its low-rank factors");
      const Tensor af = a->second->to_f32(), bf = b->second->to_f32();
      L.A.assign(af.f32(), af.f32() + L.rows * L.rank);
      L.B.assign(bf.f32(), bf.f32() + L.rank * L.cols);
    }
    m.set_weights(r->second, effective_weights(L));
    if (auto b = plain.find(L.name + ".bias"); b != plain.end()) {  // bias correction
      if (!m.has_bias(r->second)) throw Error(path + ": layer '" + L.name + "' has a corrected bias but no bias in " + info.base_model);
      const Tensor bf = b->second->to_f32();
      m.set_bias(r->second, std::vector<float>(bf.f32(), bf.f32() + bf.numel()));
    }
  }
  return m;
}

}  // namespace qcast::ptq
