// Control flow: If, Loop and Scan (ONNX opset 9-21). Their bodies are Graphs held in the node's attributes;
// the importer appended the enclosing values the bodies read to the node's inputs (kOuterBegin on), and
// each body takes them as its trailing inputs, so a body runs like any graph with bound inputs.
#include <algorithm>
#include <cstring>

#include "nn/ops.hpp"

namespace qcast::nn::detail {

namespace {

// Loops that never end are a hang, not a result: more iterations than this are an error.
constexpr std::int64_t kMaxLoopIterations = std::int64_t(1) << 20;

const Graph& body_of(const OpCtx& c, const char* attr) {
  auto it = c.node.attrs.find(attr);
  if (it == c.node.attrs.end() || it->second.kind != Attr::Kind::Graph || !it->second.g)
    c.fail(std::string("has no subgraph attribute '") + attr + "'");
  return *it->second.g;
}

std::size_t outer_begin(const OpCtx& c, std::size_t own) {
  const std::int64_t b = c.node.get_i(kOuterBegin, static_cast<std::int64_t>(c.n_in()));
  if (b < 0 || static_cast<std::size_t>(b) > c.n_in() || static_cast<std::size_t>(b) < std::min(own, c.n_in()))
    c.fail("malformed control-flow inputs");
  return static_cast<std::size_t>(b);
}

bool truth(const OpCtx& c, const Value& v, const char* what) {
  if (v.numel() != 1) c.fail(std::string(what) + " must have one element, has shape " + shape_str(v.shape));
  return v.at(0) != 0.0;
}

bool same_kind_and_shape(const Value& a, const Value& b) { return a.is_int == b.is_int && a.shape == b.shape; }

Value shape_of(const Value& v) {
  Value r;
  r.shape = v.shape;
  r.is_int = v.is_int;
  return r;
}

// The geometry of one axis of a shape: elements before it (outer), along it (len), and after it (inner).
struct AxisSplit {
  std::int64_t outer = 1, len = 1, inner = 1;
};
AxisSplit split_at(const Shape& s, std::size_t axis) {
  AxisSplit g;
  for (std::size_t k = 0; k < s.size(); ++k) (k < axis ? g.outer : k == axis ? g.len : g.inner) *= s[k];
  return g;
}

// A Scan axis attribute entry for a tensor of `rank` (negative counts from the end).
std::size_t scan_axis(const OpCtx& c, const std::vector<std::int64_t>& axes, std::size_t k, std::size_t rank, const char* what) {
  std::int64_t a = k < axes.size() ? axes[k] : 0;
  if (a < 0) a += static_cast<std::int64_t>(rank);
  if (a < 0 || a >= static_cast<std::int64_t>(std::max<std::size_t>(rank, 1)))
    c.fail(std::string(what) + " " + std::to_string(k) + " is out of range for rank " + std::to_string(rank));
  return static_cast<std::size_t>(a);
}

// Copies slice t along the axis that `g` splits `src` at into `dst` (the axis removed).
template <class T>
void take_slice(const T* src, T* dst, const AxisSplit& g, std::int64_t t) {
  for (std::int64_t o = 0; o < g.outer; ++o)
    std::copy(src + (o * g.len + t) * g.inner, src + (o * g.len + t + 1) * g.inner, dst + o * g.inner);
}

// Writes `src` (the axis removed) as slice t along the axis that `g` splits `dst` at.
template <class T>
void put_slice(const T* src, T* dst, const AxisSplit& g, std::int64_t t) {
  for (std::int64_t o = 0; o < g.outer; ++o) std::copy(src + o * g.inner, src + (o + 1) * g.inner, dst + (o * g.len + t) * g.inner);
}

}  // namespace

void op_if(OpCtx& c) {
  const std::size_t ob = outer_begin(c, 1);
  if (ob != 1) c.fail("takes one input (the condition), has " + std::to_string(ob));
  const Graph& then_g = body_of(c, "then_branch");
  const Graph& else_g = body_of(c, "else_branch");
  std::vector<const Value*> outer(c.in.begin() + 1, c.in.end());
  auto check_count = [&](const std::vector<Value>& r, const char* which) {
    if (r.size() != c.node.outputs.size())
      c.fail(std::string(which) + " gives " + std::to_string(r.size()) + " outputs, the node has " + std::to_string(c.node.outputs.size()));
  };
  const Value& cond = c.x(0);
  if (cond.has_data()) {
    const bool t = truth(c, cond, "the condition");
    std::vector<Value> r = run_subgraph(t ? then_g : else_g, outer, c.shape_only, c.threads);
    check_count(r, t ? "then_branch" : "else_branch");
    c.out = std::move(r);
    return;
  }
  // Shape inference without the condition: both branches must agree, else the shapes after this node are
  // known only when it runs.
  std::vector<Value> a = run_subgraph(then_g, outer, true, c.threads), b = run_subgraph(else_g, outer, true, c.threads);
  check_count(a, "then_branch");
  check_count(b, "else_branch");
  c.out.clear();
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (!same_kind_and_shape(a[k], b[k]))
      c.fail("output " + std::to_string(k) + " is " + shape_str(a[k].shape) + " in then_branch and " + shape_str(b[k].shape) +
             " in else_branch, and the condition is known only at run time");
    c.out.push_back(shape_of(a[k]));
  }
}

