#include "nn/conv_fast.hpp"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "nn/ops.hpp"
#include "qcast/error.hpp"

namespace qcast::nn {

/// Prepared convolutions of one graph, keyed by node, shapes, threads and the weight buffers they were
/// made from (so a graph whose weights were re-quantized never runs stale ones).
struct ConvCache {
  struct Entry {
    std::weak_ptr<FloatBuf> weights, bias;  // what the convolution was made from
    std::optional<kern::dnnl::Conv> conv;   // empty: oneDNN refused the shape (the node runs as before)
  };
  using Key = std::tuple<std::size_t, const FloatBuf*, const FloatBuf*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,
                         bool, bool, int>;
  std::mutex mu;
  std::map<Key, Entry> entries;
};

std::shared_ptr<ConvCache> new_conv_cache() { return std::make_shared<ConvCache>(); }

namespace detail {
namespace {

// At most this many prepared convolutions per graph: graphs whose weights are swapped again and again
// (a sweep over recipes) start over instead of keeping every old copy of the weights.
constexpr std::size_t kMaxCacheEntries = 4096;
// Convolutions below this many multiply-accumulates run on the plain operators (set_fast_convs).
std::atomic<std::int64_t> g_min_macs{std::int64_t(1) << 20};
std::atomic<std::int64_t> g_runs{0};

// The oneDNN path's convolution for node k with these inputs, made once; nullopt when oneDNN has none.
std::optional<kern::dnnl::Conv> prepared(const Graph& g, std::size_t k, const kern::dnnl::ConvSpec& spec, const Value& w, const Value* b,
                                         int threads) {
  ConvCache& cache = *g.conv_cache;
  const ConvCache::Key key{k, w.f.get(), b ? b->f.get() : nullptr, spec.N, spec.H, spec.W, spec.C, spec.sum, spec.relu, threads};
  {
    std::lock_guard lock(cache.mu);
    auto it = cache.entries.find(key);
    if (it != cache.entries.end()) {
      const auto& e = it->second;
      // The same buffers still alive: not a new buffer that happens to sit at a freed one's address.
      if (e.weights.lock() == w.f && (b ? e.bias.lock() == b->f : true) && (!e.conv || e.conv->spec() == spec)) return e.conv;
      cache.entries.erase(it);
    }
  }
  ConvCache::Entry e;
  e.weights = w.f;
  if (b) e.bias = b->f;
  try {
    e.conv.emplace(spec, w.fp(), b ? b->fp() : nullptr, threads);
  } catch (const Error&) {
    e.conv.reset();
  }
  std::lock_guard lock(cache.mu);
  if (cache.entries.size() >= kMaxCacheEntries) cache.entries.clear();
  cache.entries[key] = e;
  return e.conv;
}

std::atomic<bool>& fast_convs_on() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("QCAST_DNNL");
    return !(v && std::string(v) == "0");
  }()};
  return on;
}

// True if fake-quant along the channel axis gives the same values in NHWC ([N*H*W, C], axis 1) as in
// NCHW (axis 1): scales per block of channels, per channel, per tensor or none. Tiles, and an axis the
// format names itself, depend on the layout.
bool layout_free(const Format& f) {
  const Scaling& s = f.scaling();
  return s.kind != ScaleKind::Tile && !s.axis_explicit;
}

}  // namespace

void set_fast_convs_impl(bool on, std::int64_t min_macs) {
  fast_convs_on() = on;
  g_min_macs = min_macs;
}
std::int64_t fast_conv_runs_impl() { return g_runs.load(); }

