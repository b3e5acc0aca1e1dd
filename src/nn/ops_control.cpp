// Control flow: If and Loop (ONNX opset 11-21). Their bodies are Graphs held in the node's attributes;
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
    const std::int64_t per = shape_numel(scan_shape[k].shape);
    for (std::int64_t it = 0; it < iterations; ++it) {
      const Value& v = scans[k][static_cast<std::size_t>(it)];
      if (o.is_int) std::copy(v.ip(), v.ip() + per, o.i->begin() + it * per);
      else std::copy(v.fp(), v.fp() + per, o.f->begin() + it * per);
    }
  }
}

}  // namespace qcast::nn::detail