// Loop(M, cond, v_initial...): body(iteration_num, cond, v...) -> (cond, v..., scan...). Outputs: the final
// v..., then every scan output stacked along a new first axis.
void op_loop(OpCtx& c) {
  const std::size_t ob = outer_begin(c, 2);
  if (ob < 2) c.fail("takes at least 2 inputs (M, cond; either may be empty)");
  const Graph& body = body_of(c, "body");
  const std::size_t n_carried = ob - 2;
  const std::size_t n_formal = body.inputs.size() - (c.n_in() - ob);
  if (body.inputs.size() < c.n_in() - ob || n_formal != 2 + n_carried)
    c.fail("the body takes " + std::to_string(n_formal) + " inputs of its own, expected 2 + " + std::to_string(n_carried) + " carried values");
  if (body.outputs.size() < 1 + n_carried)
    c.fail("the body gives " + std::to_string(body.outputs.size()) + " outputs, expected at least 1 + " + std::to_string(n_carried));
  const std::size_t n_scan = body.outputs.size() - 1 - n_carried;
  if (c.node.outputs.size() > n_carried + n_scan)
    c.fail("has " + std::to_string(c.node.outputs.size()) + " outputs, the body gives " + std::to_string(n_carried + n_scan));
  for (std::size_t k = 0; k < n_carried; ++k)
    if (!c.present(2 + k)) c.fail("loop-carried initial value " + std::to_string(k) + " is missing");

  const bool has_m = c.present(0), has_cond = c.present(1);
  const bool known = (!has_m || c.x(0).has_data()) && (!has_cond || c.x(1).has_data());
  std::int64_t trip = kMaxLoopIterations + 1;
  if (has_m && c.x(0).has_data()) {
    if (c.x(0).numel() != 1) c.fail("M must have one element, has shape " + shape_str(c.x(0).shape));
    trip = std::max<std::int64_t>(0, c.int_at(c.x(0), 0));
  }
  bool go = has_cond && c.x(1).has_data() ? truth(c, c.x(1), "cond") : true;

  std::vector<Value> carried;
  for (std::size_t k = 0; k < n_carried; ++k) carried.push_back(c.shape_only ? shape_of(c.x(2 + k)) : *c.in[2 + k]);
  std::vector<const Value*> bound(body.inputs.size(), nullptr);
  for (std::size_t k = ob; k < c.n_in(); ++k) bound[n_formal + (k - ob)] = c.in[k];

  if (c.shape_only && !(known && !has_cond && has_m)) {
    c.fail("the trip count is known only at run time, and with it the shapes after this node");
  }
  std::vector<std::vector<Value>> scans(n_scan);
  std::vector<Value> scan_shape(n_scan);  // each scan output's per-iteration kind and shape
  Value iter = Value::ints({}, 0), cond_v = Value::ints({}, 1);
  std::int64_t i = 0;
  const std::int64_t rounds = c.shape_only ? std::min<std::int64_t>(trip, 1) : trip;
  for (; i < rounds && go; ++i) {
    if (i >= kMaxLoopIterations) c.fail("more than " + std::to_string(kMaxLoopIterations) + " iterations (an endless loop?)");
    (*iter.i)[0] = i;
    bound[0] = &iter;
    bound[1] = &cond_v;
    for (std::size_t k = 0; k < n_carried; ++k) bound[2 + k] = &carried[k];
    std::vector<Value> r = run_subgraph(body, bound, c.shape_only, c.threads);
    if (!c.shape_only) go = truth(c, r[0], "the body's condition output");
    (*cond_v.i)[0] = go ? 1 : 0;
    for (std::size_t k = 0; k < n_carried; ++k) {
      if (c.shape_only && !same_kind_and_shape(r[1 + k], carried[k]))
        c.fail("loop-carried value " + std::to_string(k) + " changes shape from " + shape_str(carried[k].shape) + " to " +
               shape_str(r[1 + k].shape) + ", so the shapes after this node are known only at run time");
      carried[k] = std::move(r[1 + k]);
    }
    for (std::size_t k = 0; k < n_scan; ++k) {
      Value& v = r[1 + n_carried + k];
      if (i == 0) scan_shape[k] = shape_of(v);
      else if (!same_kind_and_shape(v, scan_shape[k]))
        c.fail("scan output " + std::to_string(k) + " is " + shape_str(v.shape) + " in iteration " + std::to_string(i) + " and " +
               shape_str(scan_shape[k].shape) + " before");
      if (!c.shape_only) {
        const std::int64_t total = (i + 1) * std::max<std::int64_t>(1, v.numel());
        if (total > max_tensor_elements()) c.fail("scan output " + std::to_string(k) + " is larger than the tensor size limit");
        scans[k].push_back(std::move(v));
      }
    }
  }
  const std::int64_t iterations = c.shape_only ? trip : i;
  if (iterations == 0 && n_scan > 0) {
    // No iteration ran: the scan outputs are empty, their per-iteration shape is the body's for the inputs.
    (*iter.i)[0] = 0;
    bound[0] = &iter;
    bound[1] = &cond_v;
    std::vector<Value> shapes(n_carried);
    for (std::size_t k = 0; k < n_carried; ++k) { shapes[k] = shape_of(carried[k]); bound[2 + k] = &shapes[k]; }
    std::vector<Value> r = run_subgraph(body, bound, true, c.threads);
    for (std::size_t k = 0; k < n_scan; ++k) scan_shape[k] = shape_of(r[1 + n_carried + k]);
  }
  c.out.clear();
  for (std::size_t k = 0; k < n_carried && k < c.node.outputs.size(); ++k) c.out.push_back(std::move(carried[k]));
  for (std::size_t k = 0; k < n_scan && n_carried + k < c.node.outputs.size(); ++k) {
    Shape s = scan_shape[k].shape;
    s.insert(s.begin(), iterations);
    Value& o = c.alloc(n_carried + k, s, scan_shape[k].is_int);
    if (c.shape_only) continue;
    const AxisSplit g = split_at(s, 0);
    for (std::int64_t it = 0; it < iterations; ++it) {
      const Value& v = scans[k][static_cast<std::size_t>(it)];
      if (o.is_int) put_slice(v.ip(), o.i->data(), g, it);
      else put_slice(v.fp(), o.mfp(), g, it);
    }
  }
}