FastConvs::FastConvs(const Graph& g, int threads, bool observed) : g_(g), threads_(threads < 1 ? 1 : threads) {
  const std::size_t nv = g.value_names.size(), nn = g.nodes.size();
  order_.resize(nn);
  for (std::size_t k = 0; k < nn; ++k) order_[k] = k;
  // An observer sees every node's inputs as plain tensors, in order: nothing fused, nothing blocked.
  bool any = false;
  for (const Node& n : g.nodes) any = any || n.op == "Conv";
  enabled_ = !observed && g.conv_cache && fast_convs_on() && any && kern::dnnl::available();
  if (enabled_) {
    uses_.assign(nv, 0);
    consumer_.assign(nv, -1);
    std::vector<int> producer(nv, -1);
    for (std::size_t k = 0; k < nn; ++k) {
      for (int id : g.nodes[k].inputs)
        if (id >= 0) {
          ++uses_[id];
          consumer_[id] = static_cast<int>(k);
        }
      for (int id : g.nodes[k].outputs) producer[id] = static_cast<int>(k);
    }
    for (int id : g.outputs) ++uses_[id];
    for (std::size_t id = 0; id < nv; ++id)
      if (uses_[id] != 1) consumer_[id] = -1;
    // Convs that wait for their residual's other operand (ResNet's shortcut, computed after the Conv in
    // the exporter's order). Delaying a Conv is always valid: its only reader comes later still.
    std::vector<std::vector<std::size_t>> after(nn);
    std::vector<bool> deferred(nn, false);
    for (std::size_t k = 0; k < nn; ++k) {
      const Node& n = g.nodes[k];
      if (n.op != "Conv" || n.outputs.size() != 1) continue;
      const int j = consumer_[n.outputs[0]];
      if (j < 0 || g.nodes[j].op != "Add" || g.nodes[j].inputs.size() != 2) continue;
      const int a = g.nodes[j].inputs[0], b = g.nodes[j].inputs[1];
      const int other = a == n.outputs[0] ? b : a;
      const int p = other >= 0 ? producer[other] : -1;
      if (p > static_cast<int>(k)) {
        after[p].push_back(k);
        deferred[k] = true;
      }
    }
    order_.clear();
    std::vector<std::size_t> stack;
    for (std::size_t k = 0; k < nn; ++k) {
      if (deferred[k]) continue;
      stack.push_back(k);
      while (!stack.empty()) {
        const std::size_t x = stack.back();
        stack.pop_back();
        order_.push_back(x);
        for (auto it = after[x].rbegin(); it != after[x].rend(); ++it) stack.push_back(*it);
      }
    }
    fused_.assign(nn, false);
    acts_.resize(nv);
  }
  pos_.assign(nn, 0);
  for (std::size_t p = 0; p < order_.size(); ++p) pos_[order_[p]] = static_cast<int>(p);
  last_.assign(nv, -1);
  for (std::size_t p = 0; p < order_.size(); ++p)
    for (int id : g.nodes[order_[p]].inputs)
      if (id >= 0) last_[id] = static_cast<int>(p);
  for (int id : g.outputs) last_[id] = static_cast<int>(nn);
}

void FastConvs::materialize(const std::vector<int>& ids, std::vector<Value>& vals) {
  if (!enabled_) return;
  for (int id : ids) {
    if (id < 0 || !acts_[id] || vals[id].f) continue;
    auto buf = std::make_shared<FloatBuf>(static_cast<std::size_t>(vals[id].numel()));
    acts_[id].to_nchw(buf->data(), threads_);
    vals[id].f = std::move(buf);
  }
}

