// Skip connections as buffers: see include/qcast/skips.hpp.
#include "qcast/skips.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "qcast/error.hpp"

namespace qcast::hw {

namespace {

constexpr std::int64_t kWhole = std::numeric_limits<std::int64_t>::max();  // latency: the whole image

bool is_compute(const nn::Graph& g, const nn::Node& n) {
  return (n.op == "Conv" || n.op == "Gemm" || n.op == "MatMul") && n.inputs.size() > 1 && n.inputs[1] >= 0 && g.is_const(n.inputs[1]);
}

// Operators whose output pixel (token) needs only the same input pixel: no latency in a pixel stream.
bool is_pointwise(const nn::Graph& g, const nn::Node& n) {
  static const std::set<std::string> ops = {
      "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Mish", "Elu", "Selu", "Celu", "Gelu",
      "Erf", "Softplus", "Softsign", "PRelu", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
      "Identity", "Dropout", "Cast", "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Pow", "Exp", "Log", "Max", "Min",
      "Sum", "QuantizeLinear", "DequantizeLinear", "Round", "Floor", "Ceil", "Reciprocal"};
  return ops.count(n.op) != 0 || ((n.op == "Gemm" || n.op == "MatMul") && is_compute(g, n));
}

bool is_window(const nn::Node& n) { return n.op == "Conv" || n.op == "MaxPool" || n.op == "AveragePool"; }

// Pixels per image, channels and row width of a value: NCHW (or NCW), [N, T, D] tokens, [N, D].
struct Geometry {
  std::int64_t pixels = 1, channels = 1, width = 1;
};
Geometry geometry(const Shape& s) {
  Geometry g;
  if (s.size() == 4) {
    g.channels = s[1];
    g.pixels = s[2] * s[3];
    g.width = s[3];
  } else if (s.size() == 3) {
    g.channels = s[2];
    g.pixels = s[1];
    g.width = s[1];
  } else if (s.size() == 2) {
    g.channels = s[1];
  } else {
    for (std::size_t k = 1; k < s.size(); ++k) g.channels *= s[k];
  }
  return g;
}

struct Topology {
  std::vector<int> producer;  // value id -> node index, -1 for inputs / constants
  explicit Topology(const nn::Graph& g) : producer(g.value_names.size(), -1) {
    for (std::size_t k = 0; k < g.nodes.size(); ++k)
      for (int o : g.nodes[k].outputs)
        if (o >= 0) producer[static_cast<std::size_t>(o)] = static_cast<int>(k);
  }
  // Every computed value `v` derives from (v included); constants are left out.
  std::set<int> ancestors(const nn::Graph& g, int v) const {
    std::set<int> seen;
    std::vector<int> stack = {v};
    while (!stack.empty()) {
      const int x = stack.back();
      stack.pop_back();
      if (x < 0 || g.is_const(x) || !seen.insert(x).second) continue;
      const int p = producer[static_cast<std::size_t>(x)];
      if (p >= 0)
        for (int i : g.nodes[static_cast<std::size_t>(p)].inputs) stack.push_back(i);
    }
    return seen;
  }
};

// Nodes strictly after `from` (whose ancestors are `before`) and up to the producer of `to` on the paths between
// them, in graph order.
std::vector<int> nodes_between(const nn::Graph& g, const Topology& t, const std::set<int>& before, int to) {
  std::set<int> nodes;
  for (int v : t.ancestors(g, to))
    if (!before.count(v) && t.producer[static_cast<std::size_t>(v)] >= 0) nodes.insert(t.producer[static_cast<std::size_t>(v)]);
  return {nodes.begin(), nodes.end()};
}

// The branch's pipeline latency in pixels of `from` (one image): when the first element of `to` exists in a
// row-major pixel stream, through `nodes` (nodes_between(from, to)). A k x k window (top / left pads pt / pl) at a
// cumulative stride s needs (k - 1 - pt) more of its input rows, i.e. (k - 1 - pt) * s rows of `from`, and
// (k - pl) pixels of the next one.
std::int64_t branch_latency(const nn::Graph& g, const std::vector<Shape>& shapes, int from, int to, const std::vector<int>& nodes) {
  const std::int64_t width = geometry(shapes[static_cast<std::size_t>(from)]).width;
  std::map<int, std::pair<std::int64_t, std::int64_t>> at;  // value -> (latency, stride product)
  at[from] = {0, 1};
  for (int k : nodes) {
    const nn::Node& n = g.nodes[static_cast<std::size_t>(k)];
    std::int64_t lat = -1, stride = 1;
    for (int i : n.inputs) {
      auto it = at.find(i);
      if (it == at.end()) continue;
      lat = std::max(lat, it->second.first);
      stride = std::max(stride, it->second.second);
    }
    if (lat < 0) continue;  // fed from outside the branch only (constants)
    std::int64_t out_stride = stride;
    if (lat != kWhole) {
      if (is_window(n) && shapes[static_cast<std::size_t>(n.inputs[0])].size() == 4) {
        std::vector<std::int64_t> kernel = n.get_ints("kernel_shape");
        if (kernel.empty() && n.op == "Conv") {
          const Shape& w = shapes[static_cast<std::size_t>(n.inputs[1])];
          kernel = {w[2], w[3]};
        }
        if (kernel.size() != 2) kernel = {1, 1};
        std::vector<std::int64_t> pads = n.get_ints("pads", {0, 0, 0, 0});
        if (pads.size() != 4) pads = {0, 0, 0, 0};
        const std::string ap = n.get_s("auto_pad", "NOTSET");
        if (ap == "SAME_UPPER" || ap == "SAME_LOWER") pads = {(kernel[0] - 1) / 2, (kernel[1] - 1) / 2, 0, 0};
        const std::vector<std::int64_t> dil = n.get_ints("dilations", {1, 1});
        const std::int64_t kh = (kernel[0] - 1) * (dil.empty() ? 1 : dil[0]) + 1, kw = (kernel[1] - 1) * (dil.size() > 1 ? dil[1] : 1) + 1;
        lat += std::max<std::int64_t>(0, kh - 1 - pads[0]) * stride * width + std::max<std::int64_t>(1, kw - pads[1]) * stride;
        const std::vector<std::int64_t> st = n.get_ints("strides", {1, 1});
        out_stride = stride * (st.empty() ? 1 : st[0]);
      } else if (!is_pointwise(g, n)) {
        lat = kWhole;  // attention over all tokens, global pooling, reshapes: the whole image first
      }
    }
    for (int o : n.outputs) at[o] = {lat, out_stride};
  }
  auto it = at.find(to);
  return it == at.end() ? kWhole : it->second.first;
}

void fill_buffers(SkipConnection& s, const std::vector<Shape>& shapes, int fork, std::int64_t latency) {
  s.shape = shapes[static_cast<std::size_t>(fork)];
  s.elems = shape_numel(s.shape);
  const Geometry geo = geometry(s.shape);
  s.latency_pixels = latency == kWhole ? geo.pixels : std::min(latency, geo.pixels);
  s.fifo_elems = s.latency_pixels * geo.channels;
}

}  // namespace

SkipMode parse_skip_mode(const std::string& s) {
  if (s == "keep") return SkipMode::Keep;
  if (s == "remove") return SkipMode::Remove;
  if (s == "shorten") return SkipMode::Shorten;
  throw Error("skip mode '" + s + "': expected keep, remove or shorten");
}

namespace {
std::vector<SkipConnection> find_skips_at(const nn::Graph& g, const std::vector<Shape>& shapes, SkipMode mode);
}

std::vector<SkipConnection> find_skips(const nn::Graph& g, std::int64_t batch, SkipMode mode) {
  return find_skips_at(g, g.infer_shapes(batch), mode);
}

std::vector<SkipConnection> find_skips(const nn::Graph& g, const std::vector<Shape>& input_shapes, SkipMode mode) {
  return find_skips_at(g, g.infer_shapes(input_shapes), mode);
}

namespace {
std::vector<SkipConnection> find_skips_at(const nn::Graph& g, const std::vector<Shape>& shapes, SkipMode mode) {
  const Topology t(g);
  std::vector<SkipConnection> out;
  for (const nn::Node& n : g.nodes) {
    if ((n.op != "Add" && n.op != "Sum") || n.inputs.size() != 2 || n.inputs[0] < 0 || n.inputs[1] < 0) continue;
    const int a = n.inputs[0], b = n.inputs[1];
    if (g.is_const(a) || g.is_const(b)) continue;
    const std::set<int> anc_a = t.ancestors(g, a), anc_b = t.ancestors(g, b);
    int fork = -1, fork_at = -2;  // the common ancestor produced last (graph inputs: -1)
    for (int v : anc_a)
      if (anc_b.count(v) && t.producer[static_cast<std::size_t>(v)] > fork_at) {
        fork = v;
        fork_at = t.producer[static_cast<std::size_t>(v)];
      }
    if (fork < 0) continue;
    const std::set<int> before_fork = t.ancestors(g, fork);
    const std::vector<int> path_a = nodes_between(g, t, before_fork, a), path_b = nodes_between(g, t, before_fork, b);
    auto computes = [&](const std::vector<int>& path) {
      std::vector<int> r;
      for (int k : path)
        if (is_compute(g, g.nodes[static_cast<std::size_t>(k)])) r.push_back(k);
      return r;
    };
    auto names = [&](const std::vector<int>& nodes) {
      std::vector<std::string> r;
      for (int k : nodes) r.push_back(g.nodes[static_cast<std::size_t>(k)].name);
      return r;
    };
    std::vector<int> ca = computes(path_a), cb = computes(path_b);
    int long_side = a;
    const std::vector<int>* branch_path = &path_a;
    if (cb.size() > ca.size()) {
      std::swap(ca, cb);
      long_side = b;
      branch_path = &path_b;
    }
    if (ca.empty()) continue;  // no layer between fork and join: not a skip over layers
    SkipConnection s;
    s.join = n.name;
    s.fork = g.value_names[static_cast<std::size_t>(fork)];
    s.branch = names(ca);
    s.shortcut = names(cb);
    int held = fork;
    std::vector<int> held_path = *branch_path;
    if (mode == SkipMode::Shorten) {
      // The input of the branch's last compute layer, when it has the join's shape (a ResNet basic block's
      // middle activation); a bottleneck's last 1x1 conv changes the channels, so that skip stays.
      const int last = ca.back();  // compute layers in graph order
      const int mid = g.nodes[static_cast<std::size_t>(last)].inputs[0];
      if (ca.size() > 1 && shapes[static_cast<std::size_t>(mid)] == shapes[static_cast<std::size_t>(n.outputs[0])]) {
        held = mid;
        held_path = nodes_between(g, t, t.ancestors(g, mid), long_side);
        s.fork = g.value_names[static_cast<std::size_t>(mid)];
        s.branch = {g.nodes[static_cast<std::size_t>(last)].name};
        s.shortcut.clear();
      } else {
        s.note = ca.size() > 1 ? "not shortened: the last layer's input has another shape than the join"
                               : "already spans one layer";
      }
    }
    fill_buffers(s, shapes, held, branch_latency(g, shapes, held, long_side, held_path));
    if (mode == SkipMode::Remove) {
      s.removed = true;
      s.latency_pixels = 0;
      s.fifo_elems = 0;
    }
    out.push_back(std::move(s));
  }
  return out;
}
}  // namespace

}  // namespace qcast::hw
