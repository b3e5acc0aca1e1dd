// Graph IR: validation, constant folding, shape inference, the executor and per-layer statistics.
#include "qcast/kernels/blas.hpp"
#include "qcast/nn/graph.hpp"

#include <malloc.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <atomic>
#include <mutex>
#include <thread>

#include "nn/conv_fast.hpp"
#include "nn/ops.hpp"
#include "qcast/error.hpp"
#include "qcast/nn/observer.hpp"
#include "qcast/quantize.hpp"

namespace qcast::nn {

Value Value::floats(Shape s, float fill) {
  Value v;
  v.f = std::make_shared<FloatBuf>(static_cast<std::size_t>(shape_numel(s)), fill);
  v.shape = std::move(s);
  return v;
}

Value Value::ints(Shape s, std::int64_t fill) {
  Value v;
  v.is_int = true;
  v.i = std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(shape_numel(s)), fill);
  v.shape = std::move(s);
  return v;
}

Value Value::from_tensor(const Tensor& t) {
  const std::int64_t n = t.numel();
  switch (t.dtype) {
    case DType::F32: case DType::F16: case DType::BF16: case DType::F64: {
      Tensor f = t.to_f32();
      Value v = floats(t.shape);
      std::copy(f.f32(), f.f32() + n, v.f->begin());
      return v;
    }
    default: break;
  }
  Value v = ints(t.shape);
  auto get = [&](std::int64_t k) -> std::int64_t {
    switch (t.dtype) {
      case DType::I8: return static_cast<const std::int8_t*>(t.data)[k];
      case DType::U8: case DType::Bool: return static_cast<const std::uint8_t*>(t.data)[k];
      case DType::I16: return static_cast<const std::int16_t*>(t.data)[k];
      case DType::U16: return static_cast<const std::uint16_t*>(t.data)[k];
      case DType::I32: return static_cast<const std::int32_t*>(t.data)[k];
      case DType::U32: return static_cast<const std::uint32_t*>(t.data)[k];
      case DType::I64: return static_cast<const std::int64_t*>(t.data)[k];
      case DType::U64: return static_cast<std::int64_t>(static_cast<const std::uint64_t*>(t.data)[k]);
      default: return 0;
    }
  };
  for (std::int64_t k = 0; k < n; ++k) (*v.i)[k] = get(k);
  return v;
}

Tensor Value::to_tensor() const {
  Tensor t = Tensor::zeros_f32(shape);
  float* p = t.mutable_f32();
  if (has_data()) for (std::int64_t k = 0; k < numel(); ++k) p[k] = static_cast<float>(at(k));
  return t;
}

std::int64_t Node::get_i(const std::string& a, std::int64_t def) const {
  auto it = attrs.find(a);
  return it == attrs.end() ? def : it->second.i;
}
float Node::get_f(const std::string& a, float def) const {
  auto it = attrs.find(a);
  return it == attrs.end() ? def : it->second.f;
}
std::string Node::get_s(const std::string& a, const std::string& def) const {
  auto it = attrs.find(a);
  return it == attrs.end() ? def : it->second.s;
}
std::vector<std::int64_t> Node::get_ints(const std::string& a, std::vector<std::int64_t> def) const {
  auto it = attrs.find(a);
  return it == attrs.end() ? def : it->second.ints;
}

int Graph::value_id(const std::string& name) {
  int id = find_value(name);
  if (id >= 0) return id;
  value_names.push_back(name);
  id = static_cast<int>(value_names.size()) - 1;
  value_index.emplace(name, id);
  return id;
}

int Graph::find_value(const std::string& name) const {
  if (value_index.size() == value_names.size()) {  // the index is complete unless value_names was filled directly
    const auto it = value_index.find(name);
    return it == value_index.end() ? -1 : it->second;
  }
  for (std::size_t k = 0; k < value_names.size(); ++k)
    if (value_names[k] == name) return static_cast<int>(k);
  return -1;
}

namespace {
std::atomic<std::int64_t> g_max_elems{std::int64_t(1) << 32};
}
void set_max_tensor_elements(std::int64_t n) { g_max_elems = n; }