bool FastConvs::run_pool(std::size_t k, std::vector<Value>& vals, std::vector<bool>& have) {
  const Node& n = g_.nodes[k];
  const bool is_max = n.op == "MaxPool";
  if (n.inputs.size() != 1 || n.outputs.size() != 1 || n.inputs[0] < 0) return false;
  const int xid = n.inputs[0];
  // Only a tensor that is blocked already: pooling a plain one gains nothing over qcast's operator.
  if (!have[xid] || !acts_[xid] || vals[xid].shape.size() != 4) return false;
  OpCtx c{n, {&vals[xid]}, {}, false, threads_, g_.opset};
  const PoolGeometry pg = pool_geometry(c, is_max);
  const ConvGeometry& geo = pg.g;
  // An average over a ceil_mode window that reaches past the padding: whether the overhang counts is
  // the operator's business (qcast's operator runs it).
  if (!is_max && pg.ceil && pg.include_pad) return false;
  if (geo.P <= 0 || geo.Q <= 0) return false;
  kern::dnnl::PoolSpec spec;
  spec.kind = is_max ? kern::dnnl::PoolSpec::Kind::Max
                     : pg.include_pad ? kern::dnnl::PoolSpec::Kind::AvgInclude : kern::dnnl::PoolSpec::Kind::AvgExclude;
  spec.N = geo.N; spec.C = geo.C; spec.H = geo.H; spec.W = geo.W; spec.kh = geo.kh; spec.kw = geo.kw;
  spec.sh = geo.sh; spec.sw = geo.sw; spec.dh = geo.dh; spec.dw = geo.dw; spec.pt = geo.pt; spec.pl = geo.pl;
  spec.P = geo.P; spec.Q = geo.Q;
  // oneDNN's output size is floor((H + pt + pb - extent) / s) + 1: a ceil_mode size gets the padding
  // that makes it so; the windows there see only padding, which max and "exclude" ignore.
  spec.pb = std::max(geo.pb, (geo.P - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1 - geo.H - geo.pt);
  spec.pr = std::max(geo.pr, (geo.Q - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1 - geo.W - geo.pl);
  kern::dnnl::Act y;
  try {
    y = kern::dnnl::pool(spec, acts_[xid], threads_);
  } catch (const Error&) {
    return false;  // oneDNN refuses the window: the operator runs it
  }
  publish({n.outputs[0]}, Shape{geo.N, geo.C, geo.P, geo.Q}, std::move(y), vals, have);
  return true;
}

void FastConvs::publish(const std::vector<int>& ids, const Shape& shape, kern::dnnl::Act y, std::vector<Value>& vals,
                        std::vector<bool>& have) {
  for (int id : ids) {
    vals[id] = Value{};
    vals[id].shape = shape;
    have[id] = true;
  }
  acts_[ids.back()] = std::move(y);
  ++g_runs;
}

bool FastConvs::run(std::size_t k, std::vector<Value>& vals, std::vector<bool>& have) {
  if (!enabled_) return false;
  if (fused_[k]) return true;
  const Node& n = g_.nodes[k];
  if (n.op == "MaxPool" || n.op == "AveragePool") return run_pool(k, vals, have);
  if (n.op != "Conv" || n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  const int xid = n.inputs[0], wid = n.inputs[1], bid = n.inputs.size() > 2 ? n.inputs[2] : -1;
  if (xid < 0 || wid < 0 || !have[xid] || !g_.is_const(wid) || (bid >= 0 && !g_.is_const(bid))) return false;
  const Value& X = vals[xid];
  const Value& Wt = g_.constants.at(wid);
  const Value* B = bid >= 0 ? &g_.constants.at(bid) : nullptr;
  if (X.is_int || Wt.is_int || (B && B->is_int) || X.shape.size() != 4 || Wt.shape.size() != 4 || !Wt.f || (B && !B->f)) return false;
  // The operator's own checks (and error messages); its geometry.
  OpCtx c{n, {&X, &Wt, B}, {}, false, threads_, g_.opset};
  if (!B) c.in.pop_back();
  const ConvGeometry geo = conv_geometry(c);
  std::int64_t out_elems = 1;
  for (std::int64_t d : {geo.N, geo.M, geo.P, geo.Q}) {
    if (d <= 0) return false;  // empty tensors: the plain operator handles them
    if (out_elems > max_tensor_elements() / d) return false;  // ... and reports the size limit
    out_elems *= d;
  }
  // Small convolutions (LeNet-5 at batch 1: 0.1-0.25 M MACs) stay on qcast's own kernels: oneDNN's
  // ~20 us per call costs more than it saves there (measured: 11-14k images/s against 16-20k).
  const __int128 macs = static_cast<__int128>(out_elems) * (geo.C / geo.G) * geo.kh * geo.kw;  // up to 2^96: no overflow
  if (macs < g_min_macs.load()) return false;
  kern::dnnl::ConvSpec spec{geo.N, geo.C, geo.H, geo.W, geo.M, geo.G, geo.kh, geo.kw, geo.sh, geo.sw, geo.dh, geo.dw,
                            geo.pt, geo.pl, geo.pb, geo.pr, geo.P, geo.Q, false, false};
  // What the Conv's output feeds: a Relu, or an Add of a same-shaped tensor (then maybe a Relu).
  int out = n.outputs[0], sum_id = -1;
  std::vector<std::size_t> fuse;
  auto single_reader = [&](int id, const char* op) -> int {
    const int j = consumer_[id];
    if (j < 0 || g_.nodes[j].op != op || g_.nodes[j].quant.act || g_.nodes[j].outputs.size() != 1) return -1;
    return j;
  };
  if (int j = single_reader(out, "Add"); j >= 0 && g_.nodes[j].inputs.size() == 2) {
    const int a = g_.nodes[j].inputs[0], b = g_.nodes[j].inputs[1];
    const int other = a == out ? b : a;
    if ((a == out) != (b == out) && other >= 0 && have[other] && !vals[other].is_int &&
        vals[other].shape == Shape{geo.N, geo.M, geo.P, geo.Q}) {
      spec.sum = true;
      sum_id = other;
      fuse.push_back(static_cast<std::size_t>(j));
      out = g_.nodes[j].outputs[0];
    }
  }
  if (int j = single_reader(out, "Relu"); j >= 0) {
    spec.relu = true;
    fuse.push_back(static_cast<std::size_t>(j));
    out = g_.nodes[j].outputs[0];
  }
  std::optional<kern::dnnl::Conv> conv = prepared(g_, k, spec, Wt, B, threads_);
  if (!conv) return false;
  // The input: blocked from the previous Conv, else the plain tensor (fake-quantized first if the node
  // has an activation format, which needs plain data).
  std::vector<float> qbuf;
  kern::dnnl::Act src = acts_[xid];
  if (n.quant.act && src && src.nhwc_data() && layout_free(n.quant.act->format)) {
    // Channel blocks are contiguous in NHWC: quantize [N*H*W, C] along its last axis, no transposes; in
    // place when this Conv is the tensor's last reader (the Relu between two convolutions of a block).
    const bool sole = last_[xid] == pos_[k] && src.impl().use_count() == 2;  // acts_[xid] and src
    if (sole) acts_[xid] = kern::dnnl::Act();
    kern::dnnl::Act q = sole ? src : src.empty_like();
    n.quant.act->apply(src.nhwc_data(), q.nhwc_data(), Shape{geo.N * geo.H * geo.W, geo.C}, 1, threads_, n.name);
    src = std::move(q);
  } else if (n.quant.act || !src) {
    materialize({xid}, vals);
    src = kern::dnnl::Act::wrap_nchw(maybe_quant_act(c, vals[xid], 1, qbuf), {geo.N, geo.C, geo.H, geo.W});
  }
  kern::dnnl::Act addend;
  if (spec.sum) {
    // The Add is the addend's last use: its blocked buffer becomes the output (no copy).
    const bool last_use = last_[sum_id] == pos_[fuse.front()];
    if (acts_[sum_id]) addend = last_use ? std::move(acts_[sum_id]) : acts_[sum_id];
    else addend = kern::dnnl::Act::wrap_nchw(vals[sum_id].fp(), {geo.N, geo.M, geo.P, geo.Q});
  }
  kern::dnnl::Act y = conv->run(src, std::move(addend), threads_);
  // The Conv's (and a fused Add's) intermediate outputs are never read: only the last one is kept.
  std::vector<int> produced{n.outputs[0]};
  for (std::size_t j : fuse) {
    fused_[j] = true;
    produced.push_back(g_.nodes[j].outputs[0]);
  }
  publish(produced, Shape{geo.N, geo.M, geo.P, geo.Q}, std::move(y), vals, have);  // produced.back() == out
  return true;
}

}  // namespace detail

void set_fast_convs(bool on, std::int64_t min_macs) { detail::set_fast_convs_impl(on, min_macs); }
std::int64_t fast_conv_runs() { return detail::fast_conv_runs_impl(); }

}  // namespace qcast::nn