// Scan(state..., scan_input...) (opset 9+): body(state..., scan_element...) -> (state..., scan_output_element...),
// once per element along each scan input's axis (in reverse where its direction is 1). Outputs: the final
// states, then each scan output's elements stacked along its axis (from the end where its direction is 1).
void op_scan(OpCtx& c) {
  if (c.opset < 9) c.fail("opset-8 Scan (with a batch axis and sequence_lens) is not supported; opset 9 and later are");
  const Graph& body = body_of(c, "body");
  const std::size_t ob = outer_begin(c, 1);
  const std::int64_t m = c.node.get_i("num_scan_inputs", -1);
  if (m < 1 || static_cast<std::size_t>(m) > ob) c.fail("num_scan_inputs must be in 1.." + std::to_string(ob));
  const std::size_t n_scan_in = static_cast<std::size_t>(m), n_state = ob - n_scan_in;
  const std::size_t n_outer = c.n_in() - ob;
  if (body.inputs.size() != n_state + n_scan_in + n_outer)
    c.fail("the body takes " + std::to_string(body.inputs.size() - n_outer) + " inputs of its own, expected " + std::to_string(n_state) +
           " states + " + std::to_string(n_scan_in) + " scan elements");
  if (body.outputs.size() < n_state) c.fail("the body gives fewer outputs than there are states");
  const std::size_t n_scan_out = body.outputs.size() - n_state;
  if (c.node.outputs.size() > n_state + n_scan_out) c.fail("has more outputs than the body gives");
  const auto in_axes = c.node.get_ints("scan_input_axes"), in_dirs = c.node.get_ints("scan_input_directions");
  const auto out_axes = c.node.get_ints("scan_output_axes"), out_dirs = c.node.get_ints("scan_output_directions");
  for (std::size_t k = 0; k < ob; ++k)
    if (!c.present(k)) c.fail("input " + std::to_string(k) + " is missing");

  // The sequence length: every scan input's extent along its axis.
  std::int64_t len = -1;
  std::vector<AxisSplit> in_split(n_scan_in);
  std::vector<Shape> elem_shape(n_scan_in);
  for (std::size_t k = 0; k < n_scan_in; ++k) {
    const Value& v = c.x(n_state + k);
    const std::size_t a = scan_axis(c, in_axes, k, v.shape.size(), "scan_input_axes");
    if (v.shape.empty()) c.fail("scan input " + std::to_string(k) + " is a scalar: it has no axis to scan");
    in_split[k] = split_at(v.shape, a);
    if (len >= 0 && in_split[k].len != len)
      c.fail("scan inputs have different lengths: " + std::to_string(len) + " and " + std::to_string(in_split[k].len));
    len = in_split[k].len;
    elem_shape[k] = v.shape;
    elem_shape[k].erase(elem_shape[k].begin() + static_cast<std::ptrdiff_t>(a));
  }
  if (len > kMaxLoopIterations) c.fail("more than " + std::to_string(kMaxLoopIterations) + " iterations");

  std::vector<Value> state;
  for (std::size_t k = 0; k < n_state; ++k) state.push_back(c.shape_only ? shape_of(c.x(k)) : *c.in[k]);
  std::vector<Value> elems(n_scan_in);
  std::vector<const Value*> bound(body.inputs.size(), nullptr);
  for (std::size_t k = ob; k < c.n_in(); ++k) bound[n_state + n_scan_in + (k - ob)] = c.in[k];
  std::vector<std::vector<Value>> outs(n_scan_out);
  std::vector<Value> out_shape(n_scan_out);
  // Shape inference runs the body once (on shapes): states must keep their shapes, scan outputs theirs.
  const std::int64_t rounds = c.shape_only ? std::min<std::int64_t>(len, 1) : len;
  for (std::int64_t t = 0; t < rounds; ++t) {
    for (std::size_t k = 0; k < n_scan_in; ++k) {
      const Value& v = c.x(n_state + k);
      const std::int64_t at = k < in_dirs.size() && in_dirs[k] == 1 ? len - 1 - t : t;
      if (c.shape_only || !v.has_data()) {
        elems[k] = Value();
        elems[k].shape = elem_shape[k];
        elems[k].is_int = v.is_int;
      } else if (v.is_int) {
        elems[k] = Value::ints(elem_shape[k]);
        take_slice(v.ip(), elems[k].i->data(), in_split[k], at);
      } else {
        elems[k] = Value::floats(elem_shape[k]);
        take_slice(v.fp(), elems[k].mfp(), in_split[k], at);
      }
      bound[n_state + k] = &elems[k];
    }
    for (std::size_t k = 0; k < n_state; ++k) bound[k] = &state[k];
    std::vector<Value> r = run_subgraph(body, bound, c.shape_only, c.threads);
    for (std::size_t k = 0; k < n_state; ++k) {
      if (!same_kind_and_shape(r[k], state[k]))
        c.fail("state " + std::to_string(k) + " changes from " + shape_str(state[k].shape) + " to " + shape_str(r[k].shape));
      state[k] = std::move(r[k]);
    }
    for (std::size_t k = 0; k < n_scan_out; ++k) {
      Value& v = r[n_state + k];
      if (t == 0) out_shape[k] = shape_of(v);
      else if (!same_kind_and_shape(v, out_shape[k]))
        c.fail("scan output " + std::to_string(k) + " changes shape from " + shape_str(out_shape[k].shape) + " to " + shape_str(v.shape));
      if (!c.shape_only) {
        if ((t + 1) * std::max<std::int64_t>(1, v.numel()) > max_tensor_elements())
          c.fail("scan output " + std::to_string(k) + " is larger than the tensor size limit");
        outs[k].push_back(std::move(v));
      }
    }
  }
  if (len == 0 && n_scan_out > 0) c.fail("scan inputs of length 0: the scan outputs' shapes are unknown");
  c.out.clear();
  for (std::size_t k = 0; k < n_state && k < c.node.outputs.size(); ++k) c.out.push_back(std::move(state[k]));
  for (std::size_t k = 0; k < n_scan_out && n_state + k < c.node.outputs.size(); ++k) {
    Shape s = out_shape[k].shape;
    const std::size_t a = scan_axis(c, out_axes, k, s.size() + 1, "scan_output_axes");
    s.insert(s.begin() + static_cast<std::ptrdiff_t>(a), len);
    Value& o = c.alloc(n_state + k, s, out_shape[k].is_int);
    if (c.shape_only) continue;
    const AxisSplit g = split_at(s, a);
    for (std::int64_t t = 0; t < len; ++t) {
      const std::int64_t at = k < out_dirs.size() && out_dirs[k] == 1 ? len - 1 - t : t;
      const Value& v = outs[k][static_cast<std::size_t>(t)];
      if (o.is_int) put_slice(v.ip(), o.i->data(), g, at);
      else put_slice(v.fp(), o.mfp(), g, at);
    }
  }
}

}  // namespace qcast::nn::detail