FoldLimit fold_limit(std::int64_t initializer_bytes) {
  FoldLimit r;
  if (const char* env = std::getenv("QCAST_FOLD_LIMIT_MB"); env && *env) {
    char* end = nullptr;
    errno = 0;
    const long long mb = std::strtoll(env, &end, 10);
    if (*end != '\0' || errno == ERANGE || mb < 0 || mb > (std::int64_t(1) << 40))
      throw Error(std::string("QCAST_FOLD_LIMIT_MB='") + env + "' is not a number of MiB");
    r.bytes = static_cast<std::int64_t>(mb) << 20;
    r.text = "the limit on constant-folded tensors of " + std::to_string(mb) + " MiB in all (QCAST_FOLD_LIMIT_MB=" + env +
             "; set a larger QCAST_FOLD_LIMIT_MB to load this model)";
  } else {
    r.bytes = (std::int64_t(256) << 20) + 2 * initializer_bytes;
    r.text = "the limit on constant-folded tensors of " + std::to_string(r.bytes >> 20) +
             " MiB in all (256 MiB plus twice the model's initializers; set QCAST_FOLD_LIMIT_MB=N to allow N MiB)";
  }
  return r;
}
std::int64_t max_tensor_elements() { return g_max_elems; }

bool op_supported(const std::string& op) { return detail::find_op(op) != nullptr; }

std::vector<std::string> supported_ops() {
  auto r = detail::op_names();
  std::sort(r.begin(), r.end());
  return r;
}

namespace {

void blas_single_thread() {
  static std::once_flag once;
  std::call_once(once, [] {
    blas::set_num_threads(1);
    // Activations are large, short-lived buffers: keep freed memory in the heap instead of returning
    // it to the kernel, so the next batch does not page-fault it back in (measured: ~15% of a ResNet run).
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
}

// Every value's extent (product of its non-zero dimensions) must stay within the tensor size limit:
// operators multiply sub-ranges of dimensions (outer * inner, H * W), and a zero elsewhere in the
// shape would otherwise hide an overflowing product from shape_numel (found by the ONNX fuzzer).
void check_extent(const Node& n, const Value& v) {
  std::int64_t p = 1;
  for (std::int64_t d : v.shape) {
    if (d < 0) throw Error(n.op + " node '" + n.name + "': negative dimension in " + shape_str(v.shape));
    if (d == 0) continue;
    if (p > max_tensor_elements() / d) throw Error(n.op + " node '" + n.name + "': shape " + shape_str(v.shape) + " exceeds the tensor size limit");
    p *= d;
  }
}

// Runs one node. `vals` holds the current value of every id (shape-only values in shape mode).
// Inputs up to this many elements in all are computed during shape inference when their data is known:
// shape subgraphs (Shape -> Gather -> Concat -> Reshape of a dynamic input) then fold at any input shape.
constexpr std::int64_t kShapeFoldElems = std::int64_t(1) << 16;

void exec_node(const Node& n, std::vector<Value>& vals, std::vector<bool>& have, bool shape_only, int threads, int opset,
               std::int64_t* fold_budget = nullptr, const std::string* fold_limit = nullptr) {
  auto fn = detail::find_op(n.op);
  detail::OpCtx c{n, {}, {}, shape_only, threads, opset, fold_budget, fold_limit};
  std::int64_t known = 0;
  bool all_known = true;
  for (int id : n.inputs) {
    if (id < 0) { c.in.push_back(nullptr); continue; }
    if (!have[id]) throw Error(n.op + " node '" + n.name + "': input value '" + std::to_string(id) + "' is not computed before use");
    check_extent(n, vals[id]);
    c.in.push_back(&vals[id]);
    all_known = all_known && vals[id].has_data();
    known += vals[id].numel();
  }
  if (shape_only && all_known && known <= kShapeFoldElems) c.shape_only = shape_only = false;
  c.out.resize(n.outputs.size());
  fn(c);
  for (std::size_t k = 0; k < c.out.size(); ++k) {
    // An operator that leaves an output unset (an optional output it does not compute) must not hand a
    // data-less value to the next node (found by the ONNX fuzzer: Relu reading such an output).
    if (!shape_only && !c.out[k].has_data())
      throw Error(n.op + " node '" + n.name + "': output " + std::to_string(k) + " is not computed by this runtime");
    check_extent(n, c.out[k]);
  }
  for (std::size_t k = 0; k < n.outputs.size(); ++k) {
    vals[n.outputs[k]] = std::move(c.out[k]);
    have[n.outputs[k]] = true;
  }
}

}  // namespace

void Graph::finalize() {
  // Structural checks.
  std::vector<bool> defined(value_names.size(), false);
  for (auto& [id, v] : constants) defined[id] = true;
  for (auto& in : inputs) defined[in.id] = true;
  for (const Node& n : nodes) {
    if (!op_supported(n.op))
      throw Error(source + ": unsupported operator '" + n.op + "' (node '" + n.name + "'); supported: " + [] {
        std::string s;
        for (auto& o : supported_ops()) s += (s.empty() ? "" : " ") + o;
        return s;
      }());
    auto [lo, hi] = detail::op_arity(n.op);
    const int ni = static_cast<int>(n.inputs.size());
    if (ni < lo || ni > hi)
      throw Error(source + ": " + n.op + " node '" + n.name + "' has " + std::to_string(ni) + " inputs, expected " +
                  std::to_string(lo) + (hi != lo ? ".." + std::to_string(hi) : ""));
    for (int id : n.inputs)
      if (id >= 0 && !defined[id])
        throw Error(source + ": " + n.op + " node '" + n.name + "' uses '" + value_names[id] +
                    "', which is neither an input, an initializer nor an earlier node's output");
    if (n.outputs.empty()) throw Error(source + ": node '" + n.name + "' has no outputs");
    for (int id : n.outputs) defined[id] = true;
  }
  for (int id : outputs)
    if (!defined[id]) throw Error(source + ": graph output '" + value_names[id] + "' is never computed");
  // Constant folding. What it creates is bounded in total: a few bytes of ConstantOfShape / Expand / Tile /
  // Range can otherwise ask for gigabytes before the model runs at all.
  std::int64_t init_bytes = 0;
  for (auto& [id, v] : constants) init_bytes += v.numel() * (v.is_int ? 8 : 4);
  const FoldLimit lim = fold_limit(init_bytes);
  std::int64_t budget = lim.bytes;
  blas_single_thread();
  std::vector<Value> vals(value_names.size());
  std::vector<bool> have(value_names.size(), false);
  for (auto& [id, v] : constants) { vals[id] = v; have[id] = true; }
  std::vector<Node> kept;
  for (Node& n : nodes) {
    bool all_const = true;
    for (int id : n.inputs) if (id >= 0 && !constants.count(id)) all_const = false;
    if (all_const) {
      try {
        exec_node(n, vals, have, false, 1, opset, &budget, &lim.text);
      } catch (const Error& e) {
        throw Error(source + ": " + e.what());
      }
      for (int id : n.outputs) constants[id] = vals[id];
    } else {
      kept.push_back(std::move(n));
    }
  }
  nodes = std::move(kept);
  // Shape check with batch 1 (catches bad shapes at load time). With symbolic dimensions besides the
  // first (sequence length, image size) a 1 there may not be a valid size for the model (a reshape to
  // [-1, 64] needs a multiple of 64), so the check waits for the real shapes at run time.
  // A control-flow body's inputs are bound only when it runs; so are the shapes of values after an If
  // or Loop that depends on the data (a branch or trip count chosen at run time).
  if (subgraph) return;
  bool symbolic = false;
  for (auto& in : inputs)
    for (std::size_t d = 1; d < in.shape.size(); ++d) symbolic = symbolic || in.shape[d] < 0;
  for (const Node& n : nodes) symbolic = symbolic || n.has(kOuterBegin);
  try {
    infer_shapes(1);
  } catch (const Error& e) {
    if (!symbolic) throw Error(source + ": " + e.what());
  }
}

namespace detail {
std::vector<Value> run_subgraph(const Graph& sub, const std::vector<const Value*>& bound, bool shape_only, int threads) {
  if (bound.size() != sub.inputs.size())
    throw Error(sub.source + ": a subgraph takes " + std::to_string(sub.inputs.size()) + " inputs, got " + std::to_string(bound.size()));
  std::vector<Value> vals(sub.value_names.size());
  std::vector<bool> have(sub.value_names.size(), false);
  for (auto& [id, v] : sub.constants) { vals[id] = v; have[id] = true; }
  for (std::size_t k = 0; k < bound.size(); ++k) {
    if (!bound[k]) continue;  // an omitted input (Loop's condition): never read, or an error where read
    vals[sub.inputs[k].id] = *bound[k];
    have[sub.inputs[k].id] = true;
  }
  // Values are freed after their last use, as in the main executor (a Loop body runs many times).
  std::vector<int> last(sub.value_names.size(), -1);
  for (std::size_t k = 0; k < sub.nodes.size(); ++k)
    for (int id : sub.nodes[k].inputs) if (id >= 0) last[id] = static_cast<int>(k);
  for (int id : sub.outputs) last[id] = static_cast<int>(sub.nodes.size());
  for (std::size_t k = 0; k < sub.nodes.size(); ++k) {
    exec_node(sub.nodes[k], vals, have, shape_only, threads, sub.opset);
    for (int id : sub.nodes[k].inputs)
      if (id >= 0 && last[id] == static_cast<int>(k)) vals[id] = Value{};
  }
  std::vector<Value> out;
  for (int id : sub.outputs) {
    if (!have[id]) throw Error(sub.source + ": subgraph output '" + sub.value_names[id] + "' is not bound (an omitted input?)");
    out.push_back(vals[id]);
  }
  return out;
}
}  // namespace detail

std::vector<Shape> Graph::infer_shapes(std::int64_t batch) const {
  std::vector<Shape> shapes;
  for (auto& in : inputs) {
    if (constants.count(in.id)) continue;
    Shape s = in.shape;
    for (auto& d : s) if (d < 0) d = batch;
    shapes.push_back(s);
  }
  return infer_shapes(shapes);
}

std::vector<Shape> Graph::infer_shapes(const std::vector<Shape>& input_shapes) const {
  std::vector<Value> vals(value_names.size());
  std::vector<bool> have(value_names.size(), false);
  for (auto& [id, v] : constants) { vals[id] = v; have[id] = true; }
  std::size_t k = 0;
  for (auto& in : inputs) {
    if (have[in.id]) continue;
    if (k >= input_shapes.size()) throw Error(source + ": " + std::to_string(input_shapes.size()) + " input shapes given, the model takes more");
    const Shape& s = input_shapes[k++];
    bool ok = s.size() == in.shape.size();
    for (std::size_t d = 0; ok && d < s.size(); ++d) ok = s[d] >= 0 && (in.shape[d] < 0 || in.shape[d] == s[d]);
    if (!ok) throw Error(source + ": input '" + value_names[in.id] + "' expects shape " + shape_str(in.shape) + " (-1 = any), got " + shape_str(s));
    vals[in.id].shape = s;
    have[in.id] = true;
  }
  if (k != input_shapes.size()) throw Error(source + ": " + std::to_string(input_shapes.size()) + " input shapes given, the model takes " + std::to_string(k));
  for (const Node& n : nodes) exec_node(n, vals, have, true, 1, opset);
  std::vector<Shape> r(vals.size());
  for (std::size_t k = 0; k < vals.size(); ++k) r[k] = vals[k].shape;
  return r;
}

namespace {
std::vector<Value> run_impl(const Graph& g, const std::vector<Value>& feeds, int threads, const NodeObserver* obs);
}  // namespace

std::vector<Value> Graph::run(const std::vector<Value>& feeds, int threads) const { return run_impl(*this, feeds, threads, nullptr); }

std::vector<Value> run_observed(const Graph& g, const std::vector<Value>& feeds, int threads, const NodeObserver& obs) {
  return run_impl(g, feeds, threads, &obs);
}

namespace {
std::vector<Value> run_impl(const Graph& g, const std::vector<Value>& feeds, int threads, const NodeObserver* obs) {
  const auto& inputs = g.inputs;
  const auto& constants = g.constants;
  const auto& nodes = g.nodes;
  const auto& outputs = g.outputs;
  const auto& value_names = g.value_names;
  const auto& source = g.source;
  const int opset = g.opset;
  blas_single_thread();
  std::vector<GraphInput> real;
  for (auto& in : inputs) if (!constants.count(in.id)) real.push_back(in);
  if (feeds.size() != real.size())
    throw Error(source + ": the model takes " + std::to_string(real.size()) + " inputs, got " + std::to_string(feeds.size()));
  std::vector<Value> vals(value_names.size());
  std::vector<bool> have(value_names.size(), false);
  for (auto& [id, v] : constants) { vals[id] = v; have[id] = true; }
  for (std::size_t k = 0; k < real.size(); ++k) {
    const Shape& want = real[k].shape;
    const Shape& got = feeds[k].shape;
    bool ok = want.size() == got.size();
    for (std::size_t d = 0; ok && d < want.size(); ++d) ok = want[d] < 0 || want[d] == got[d];
    if (!ok)
      throw Error(source + ": input '" + value_names[real[k].id] + "' expects shape " + shape_str(want) +
                  " (-1 = any), got " + shape_str(got));
    vals[real[k].id] = feeds[k];
    have[real[k].id] = true;
  }
  // Conv nodes (and the Relu / Add they fuse) through oneDNN when it is there; no observer then. It
  // also gives the order to run the nodes in, and the last use of every value (to free it early).
  detail::FastConvs fast(g, threads, obs != nullptr);
  const std::vector<int>& last = fast.last();
  for (std::size_t pos = 0; pos < nodes.size(); ++pos) {
    const std::size_t k = fast.order()[pos];
    if (obs) {
      std::vector<const Value*> ins;
      for (int id : nodes[k].inputs) ins.push_back(id >= 0 ? &vals[id] : nullptr);
      (*obs)(k, nodes[k], ins);
    }
    if (!fast.run(k, vals, have)) {
      fast.materialize(nodes[k].inputs, vals);
      exec_node(nodes[k], vals, have, false, threads, opset);
    }
    for (int id : nodes[k].inputs)
      if (id >= 0 && last[id] == static_cast<int>(pos) && !constants.count(id)) {
        vals[id] = Value{};
        fast.release(id);
      }
  }
  fast.materialize(outputs, vals);
  std::vector<Value> out;
  for (int id : outputs) out.push_back(vals[id]);
  return out;
}
}  // namespace

namespace {
// The reduction-axis layout of a node's weight: the shape to quantize it as, and the block axis.
bool weight_layout(const Node& n, const Shape& ws, Shape& qshape, int& axis) {
  if (n.op == "Conv" && (ws.size() == 4 || ws.size() == 3)) {  // 2-D or 1-D: [M, C*kh*kw] / [M, C*k]
    qshape = {ws[0], ws[1] * ws[2] * (ws.size() == 4 ? ws[3] : 1)};
    axis = 1;
    return true;
  }
  if (n.op == "Gemm" && ws.size() == 2) {
    qshape = ws;
    axis = n.get_i("transB", 0) ? 1 : 0;
    return true;
  }
  if (n.op == "MatMul" && ws.size() >= 2) {
    qshape = ws;
    axis = static_cast<int>(ws.size()) - 2;
    return true;
  }
  return false;
}
}  // namespace

void Graph::quantize_weights(int threads) {
  for (const Node& n : nodes) {
    if (n.inputs.size() < 2 || n.inputs[1] < 0) continue;
    const int wid = n.inputs[1];
    if (!constants.count(wid)) continue;
    if (!fp32_weights.count(wid)) fp32_weights[wid] = constants[wid];
    const Value& orig = fp32_weights[wid];
    if (!n.quant.weight) { constants[wid] = orig; continue; }
    Shape qs;
    int axis = -1;
    if (orig.is_int || !weight_layout(n, orig.shape, qs, axis)) continue;
    Value q = Value::floats(orig.shape);
    QuantOptions o;
    o.axis = axis;
    o.threads = threads;
    fake_quant(*n.quant.weight, orig.fp(), q.mfp(), qs, o);
    constants[wid] = q;
  }
}

namespace {
std::vector<LayerInfo> layer_info_of(const Graph& g, const std::vector<Shape>& shapes);
}

std::vector<LayerInfo> layer_info(const Graph& g, std::int64_t batch) { return layer_info_of(g, g.infer_shapes(batch)); }

std::vector<LayerInfo> layer_info(const Graph& g, const std::vector<Shape>& input_shapes) {
  return layer_info_of(g, g.infer_shapes(input_shapes));
}

namespace {
std::vector<LayerInfo> layer_info_of(const Graph& g, const std::vector<Shape>& shapes) {
  std::vector<LayerInfo> r;
  for (const Node& n : g.nodes) {
    LayerInfo L;
    L.name = n.name;
    L.op = n.op;
    for (int id : n.inputs) {
      if (id < 0) continue;
      L.in_shapes.push_back(shapes[id]);
      if (g.is_const(id)) L.params += shape_numel(shapes[id]);
    }
    for (int id : n.outputs) L.out_shapes.push_back(shapes[id]);
    const bool wconst = n.inputs.size() > 1 && n.inputs[1] >= 0 && g.is_const(n.inputs[1]);
    if (n.op == "Conv" || n.op == "ConvTranspose") {
      // 1-D convolutions (rank 3) are reported as 2-D ones with H = P = R = 1.
      auto as4 = [](Shape s) { if (s.size() == 3) s.insert(s.begin() + 2, 1); return s; };
      const Shape x = as4(shapes[n.inputs[0]]);
      const Shape w = as4(shapes[n.inputs[1]]);
      const Shape y = as4(shapes[n.outputs[0]]);
      const bool one_d = shapes[n.inputs[0]].size() == 3;
      L.groups = n.get_i("group", 1);
      L.stride = n.get_ints("strides", {1, 1});
      L.dilation = n.get_ints("dilations", {1, 1});
      if (one_d) { L.stride.insert(L.stride.begin(), 1); L.dilation.insert(L.dilation.begin(), 1); }
      L.N = x[0]; L.C = x[1]; L.H = x[2]; L.W = x[3];
      L.R = w[2]; L.S = w[3]; L.P = y[2]; L.Q = y[3];
      if (n.op == "Conv") {
        L.is_compute = true;
        L.M = w[0];
        L.macs = L.N * L.M * L.P * L.Q * (L.C / L.groups) * L.R * L.S;
      } else {
        // Every input pixel meets every tap of its group's M / G output channels; the weight is
        // [C, M/G, kh, kw]. Not a Timeloop convolution problem, so not marked is_compute.
        L.M = w[1] * L.groups;
        L.macs = L.N * L.C * L.H * L.W * w[1] * L.R * L.S;
      }
      if (wconst) L.weight_elems = shape_numel(w);
    } else if (n.op == "Gemm" || n.op == "MatMul") {
      const Shape& a = shapes[n.inputs[0]];
      const Shape& y = shapes[n.outputs[0]];
      L.is_compute = true;
      std::int64_t K;
      if (n.op == "Gemm") K = n.get_i("transA", 0) ? a[0] : a[1];
      else K = a.back();
      const std::int64_t Nout = y.empty() ? 1 : y.back();
      const std::int64_t rows = shape_numel(y) / std::max<std::int64_t>(1, Nout);
      L.N = rows; L.C = K; L.M = Nout;
      L.macs = rows * K * Nout;
      if (wconst) L.weight_elems = shape_numel(shapes[n.inputs[1]]);
    }
    r.push_back(std::move(L));
  }
  return r;
}

}  // namespace

}  // namespace qcast::nn
