// Operator implementations of the graph executor (ONNX semantics, float32 and int64 values).
#include "qcast/kernels/blas.hpp"
#include "nn/ops.hpp"
#include "qcast/kernels/conv_direct.hpp"


#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>

#include "qcast/half.hpp"
#include "qcast/quantize.hpp"

namespace qcast::nn::detail {

const Value& OpCtx::x(std::size_t k) const {
  if (!present(k)) fail("missing input " + std::to_string(k));
  return *in[k];
}

const Value& OpCtx::data(std::size_t k) const {
  const Value& v = x(k);
  if (!v.has_data()) fail("input " + std::to_string(k) + " must be a constant (computed from initializers)");
  return v;
}

std::int64_t OpCtx::int_at(const Value& v, std::int64_t k) const {
  if (v.is_int) {
    if (k < 0 || static_cast<std::size_t>(k) >= v.i->size()) fail("element " + std::to_string(k) + " of an integer operand requested");
    return (*v.i)[static_cast<std::size_t>(k)];
  }
  // A float operand where an integer is meant (shapes, axes, indices, counts): NaN or a value beyond
  // 2^62 is not one (converting it would be undefined; found by the ONNX fuzzer in Clip).
  const double d = v.at(k);
  if (!(std::fabs(d) <= 4611686018427387904.0)) fail("operand value " + std::to_string(d) + " is not an integer in range");
  return static_cast<std::int64_t>(d);
}

std::vector<std::int64_t> OpCtx::ints_of(std::size_t k) const {
  const Value& v = data(k);
  std::vector<std::int64_t> r(static_cast<std::size_t>(v.numel()));
  for (std::size_t j = 0; j < r.size(); ++j) r[j] = int_at(v, static_cast<std::int64_t>(j));
  return r;
}

Value& OpCtx::alloc(std::size_t k, Shape s, bool is_int) {
  if (out.size() <= k) out.resize(k + 1);
  Value& v = out[k];
  if (shape_numel(s) > max_tensor_elements()) fail("result " + shape_str(s) + " is larger than the tensor size limit");
  if (fold_budget && !shape_only) {
    const std::int64_t bytes = shape_numel(s) * (is_int ? 8 : 4);  // at most 2^35: no overflow
    if (bytes > *fold_budget)
      fail("constant folding would create a " + shape_str(s) + " tensor (" + std::to_string(bytes) + " bytes), beyond " + *fold_limit);
    *fold_budget -= bytes;
  }
  v.shape = std::move(s);
  v.is_int = is_int;
  v.f.reset();
  v.i.reset();
  if (!shape_only) {
    if (is_int) v.i = std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(v.numel()));
    else v.f = std::make_shared<FloatBuf>(static_cast<std::size_t>(v.numel()));
  }
  return v;
}

void OpCtx::fail(const std::string& msg) const {
  throw Error(node.op + " node '" + node.name + "': " + msg);
}

namespace {

std::int64_t norm_axis(const OpCtx& c, std::int64_t axis, std::size_t rank, bool allow_end = false) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < 0) axis += r;  // allow_end (Flatten): the range is [-r, r]
  if (axis < 0 || axis > r - (allow_end ? 0 : 1)) c.fail("axis out of range for rank " + std::to_string(rank));
  return axis;
}

// ---------------------------------------------------------------------------------------------
// Elementwise

Shape broadcast(const OpCtx& c, const Shape& a, const Shape& b) {
  Shape r(std::max(a.size(), b.size()));
  for (std::size_t k = 0; k < r.size(); ++k) {
    std::int64_t da = k < r.size() - a.size() ? 1 : a[k - (r.size() - a.size())];
    std::int64_t db = k < r.size() - b.size() ? 1 : b[k - (r.size() - b.size())];
    if (da != db && da != 1 && db != 1) c.fail("cannot broadcast " + shape_str(a) + " with " + shape_str(b));
    r[k] = da == 1 ? db : da;
  }
  return r;
}

std::vector<std::int64_t> bstrides(const Shape& in, const Shape& out) {
  std::vector<std::int64_t> st(out.size(), 0);
  std::int64_t s = 1;
  for (std::int64_t d = static_cast<std::int64_t>(in.size()) - 1, o = static_cast<std::int64_t>(out.size()) - 1; d >= 0; --d, --o) {
    st[o] = in[d] == 1 ? 0 : s;
    s *= in[d];
  }
  return st;
}

// Calls fn(out_index, a_offset, b_offset) for every output element.
template <class F>
void for_broadcast(const Shape& out, const Shape& sa, const Shape& sb, F fn) {
  const std::int64_t n = shape_numel(out);
  if (n == 0) return;
  if (sa == out && sb == out) { for (std::int64_t k = 0; k < n; ++k) fn(k, k, k); return; }
  auto ta = bstrides(sa, out), tb = bstrides(sb, out);
  const std::size_t r = out.size();
  if (r == 0) { fn(0, 0, 0); return; }
  std::vector<std::int64_t> idx(r, 0);
  const std::int64_t last = out[r - 1];
  std::int64_t oa = 0, ob = 0;
  for (std::int64_t k = 0; k < n; k += last) {
    for (std::int64_t j = 0; j < last; ++j) fn(k + j, oa + j * ta[r - 1], ob + j * tb[r - 1]);
    for (std::int64_t d = static_cast<std::int64_t>(r) - 2; d >= 0; --d) {
      if (++idx[d] < out[d]) { oa += ta[d]; ob += tb[d]; break; }
      oa -= ta[d] * (out[d] - 1);
      ob -= tb[d] * (out[d] - 1);
      idx[d] = 0;
    }
  }
}

template <class FF, class FI>
void binary(OpCtx& c, FF ff, FI fi) {
  const Value& a = c.x(0);
  const Value& b = c.x(1);
  Shape os = broadcast(c, a.shape, b.shape);
  const bool ints = a.is_int && b.is_int;
  Value& o = c.alloc(0, os, ints);
  if (c.shape_only) return;
  if (ints) {
    const auto* pa = a.ip(); const auto* pb = b.ip(); auto* po = o.i->data();
    for_broadcast(os, a.shape, b.shape, [&](std::int64_t k, std::int64_t ia, std::int64_t ib) { po[k] = fi(pa[ia], pb[ib]); });
  } else {
    auto get = [](const Value& v) {
      if (!v.is_int) return v.f;
      auto f = std::make_shared<FloatBuf>(v.i->size());
      for (std::size_t k = 0; k < f->size(); ++k) (*f)[k] = static_cast<float>((*v.i)[k]);
      return f;
    };
    auto fa = get(a), fb = get(b);
    const float* pa = fa->data(); const float* pb = fb->data(); float* po = o.mfp();
    for_broadcast(os, a.shape, b.shape, [&](std::int64_t k, std::int64_t ia, std::int64_t ib) { po[k] = ff(pa[ia], pb[ib]); });
  }
}

// Integer arithmetic wraps like the fixed-width integers it models (unsigned arithmetic: no signed
// overflow, which is undefined behaviour).
std::int64_t wadd(std::int64_t a, std::int64_t b) { return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b)); }
std::int64_t wsub(std::int64_t a, std::int64_t b) { return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) - static_cast<std::uint64_t>(b)); }
std::int64_t wmul(std::int64_t a, std::int64_t b) { return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b)); }

void op_add(OpCtx& c) { binary(c, [](float a, float b) { return a + b; }, wadd); }
void op_sub(OpCtx& c) { binary(c, [](float a, float b) { return a - b; }, wsub); }
void op_mul(OpCtx& c) { binary(c, [](float a, float b) { return a * b; }, wmul); }
void op_div(OpCtx& c) {
  binary(c, [](float a, float b) { return a / b; },
         [&c](std::int64_t a, std::int64_t b) -> std::int64_t { if (b == 0) c.fail("integer division by zero"); return b == -1 ? wsub(0, a) : a / b; });
}

template <class F>
void unary(OpCtx& c, F f) {
  const Value& a = c.x(0);
  if (a.is_int) c.fail("expects a float tensor");
  Value& o = c.alloc(0, a.shape);
  if (c.shape_only) return;
  const float* p = a.fp(); float* q = o.mfp();
  const std::int64_t n = a.numel();
  parallel_for(n, n > 65536 ? c.threads : 1, [&](std::int64_t b, std::int64_t e) { for (std::int64_t k = b; k < e; ++k) q[k] = f(p[k]); });
}

// Unary operators defined on integers too (Neg, Abs, Sign).
template <class FF, class FI>
void unary_num(OpCtx& c, FF ff, FI fi) {
  const Value& a = c.x(0);
  if (!a.is_int) { unary(c, ff); return; }
  Value& o = c.alloc(0, a.shape, true);
  if (c.shape_only) return;
  for (std::int64_t k = 0; k < a.numel(); ++k) (*o.i)[k] = fi((*a.i)[k]);
}
void op_relu(OpCtx& c) { unary(c, [](float x) { return x > 0.0f ? x : 0.0f; }); }
void op_sigmoid(OpCtx& c) { unary(c, [](float x) { return 1.0f / (1.0f + std::exp(-x)); }); }
void op_tanh(OpCtx& c) { unary(c, [](float x) { return std::tanh(x); }); }
void op_erf(OpCtx& c) { unary(c, [](float x) { return std::erf(x); }); }
void op_sqrt(OpCtx& c) { unary(c, [](float x) { return std::sqrt(x); }); }
void op_gelu(OpCtx& c) {
  if (c.node.get_s("approximate", "none") == "tanh")
    unary(c, [](float x) { return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))); });
  else
    unary(c, [](float x) { return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f)); });
}
void op_leaky_relu(OpCtx& c) {
  const float alpha = c.node.get_f("alpha", 0.01f);
  unary(c, [alpha](float x) { return x >= 0.0f ? x : alpha * x; });
}
void op_clip(OpCtx& c) {
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  if (c.opset < 11) { lo = c.node.get_f("min", lo); hi = c.node.get_f("max", hi); }
  if (c.present(1) && c.x(1).numel() > 0) lo = static_cast<float>(c.data(1).at(0));
  if (c.present(2) && c.x(2).numel() > 0) hi = static_cast<float>(c.data(2).at(0));
  if (c.x(0).is_int) {
    const std::int64_t ilo = c.present(1) && c.x(1).numel() > 0 ? c.int_at(c.data(1), 0) : INT64_MIN;
    const std::int64_t ihi = c.present(2) && c.x(2).numel() > 0 ? c.int_at(c.data(2), 0) : INT64_MAX;
    unary_num(c, [](float x) { return x; }, [ilo, ihi](std::int64_t x) { return std::min(std::max(x, ilo), ihi); });
    return;
  }
  unary(c, [lo, hi](float x) { return std::min(std::max(x, lo), hi); });
}

void op_identity(OpCtx& c) {
  if (c.out.empty()) c.out.resize(1);
  c.out[0] = c.x(0);
}

// ---------------------------------------------------------------------------------------------
// Activation fake-quant helper: returns a pointer to the (possibly quantized) input data.

}  // namespace

const float* maybe_quant_act(OpCtx& c, const Value& x, int axis, std::vector<float>& buf) {
  if (!c.node.quant.act) return x.fp();
  buf.resize(static_cast<std::size_t>(x.numel()));
  c.node.quant.act->apply(x.fp(), buf.data(), x.shape, axis, c.threads, c.node.name);
  return buf.data();
}

namespace {

// ---------------------------------------------------------------------------------------------
// Conv / pooling

struct Window {
  std::int64_t kh, kw, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0, P = 0, Q = 0;
};

// A window attribute (strides, dilations, pads, kernel_shape) as its 2-D form: 1-D operators (input
// [N, C, L]) run as 2-D ones over [N, C, 1, L], so their attributes gain a leading unit / zero entry.
std::vector<std::int64_t> attr2d(const OpCtx& c, const std::string& name, std::vector<std::int64_t> def, bool one_d) {
  if (!c.node.has(name)) return def;
  auto v = c.node.get_ints(name);
  if (!one_d) return v;
  if (name == "pads") {
    if (v.size() != 2) c.fail("pads must have 2 entries for a 1-D window");
    return {0, v[0], 0, v[1]};
  }
  if (v.size() != 1) c.fail(name + " must have 1 entry for a 1-D window");
  return {name == "kernel_shape" ? 1 : (name == "output_padding" ? 0 : 1), v[0]};
}

Window window(const OpCtx& c, std::int64_t H, std::int64_t W, std::int64_t kh, std::int64_t kw, bool ceil_mode, bool one_d = false) {
  Window w{kh, kw};
  auto st = attr2d(c, "strides", {1, 1}, one_d);
  auto di = attr2d(c, "dilations", {1, 1}, one_d);
  auto pads = attr2d(c, "pads", {0, 0, 0, 0}, one_d);
  if (st.size() != 2 || di.size() != 2 || pads.size() != 4) c.fail("only 2-D windows are supported (strides/dilations/pads)");
  w.sh = st[0]; w.sw = st[1]; w.dh = di[0]; w.dw = di[1];
  if (w.sh < 1 || w.sw < 1 || w.dh < 1 || w.dw < 1 || kh < 1 || kw < 1) c.fail("bad strides, dilations or kernel");
  w.pt = pads[0]; w.pl = pads[1]; w.pb = pads[2]; w.pr = pads[3];
  for (auto p : pads) if (p < 0) c.fail("negative pads");
  const std::string ap = c.node.get_s("auto_pad", "NOTSET");
  const std::int64_t ekh = w.dh * (kh - 1) + 1, ekw = w.dw * (kw - 1) + 1;
  if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
    std::int64_t oh = (H + w.sh - 1) / w.sh, ow = (W + w.sw - 1) / w.sw;
    std::int64_t th = std::max<std::int64_t>(0, (oh - 1) * w.sh + ekh - H), tw = std::max<std::int64_t>(0, (ow - 1) * w.sw + ekw - W);
    if (ap == "SAME_UPPER") { w.pt = th / 2; w.pb = th - w.pt; w.pl = tw / 2; w.pr = tw - w.pl; }
    else { w.pb = th / 2; w.pt = th - w.pb; w.pr = tw / 2; w.pl = tw - w.pr; }
  } else if (ap == "VALID") {
    w.pt = w.pl = w.pb = w.pr = 0;
  } else if (ap != "NOTSET") {
    c.fail("unknown auto_pad '" + ap + "'");
  }
  const std::int64_t nh = H + w.pt + w.pb - ekh, nw = W + w.pl + w.pr - ekw;
  if (nh < 0 || nw < 0) c.fail("kernel larger than the padded input");
  if (ceil_mode) {
    // PyTorch / ONNX: the last window must start inside the input or the leading padding.
    w.P = (nh + w.sh - 1) / w.sh + 1;
    w.Q = (nw + w.sw - 1) / w.sw + 1;
    if ((w.P - 1) * w.sh >= H + w.pt) --w.P;
    if ((w.Q - 1) * w.sw >= W + w.pl) --w.Q;
  } else {
    w.P = nh / w.sh + 1;
    w.Q = nw / w.sw + 1;
  }
  return w;
}

void im2col(const float* x, std::int64_t C, std::int64_t H, std::int64_t W, const Window& w, float* col) {
  const std::int64_t PQ = w.P * w.Q;
  for (std::int64_t ch = 0; ch < C; ++ch)
    for (std::int64_t ki = 0; ki < w.kh; ++ki)
      for (std::int64_t kj = 0; kj < w.kw; ++kj) {
        float* row = col + ((ch * w.kh + ki) * w.kw + kj) * PQ;
        const float* xc = x + ch * H * W;
        for (std::int64_t p = 0; p < w.P; ++p) {
          const std::int64_t ih = p * w.sh - w.pt + ki * w.dh;
          float* r = row + p * w.Q;
          if (ih < 0 || ih >= H) { std::fill(r, r + w.Q, 0.0f); continue; }
          const float* xr = xc + ih * W;
          const std::int64_t off = kj * w.dw - w.pl;
          if (w.sw == 1) {
            std::int64_t q0 = std::max<std::int64_t>(0, -off), q1 = std::min<std::int64_t>(w.Q, W - off);
            if (q1 < q0) q1 = q0;
            // Plain loops, not fill / memcpy calls: rows are short (LeNet: 28 and 10 values), so the
            // calls' overhead dominated im2col.
            for (std::int64_t q = 0; q < q0; ++q) r[q] = 0.0f;
            for (std::int64_t q = q0; q < q1; ++q) r[q] = xr[q + off];
            for (std::int64_t q = q1; q < w.Q; ++q) r[q] = 0.0f;
          } else {
            for (std::int64_t q = 0; q < w.Q; ++q) {
              const std::int64_t iw = q * w.sw + off;
              r[q] = (iw < 0 || iw >= W) ? 0.0f : xr[iw];
            }
          }
        }
      }
}

// The 4-D view of a 1-D (rank 3) or 2-D (rank 4) convolution / pooling operand.
Shape as_2d(const OpCtx& c, const Shape& s, const char* what) {
  if (s.size() == 4) return s;
  if (s.size() == 3) return {s[0], s[1], 1, s[2]};
  c.fail(std::string("only 1-D and 2-D windows are supported (3-D or 4-D ") + what + "), got " + shape_str(s));
}

}  // namespace

ConvGeometry conv_geometry(const OpCtx& c) {
  const Value& X = c.x(0);
  const Value& Wt = c.x(1);
  if (X.shape.size() != Wt.shape.size()) c.fail("input " + shape_str(X.shape) + " and weight " + shape_str(Wt.shape) + " differ in rank");
  const bool one_d = X.shape.size() == 3;
  const Shape xs4 = as_2d(c, X.shape, "input"), ws4 = as_2d(c, Wt.shape, "weight");
  if (X.is_int || Wt.is_int) c.fail("expects float tensors");
  ConvGeometry g;
  g.one_d = one_d;
  g.N = xs4[0]; g.C = xs4[1]; g.H = xs4[2]; g.W = xs4[3];
  g.M = ws4[0]; g.kh = ws4[2]; g.kw = ws4[3];
  const std::int64_t Cg = ws4[1];
  g.G = c.node.get_i("group", 1);
  if (g.G < 1 || g.C != Cg * g.G || g.M % g.G != 0) c.fail("channel mismatch: input " + shape_str(X.shape) + ", weight " + shape_str(Wt.shape) + ", group " + std::to_string(g.G));
  auto ks = attr2d(c, "kernel_shape", {g.kh, g.kw}, one_d);
  if (ks.size() != 2 || ks[0] != g.kh || ks[1] != g.kw) c.fail("kernel_shape does not match the weight");
  const Window w = window(c, g.H, g.W, g.kh, g.kw, false, one_d);
  g.sh = w.sh; g.sw = w.sw; g.dh = w.dh; g.dw = w.dw; g.pt = w.pt; g.pl = w.pl; g.pb = w.pb; g.pr = w.pr; g.P = w.P; g.Q = w.Q;
  const Value* B = c.present(2) ? &c.x(2) : nullptr;
  if (B && B->numel() != g.M) c.fail("bias has " + std::to_string(B->numel()) + " elements, expected " + std::to_string(g.M));
  if (B && B->is_int) c.fail("bias must be float");
  return g;
}

namespace {

void op_conv(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& Wt = c.x(1);
  const ConvGeometry g = conv_geometry(c);
  const bool one_d = g.one_d;
  const std::int64_t N = g.N, C = g.C, H = g.H, W = g.W, M = g.M, G = g.G, kh = g.kh, kw = g.kw, Cg = C / G;
  const Window w{kh, kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.pb, g.pr, g.P, g.Q};
  const Value* B = c.present(2) ? &c.x(2) : nullptr;
  Value& Y = c.alloc(0, one_d ? Shape{N, M, w.Q} : Shape{N, M, w.P, w.Q});
  if (c.shape_only) return;
  std::vector<float> qbuf;
  const float* x = maybe_quant_act(c, X, 1, qbuf);
  const float* wt = Wt.fp();
  const float* bias = B ? B->fp() : nullptr;
  float* y = Y.mfp();
  const std::int64_t Mg = M / G, K = Cg * kh * kw, PQ = w.P * w.Q;
  const bool direct = kh == 1 && kw == 1 && w.sh == 1 && w.sw == 1 && w.pt == 0 && w.pl == 0 && w.pb == 0 && w.pr == 0;
  const kern::ConvDirectShape ds{C, H, W, M, kh, kw, w.P, w.Q};
  const bool small = !direct && G == 1 && w.sh == 1 && w.sw == 1 && w.dh == 1 && w.dw == 1 && w.pt == 0 && w.pl == 0 &&
                     w.pb == 0 && w.pr == 0 && kern::conv_direct_applies(ds);
  if (small) {
    parallel_for(N, c.threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t n = b; n < e; ++n) kern::conv_direct(ds, x + n * C * H * W, wt, bias, y + n * M * w.P * w.Q);
    });
    return;
  }
  parallel_for(N, c.threads, [&](std::int64_t b, std::int64_t e) {
    FloatBuf col(direct ? 0 : static_cast<std::size_t>(K * PQ));
    for (std::int64_t n = b; n < e; ++n) {
      for (std::int64_t g = 0; g < G; ++g) {
        const float* xs = x + (n * C + g * Cg) * H * W;
        const float* src = xs;
        if (!direct) { im2col(xs, Cg, H, W, w, col.data()); src = col.data(); }
        float* ys = y + (n * M + g * Mg) * PQ;
        blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(Mg), static_cast<int>(PQ), static_cast<int>(K),
                    1.0f, wt + g * Mg * K, static_cast<int>(K), src, static_cast<int>(PQ), 0.0f, ys, static_cast<int>(PQ));
        if (bias)
          for (std::int64_t m = 0; m < Mg; ++m) {
            const float bv = bias[g * Mg + m];
            float* yr = ys + m * PQ;
            for (std::int64_t k = 0; k < PQ; ++k) yr[k] += bv;
          }
      }
    }
  });
}

}  // namespace

PoolGeometry pool_geometry(const OpCtx& c, bool is_max) {
  const Value& X = c.x(0);
  if (X.is_int) c.fail("expects a float tensor");
  const bool one_d = X.shape.size() == 3;
  const Shape xs4 = as_2d(c, X.shape, "input");
  if (!c.node.has("kernel_shape")) c.fail("kernel_shape is required");
  auto ks = attr2d(c, "kernel_shape", {}, one_d);
  if (ks.size() != 2) c.fail("kernel_shape must have " + std::string(one_d ? "1 entry" : "2 entries"));
  if (!is_max && c.node.has("dilations")) {
    auto d = attr2d(c, "dilations", {1, 1}, one_d);
    if (d != std::vector<std::int64_t>{1, 1}) c.fail("dilated AveragePool is not supported");
  }
  PoolGeometry p;
  ConvGeometry& g = p.g;
  g.one_d = one_d;
  g.N = xs4[0]; g.C = g.M = g.G = xs4[1]; g.H = xs4[2]; g.W = xs4[3]; g.kh = ks[0]; g.kw = ks[1];
  p.ceil = c.node.get_i("ceil_mode", 0) != 0;
  p.include_pad = c.node.get_i("count_include_pad", 0) != 0;
  const Window w = window(c, g.H, g.W, g.kh, g.kw, p.ceil, one_d);
  g.sh = w.sh; g.sw = w.sw; g.dh = w.dh; g.dw = w.dw; g.pt = w.pt; g.pl = w.pl; g.pb = w.pb; g.pr = w.pr; g.P = w.P; g.Q = w.Q;
  return p;
}

namespace {

void pool(OpCtx& c, bool is_max) {
  const Value& X = c.x(0);
  const PoolGeometry pg = pool_geometry(c, is_max);
  const ConvGeometry& g = pg.g;
  const bool one_d = g.one_d;
  const std::int64_t N = g.N, C = g.C, H = g.H, W = g.W;
  const Window w{g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl, g.pb, g.pr, g.P, g.Q};
  Value& Y = c.alloc(0, one_d ? Shape{N, C, w.Q} : Shape{N, C, w.P, w.Q});
  if (c.shape_only) return;
  const bool include_pad = pg.include_pad;
  const float* x = X.fp();
  float* y = Y.mfp();
  // Every window inside the image (no padding reached, no dilation): no bounds checks, and the common
  // 2x2 / stride-2 max pool unrolled (the generic loop was a third of a LeNet-5 forward pass).
  const bool inside = w.dh == 1 && w.dw == 1 && w.pt == 0 && w.pl == 0 && (w.P - 1) * w.sh + w.kh <= H &&
                      (w.Q - 1) * w.sw + w.kw <= W;
  const bool max2x2 = inside && is_max && w.kh == 2 && w.kw == 2 && w.sh == 2 && w.sw == 2;
  auto mx = [](float acc, float v) { return (v > acc || std::isnan(v)) ? v : acc; };
  parallel_for(N * C, c.threads, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t nc = b; nc < e; ++nc) {
      const float* xs = x + nc * H * W;
      float* ys = y + nc * w.P * w.Q;
      if (max2x2) {
        for (std::int64_t p = 0; p < w.P; ++p) {
          const float* r0 = xs + 2 * p * W;
          const float* r1 = r0 + W;
          float* yr = ys + p * w.Q;
          for (std::int64_t q = 0; q < w.Q; ++q)
            yr[q] = mx(mx(mx(mx(-std::numeric_limits<float>::infinity(), r0[2 * q]), r0[2 * q + 1]), r1[2 * q]), r1[2 * q + 1]);
        }
        continue;
      }
      if (inside) {
        for (std::int64_t p = 0; p < w.P; ++p)
          for (std::int64_t q = 0; q < w.Q; ++q) {
            const float* base = xs + p * w.sh * W + q * w.sw;
            float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
            for (std::int64_t ki = 0; ki < w.kh; ++ki)
              for (std::int64_t kj = 0; kj < w.kw; ++kj) acc = is_max ? mx(acc, base[ki * W + kj]) : acc + base[ki * W + kj];
            ys[p * w.Q + q] = is_max ? acc : acc / static_cast<float>(w.kh * w.kw);
          }
        continue;
      }
      for (std::int64_t p = 0; p < w.P; ++p)
        for (std::int64_t q = 0; q < w.Q; ++q) {
          float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
          std::int64_t cnt = 0;
          for (std::int64_t ki = 0; ki < w.kh; ++ki) {
            const std::int64_t ih = p * w.sh - w.pt + ki * w.dh;
            if (ih < 0 || ih >= H) continue;
            for (std::int64_t kj = 0; kj < w.kw; ++kj) {
              const std::int64_t iw = q * w.sw - w.pl + kj * w.dw;
              if (iw < 0 || iw >= W) continue;
              const float v = xs[ih * W + iw];
              if (is_max) acc = (v > acc || std::isnan(v)) ? v : acc;
              else acc += v;
              ++cnt;
            }
          }
          if (!is_max) {
            if (include_pad) {
              const std::int64_t h0 = p * w.sh - w.pt, w0 = q * w.sw - w.pl;
              const std::int64_t h1 = std::min(h0 + w.kh, H + w.pb), w1 = std::min(w0 + w.kw, W + w.pr);
              cnt = (h1 - h0) * (w1 - w0);
            }
            acc = cnt ? acc / static_cast<float>(cnt) : 0.0f;
          }
          ys[p * w.Q + q] = acc;
        }
    }
  });
}
void op_maxpool(OpCtx& c) {
  if (c.node.outputs.size() > 1) c.fail("the Indices output of MaxPool is not supported");
  pool(c, true);
}
void op_avgpool(OpCtx& c) { pool(c, false); }

void global_pool(OpCtx& c, bool is_max) {
  const Value& X = c.x(0);
  if (X.is_int) c.fail("expects a float tensor");
  if (X.shape.size() < 3) c.fail("expects a tensor of rank >= 3, got " + shape_str(X.shape));
  Shape os = X.shape;
  std::int64_t inner = 1;
  for (std::size_t k = 2; k < os.size(); ++k) { inner *= os[k]; os[k] = 1; }
  Value& Y = c.alloc(0, os);
  if (c.shape_only) return;
  const std::int64_t nc = X.shape[0] * X.shape[1];
  const float* x = X.fp();
  float* y = Y.mfp();
  for (std::int64_t k = 0; k < nc; ++k) {
    const float* s = x + k * inner;
    if (is_max) {
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = 0; j < inner; ++j) m = std::max(m, s[j]);
      y[k] = m;
    } else {
      double acc = 0;
      for (std::int64_t j = 0; j < inner; ++j) acc += s[j];
      y[k] = static_cast<float>(acc / static_cast<double>(inner));
    }
  }
}
void op_gap(OpCtx& c) { global_pool(c, false); }
void op_gmp(OpCtx& c) { global_pool(c, true); }

// ---------------------------------------------------------------------------------------------
// Gemm / MatMul

// C[M,N] (row-major, ldc = N) = op(A) * op(B). Rows go to threads in fixed chunks of 32, so every
// sgemm call has the same shape whatever the thread count (results are bit-identical for any --threads).
void sgemm_rows(int threads, bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, const float* A,
                const float* B, float* C, float beta = 0.0f) {
  const std::int64_t lda = ta ? M : K, ldb = tb ? K : N;
  constexpr std::int64_t kChunk = 32;
  const std::int64_t chunks = (M + kChunk - 1) / kChunk;
  const int t = (M * N * K < 32768) ? 1 : threads;
  parallel_for(chunks, t, [&](std::int64_t cb, std::int64_t ce) {
    for (std::int64_t ch = cb; ch < ce; ++ch) {
      const std::int64_t b = ch * kChunk, e = std::min(M, b + kChunk);
      const float* a = ta ? A + b : A + b * lda;
      blas::sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(e - b),
                  static_cast<int>(N), static_cast<int>(K), 1.0f, a, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
                  C + b * N, static_cast<int>(N));
    }
  });
}

void op_gemm(OpCtx& c) {
  const Value& A = c.x(0);
  const Value& B = c.x(1);
  if (A.shape.size() != 2 || B.shape.size() != 2) c.fail("expects 2-D A and B, got " + shape_str(A.shape) + " and " + shape_str(B.shape));
  const bool ta = c.node.get_i("transA", 0) != 0, tb = c.node.get_i("transB", 0) != 0;
  const std::int64_t M = ta ? A.shape[1] : A.shape[0], K = ta ? A.shape[0] : A.shape[1];
  const std::int64_t K2 = tb ? B.shape[1] : B.shape[0], N = tb ? B.shape[0] : B.shape[1];
  if (K != K2) c.fail("inner dimensions differ: A " + shape_str(A.shape) + ", B " + shape_str(B.shape));
  const float alpha = c.node.get_f("alpha", 1.0f), beta = c.node.get_f("beta", 1.0f);
  const Value* Cb = c.present(2) ? &c.x(2) : nullptr;
  if (Cb) broadcast(c, Cb->shape, {M, N});
  Value& Y = c.alloc(0, {M, N});
  if (c.shape_only) return;
  if (A.is_int || B.is_int) c.fail("expects float tensors");
  std::vector<float> qbuf;
  const float* a = maybe_quant_act(c, A, ta ? 0 : 1, qbuf);
  sgemm_rows(c.threads, ta, tb, M, N, K, a, B.fp(), Y.mfp());
  float* y = Y.mfp();
  if (alpha != 1.0f) for (std::int64_t k = 0; k < M * N; ++k) y[k] *= alpha;
  if (Cb && beta != 0.0f) {
    if (Cb->is_int) c.fail("bias must be float");
    const float* cb = Cb->fp();
    for_broadcast({M, N}, Cb->shape, {M, N}, [&](std::int64_t k, std::int64_t ic, std::int64_t) { y[k] += beta * cb[ic]; });
  }
}

void op_matmul(OpCtx& c) {
  const Value& A = c.x(0);
  const Value& B = c.x(1);
  if (A.shape.empty() || B.shape.empty()) c.fail("scalar operands are not allowed");
  Shape sa = A.shape, sb = B.shape;
  const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
  if (a1) sa.insert(sa.begin(), 1);
  if (b1) sb.push_back(1);
  const std::int64_t M = sa[sa.size() - 2], K = sa.back(), K2 = sb[sb.size() - 2], N = sb.back();
  if (K != K2) c.fail("inner dimensions differ: " + shape_str(A.shape) + " x " + shape_str(B.shape));
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  Shape bo = broadcast(c, ba, bb);
  Shape os = bo;
  if (!a1) os.push_back(M);
  if (!b1) os.push_back(N);
  Value& Y = c.alloc(0, os);
  if (c.shape_only) return;
  if (A.is_int || B.is_int) c.fail("expects float tensors");
  std::vector<float> qbuf;
  const float* a = maybe_quant_act(c, A, static_cast<int>(A.shape.size()) - 1, qbuf);
  const float* b = B.fp();
  float* y = Y.mfp();
  const std::int64_t nb = shape_numel(bo);
  if (shape_numel(bb) == 1 && (ba == bo)) {  // B shared: one tall GEMM
    sgemm_rows(c.threads, false, false, nb * M, N, K, a, b, y);
    return;
  }
  std::vector<std::int64_t> offa(static_cast<std::size_t>(nb)), offb(static_cast<std::size_t>(nb));
  for_broadcast(bo, ba, bb, [&](std::int64_t k, std::int64_t ia, std::int64_t ib) { offa[k] = ia; offb[k] = ib; });
  parallel_for(nb, c.threads, [&](std::int64_t s, std::int64_t e) {
    for (std::int64_t k = s; k < e; ++k)
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f,
                  a + offa[k] * M * K, static_cast<int>(K), b + offb[k] * K * N, static_cast<int>(N), 0.0f, y + k * M * N,
                  static_cast<int>(N));
  });
}

// ---------------------------------------------------------------------------------------------
// Normalisation

void op_batchnorm(OpCtx& c) {
  const Value& X = c.x(0);
  if (X.shape.size() < 2) c.fail("expects rank >= 2");
  for (std::size_t k = 0; k < 5; ++k) if (c.x(k).is_int) c.fail("expects float tensors");
  const std::int64_t C = X.shape[1];
  for (int k = 1; k <= 4; ++k)
    if (c.x(k).numel() != C) c.fail("parameter " + std::to_string(k) + " must have " + std::to_string(C) + " elements");
  if (c.node.outputs.size() > 1) c.fail("training-mode outputs are not supported");
  Value& Y = c.alloc(0, X.shape);
  if (c.shape_only) return;
  const float eps = c.node.get_f("epsilon", 1e-5f);
  const float *s = c.x(1).fp(), *bb = c.x(2).fp(), *mu = c.x(3).fp(), *var = c.x(4).fp();
  const std::int64_t inner = X.numel() / (X.shape[0] * C);
  const float* x = X.fp();
  float* y = Y.mfp();
  for (std::int64_t n = 0; n < X.shape[0]; ++n)
    for (std::int64_t ch = 0; ch < C; ++ch) {
      const float a = s[ch] / std::sqrt(var[ch] + eps), b = bb[ch] - mu[ch] * a;
      const std::int64_t o = (n * C + ch) * inner;
      for (std::int64_t k = 0; k < inner; ++k) y[o + k] = x[o + k] * a + b;
    }
}

void op_layernorm(OpCtx& c) {
  const Value& X = c.x(0);
  const std::int64_t axis = norm_axis(c, c.node.get_i("axis", -1), X.shape.size());
  if (X.is_int || c.x(1).is_int || (c.present(2) && c.x(2).is_int)) c.fail("expects float tensors");
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t k = 0; k < static_cast<std::int64_t>(X.shape.size()); ++k) (k < axis ? outer : inner) *= X.shape[k];
  if (c.x(1).numel() != inner || (c.present(2) && c.x(2).numel() != inner)) c.fail("scale / bias size does not match the normalised dims");
  Value& Y = c.alloc(0, X.shape);
  // Optional outputs Mean and InvStdDev: X's shape with the normalised dims set to 1.
  Shape ms = X.shape;
  for (std::size_t k = static_cast<std::size_t>(axis); k < ms.size(); ++k) ms[k] = 1;
  Value* Mo = c.node.outputs.size() > 1 ? &c.alloc(1, ms) : nullptr;
  Value* Io = c.node.outputs.size() > 2 ? &c.alloc(2, ms) : nullptr;
  if (c.shape_only) return;
  const float eps = c.node.get_f("epsilon", 1e-5f);
  const float* g = c.x(1).fp();
  const float* b = c.present(2) ? c.x(2).fp() : nullptr;
  const float* x = X.fp();
  float* y = Y.mfp();
  for (std::int64_t o = 0; o < outer; ++o) {
    const float* xs = x + o * inner;
    float* ys = y + o * inner;
    double mean = 0, var = 0;
    for (std::int64_t k = 0; k < inner; ++k) mean += xs[k];
    mean /= static_cast<double>(inner);
    for (std::int64_t k = 0; k < inner; ++k) var += (xs[k] - mean) * (xs[k] - mean);
    var /= static_cast<double>(inner);
    const float r = static_cast<float>(1.0 / std::sqrt(var + eps));
    if (Mo) Mo->mfp()[o] = static_cast<float>(mean);
    if (Io) Io->mfp()[o] = r;
    for (std::int64_t k = 0; k < inner; ++k) ys[k] = (xs[k] - static_cast<float>(mean)) * r * g[k] + (b ? b[k] : 0.0f);
  }
}

void softmax(OpCtx& c, bool log) {
  const Value& X = c.x(0);
  if (X.is_int) c.fail("expects a float tensor");
  const auto r = X.shape.size();
  std::int64_t axis = norm_axis(c, c.node.get_i("axis", c.opset >= 13 ? -1 : 1), r);
  Value& Y = c.alloc(0, X.shape);
  if (c.shape_only) return;
  // opset < 13: softmax over the flattened dims [axis, rank); opset >= 13: over one axis.
  std::int64_t outer = 1, len = 1, inner = 1;
  for (std::size_t k = 0; k < r; ++k) {
    if (static_cast<std::int64_t>(k) < axis) outer *= X.shape[k];
    else if (static_cast<std::int64_t>(k) == axis || c.opset < 13) len *= X.shape[k];
    else inner *= X.shape[k];
  }
  const float* x = X.fp();
  float* y = Y.mfp();
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < inner; ++i) {
      const float* xs = x + o * len * inner + i;
      float* ys = y + o * len * inner + i;
      float m = -std::numeric_limits<float>::infinity();
      for (std::int64_t k = 0; k < len; ++k) m = std::max(m, xs[k * inner]);
      double s = 0;
      for (std::int64_t k = 0; k < len; ++k) { ys[k * inner] = std::exp(xs[k * inner] - m); s += ys[k * inner]; }
      if (log) {
        const float ls = static_cast<float>(std::log(s));
        for (std::int64_t k = 0; k < len; ++k) ys[k * inner] = xs[k * inner] - m - ls;
      } else {
        const float inv = static_cast<float>(1.0 / s);
        for (std::int64_t k = 0; k < len; ++k) ys[k * inner] *= inv;
      }
    }
}
void op_softmax(OpCtx& c) { softmax(c, false); }
void op_log_softmax(OpCtx& c) { softmax(c, true); }

// ---------------------------------------------------------------------------------------------
// Shape manipulation

void copy_as(OpCtx& c, Shape s) {
  const Value& X = c.x(0);
  if (shape_numel(s) != X.numel()) c.fail("cannot reshape " + shape_str(X.shape) + " to " + shape_str(s));
  if (c.out.empty()) c.out.resize(1);
  Value v = X;  // shares storage: reshapes never copy
  v.shape = std::move(s);
  c.out[0] = std::move(v);
}

void op_reshape(OpCtx& c) {
  const Value& X = c.x(0);
  auto want = c.opset >= 5 ? c.ints_of(1) : c.node.get_ints("shape");
  const bool allowzero = c.node.get_i("allowzero", 0) != 0;
  Shape s(want.size());
  std::int64_t known = 1, infer = -1;
  for (std::size_t k = 0; k < want.size(); ++k) {
    std::int64_t d = want[k];
    if (d == 0 && !allowzero) {
      if (k >= X.shape.size()) c.fail("shape entry 0 refers to a missing input dim");
      d = X.shape[k];
    }
    if (d == -1) {
      if (infer >= 0) c.fail("more than one -1 in the target shape");
      infer = static_cast<std::int64_t>(k);
      s[k] = 1;
      continue;
    }
    if (d < 0) c.fail("negative target dimension");
    s[k] = d;
    known *= d;
  }
  if (infer >= 0) {
    if (known == 0 || X.numel() % known != 0) c.fail("cannot infer -1 reshaping " + shape_str(X.shape) + " to " + shape_str(Shape(want.begin(), want.end())));
    s[infer] = X.numel() / known;
  }
  copy_as(c, s);
}

void op_flatten(OpCtx& c) {
  const Value& X = c.x(0);
  const std::int64_t axis = norm_axis(c, c.node.get_i("axis", 1), X.shape.size(), true);
  std::int64_t a = 1, b = 1;
  for (std::int64_t k = 0; k < static_cast<std::int64_t>(X.shape.size()); ++k) (k < axis ? a : b) *= X.shape[k];
  copy_as(c, {a, b});
}

std::vector<std::int64_t> axes_arg(const OpCtx& c) {
  if (c.opset >= 13) return c.present(1) ? c.ints_of(1) : std::vector<std::int64_t>{};
  return c.node.get_ints("axes");
}

void op_squeeze(OpCtx& c) {
  const Value& X = c.x(0);
  auto axes = axes_arg(c);
  std::vector<bool> drop(X.shape.size(), false);
  if (axes.empty()) {
    for (std::size_t k = 0; k < X.shape.size(); ++k) drop[k] = X.shape[k] == 1;
  } else {
    for (auto a : axes) {
      auto k = norm_axis(c, a, X.shape.size());
      if (X.shape[k] != 1) c.fail("cannot squeeze a dimension of size " + std::to_string(X.shape[k]));
      drop[k] = true;
    }
  }
  Shape s;
  for (std::size_t k = 0; k < X.shape.size(); ++k) if (!drop[k]) s.push_back(X.shape[k]);
  copy_as(c, s);
}

void op_unsqueeze(OpCtx& c) {
  const Value& X = c.x(0);
  auto axes = axes_arg(c);
  const std::size_t r = X.shape.size() + axes.size();
  std::vector<bool> ins(r, false);
  for (auto a : axes) {
    auto k = norm_axis(c, a, r);
    if (ins[k]) c.fail("repeated axis");
    ins[k] = true;
  }
  Shape s;
  std::size_t j = 0;
  for (std::size_t k = 0; k < r; ++k) s.push_back(ins[k] ? 1 : X.shape[j++]);
  copy_as(c, s);
}

// Generic gather of elements: out[k] = in[src(k)] for ints or floats.
template <class F>
void gather_elems(OpCtx& c, const Value& X, Value& Y, F src) {
  const std::int64_t n = Y.numel();
  if (X.is_int) { const auto* p = X.ip(); auto* q = Y.i->data(); for (std::int64_t k = 0; k < n; ++k) q[k] = p[src(k)]; }
  else { const float* p = X.fp(); float* q = Y.mfp(); for (std::int64_t k = 0; k < n; ++k) q[k] = p[src(k)]; }
}

// Calls fn(row, index) for every row of a tensor of shape `s` along its last axis (row = the flat index
// of the row, index = its position in the leading dimensions), rows split over the threads.
template <class F>
void for_each_row(const Shape& s, int threads, F fn) {
  const std::size_t r = s.size();
  std::int64_t rows = 1;
  for (std::size_t d = 0; d + 1 < r; ++d) rows *= s[d];
  const std::int64_t L = r ? s[r - 1] : 1;
  parallel_for(rows, L * rows >= (1 << 16) ? threads : 1, [&](std::int64_t b, std::int64_t e) {
    std::vector<std::int64_t> idx(r > 0 ? r - 1 : 0, 0);
    std::int64_t rem = b;
    for (std::int64_t d = static_cast<std::int64_t>(idx.size()) - 1; d >= 0; --d) { idx[d] = rem % s[d]; rem /= s[d]; }
    for (std::int64_t row = b; row < e; ++row) {
      fn(row, idx);
      for (std::int64_t d = static_cast<std::int64_t>(idx.size()) - 1; d >= 0; --d) {
        if (++idx[d] < s[d]) break;
        idx[d] = 0;
      }
    }
  });
}

}  // namespace

std::vector<std::int64_t> strides_of(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (std::int64_t k = static_cast<std::int64_t>(s.size()) - 2; k >= 0; --k) st[k] = st[k + 1] * s[k + 1];
  return st;
}

namespace {

void op_transpose(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  auto perm = c.node.get_ints("perm");
  if (perm.empty()) for (std::size_t k = 0; k < r; ++k) perm.push_back(static_cast<std::int64_t>(r - 1 - k));
  if (perm.size() != r) c.fail("perm has the wrong length");
  std::vector<bool> seen(r, false);
  Shape s(r);
  for (std::size_t k = 0; k < r; ++k) {
    if (perm[k] < 0 || perm[k] >= static_cast<std::int64_t>(r) || seen[perm[k]]) c.fail("perm is not a permutation");
    seen[perm[k]] = true;
    s[k] = X.shape[perm[k]];
  }
  Value& Y = c.alloc(0, s, X.is_int);
  if (c.shape_only) return;
  auto ist = strides_of(X.shape);
  std::vector<std::int64_t> pst(r);
  for (std::size_t k = 0; k < r; ++k) pst[k] = ist[perm[k]];
  std::vector<std::int64_t> idx(r, 0);
  std::int64_t off = 0;
  gather_elems(c, X, Y, [&](std::int64_t) {
    const std::int64_t cur = off;
    for (std::int64_t d = static_cast<std::int64_t>(r) - 1; d >= 0; --d) {
      if (++idx[d] < s[d]) { off += pst[d]; break; }
      off -= pst[d] * (s[d] - 1);
      idx[d] = 0;
    }
    return cur;
  });
}

void op_concat(OpCtx& c) {
  if (c.n_in() == 0) c.fail("needs at least one input");
  const Value& X0 = c.x(0);
  const std::int64_t axis = norm_axis(c, c.node.get_i("axis", 0), X0.shape.size());
  Shape s = X0.shape;
  s[axis] = 0;
  bool ints = true;
  for (std::size_t k = 0; k < c.n_in(); ++k) {
    const Value& v = c.x(k);
    if (v.shape.size() != s.size()) c.fail("inputs have different ranks");
    for (std::size_t d = 0; d < s.size(); ++d)
      if (static_cast<std::int64_t>(d) != axis && v.shape[d] != X0.shape[d]) c.fail("inputs differ outside the concat axis");
    s[axis] += v.shape[axis];
    ints = ints && v.is_int;
  }
  Value& Y = c.alloc(0, s, ints);
  if (c.shape_only) return;
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t d = 0; d < static_cast<std::int64_t>(s.size()); ++d) if (d < axis) outer *= s[d]; else if (d > axis) inner *= s[d];
  std::int64_t pos = 0;
  for (std::size_t k = 0; k < c.n_in(); ++k) {
    const Value& v = c.x(k);
    const std::int64_t len = v.shape[axis] * inner;
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t j = 0; j < len; ++j) {
        const std::int64_t dst = o * s[axis] * inner + pos + j, srcI = o * len + j;
        if (ints) (*Y.i)[dst] = (*v.i)[srcI];
        else (*Y.f)[dst] = static_cast<float>(v.at(srcI));
      }
    pos += len;
  }
}

void op_slice(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  std::vector<std::int64_t> starts, ends, axes, steps;
  if (c.opset < 10) {
    starts = c.node.get_ints("starts"); ends = c.node.get_ints("ends"); axes = c.node.get_ints("axes");
  } else {
    starts = c.ints_of(1); ends = c.ints_of(2);
    if (c.present(3)) axes = c.ints_of(3);
    if (c.present(4)) steps = c.ints_of(4);
  }
  if (axes.empty()) for (std::size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<std::int64_t>(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) c.fail("starts / ends / axes / steps differ in length");
  std::vector<std::int64_t> st(r, 0), sp(r, 1);
  Shape s = X.shape;
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const auto a = norm_axis(c, axes[k], r);
    const std::int64_t dim = X.shape[a], step = steps[k];
    if (step == 0) c.fail("step 0");
    std::int64_t b = starts[k], e = ends[k];
    if (b < 0) b += dim;
    if (e < 0) e += dim;
    if (step > 0) { b = std::clamp<std::int64_t>(b, 0, dim); e = std::clamp<std::int64_t>(e, 0, dim); }
    else { b = std::clamp<std::int64_t>(b, 0, dim - 1); e = std::clamp<std::int64_t>(e, -1, dim - 1); }
    std::int64_t len = step > 0 ? (e - b + step - 1) / step : (b - e + (-step) - 1) / (-step);
    st[a] = b; sp[a] = step; s[a] = std::max<std::int64_t>(0, len);
  }
  Value& Y = c.alloc(0, s, X.is_int);
  if (c.shape_only) return;
  auto ist = strides_of(X.shape);
  std::int64_t base = 0;
  for (std::size_t d = 0; d < r; ++d) base += st[d] * ist[d];
  if (!X.is_int && r >= 1 && Y.numel() > 0) {
    // Float tensors (activations, e.g. ResNet's strided shortcut x[:, :, ::2, ::2]): row by row along the
    // last axis, rows in parallel.
    const std::int64_t L = s[r - 1], step = sp[r - 1] * ist[r - 1];
    const float* xp = X.fp();
    float* yp = Y.mfp();
    for_each_row(s, c.threads, [&](std::int64_t row, const std::vector<std::int64_t>& idx) {
      std::int64_t off = base;
      for (std::size_t d = 0; d + 1 < r; ++d) off += idx[d] * sp[d] * ist[d];
      float* y = yp + row * L;
      const float* x = xp + off;
      if (step == 1) std::copy(x, x + L, y);
      else for (std::int64_t q = 0; q < L; ++q) y[q] = x[q * step];
    });
    return;
  }
  std::vector<std::int64_t> idx(r, 0);
  std::int64_t off = base;
  gather_elems(c, X, Y, [&](std::int64_t) {
    const std::int64_t cur = off;
    for (std::int64_t d = static_cast<std::int64_t>(r) - 1; d >= 0; --d) {
      if (++idx[d] < s[d]) { off += sp[d] * ist[d]; break; }
      off -= sp[d] * ist[d] * (s[d] - 1);
      idx[d] = 0;
    }
    return cur;
  });
}

void op_pad(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  std::vector<std::int64_t> pads = c.opset >= 11 ? c.ints_of(1) : c.node.get_ints("pads");
  double cval = c.opset >= 11 ? (c.present(2) && c.x(2).numel() > 0 ? c.data(2).at(0) : 0.0) : c.node.get_f("value", 0.0f);
  std::vector<std::int64_t> axes;
  if (c.present(3)) axes = c.ints_of(3);
  else for (std::size_t k = 0; k < r; ++k) axes.push_back(static_cast<std::int64_t>(k));
  if (pads.size() != 2 * axes.size()) c.fail("pads has " + std::to_string(pads.size()) + " entries, expected " + std::to_string(2 * axes.size()));
  std::vector<std::int64_t> pb(r, 0), pe(r, 0);
  for (std::size_t k = 0; k < axes.size(); ++k) {
    auto a = norm_axis(c, axes[k], r);
    pb[a] = pads[k]; pe[a] = pads[k + axes.size()];
  }
  const std::string mode = c.node.get_s("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge") c.fail("unsupported mode '" + mode + "'");
  Shape s(r);
  for (std::size_t d = 0; d < r; ++d) {
    s[d] = X.shape[d] + pb[d] + pe[d];
    if (s[d] < 0) c.fail("pads remove more than the whole dimension");
    if (mode != "constant" && X.shape[d] == 0 && s[d] > 0) c.fail("cannot pad an empty dimension in " + mode + " mode");
  }
  Value& Y = c.alloc(0, s, X.is_int);
  if (c.shape_only) return;
  auto ist = strides_of(X.shape);
  const std::int64_t n = Y.numel();
  if (!X.is_int && mode == "constant" && r >= 1 && n > 0) {
    // Float constant padding (ResNet's channel-padded shortcut): row by row along the last axis, rows in
    // parallel; a row outside the input is all `cval`, one inside is cval | input slice | cval.
    const float cv = static_cast<float>(cval);
    const std::int64_t L = s[r - 1], D = X.shape[r - 1], lo = pb[r - 1];
    const std::int64_t q0 = std::clamp<std::int64_t>(lo, 0, L), q1 = std::clamp<std::int64_t>(lo + D, 0, L);
    const float* xp = X.fp();
    float* yp = Y.mfp();
    for_each_row(s, c.threads, [&](std::int64_t row, const std::vector<std::int64_t>& idx) {
      float* y = yp + row * L;
      std::int64_t off = 0;
      bool inside = q1 > q0;
      for (std::size_t d = 0; inside && d + 1 < r; ++d) {
        const std::int64_t i = idx[d] - pb[d];
        inside = i >= 0 && i < X.shape[d];
        off += i * ist[d];
      }
      if (!inside) { std::fill(y, y + L, cv); return; }
      std::fill(y, y + q0, cv);
      std::copy(xp + off + (q0 - lo), xp + off + (q1 - lo), y + q0);
      std::fill(y + q1, y + L, cv);
    });
    return;
  }
  std::vector<std::int64_t> idx(r, 0);
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t off = 0;
    bool outside = false;
    for (std::size_t d = 0; d < r; ++d) {
      std::int64_t i = idx[d] - pb[d];
      const std::int64_t D = X.shape[d];
      if (i < 0 || i >= D) {
        if (mode == "constant") { outside = true; break; }
        if (mode == "edge") i = i < 0 ? 0 : D - 1;
        else {  // reflect
          if (D == 1) i = 0;
          else {
            const std::int64_t period = 2 * (D - 1);
            i = ((i % period) + period) % period;
            if (i >= D) i = period - i;
          }
        }
      }
      off += i * ist[d];
    }
    if (X.is_int) (*Y.i)[k] = outside ? static_cast<std::int64_t>(cval) : (*X.i)[off];
    else (*Y.f)[k] = outside ? static_cast<float>(cval) : (*X.f)[off];
    for (std::int64_t d = static_cast<std::int64_t>(r) - 1; d >= 0; --d) {
      if (++idx[d] < s[d]) break;
      idx[d] = 0;
    }
  }
}

void op_gather(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& I = c.x(1);
  const std::size_t r = X.shape.size();
  const auto axis = norm_axis(c, c.node.get_i("axis", 0), r);
  Shape s(X.shape.begin(), X.shape.begin() + axis);
  s.insert(s.end(), I.shape.begin(), I.shape.end());
  s.insert(s.end(), X.shape.begin() + axis + 1, X.shape.end());
  Value& Y = c.alloc(0, s, X.is_int);
  if (c.shape_only) return;
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < r; ++d) if (static_cast<std::int64_t>(d) < axis) outer *= X.shape[d]; else if (static_cast<std::int64_t>(d) > axis) inner *= X.shape[d];
  const std::int64_t D = X.shape[axis], ni = I.numel();
  std::vector<std::int64_t> ix(static_cast<std::size_t>(ni));
  for (std::int64_t k = 0; k < ni; ++k) {
    auto v = c.int_at(I, k);
    if (v < 0) v += D;
    if (v < 0 || v >= D) c.fail("index out of range");
    ix[k] = v;
  }
  gather_elems(c, X, Y, [&](std::int64_t k) {
    const std::int64_t in_ = k % inner, rest = k / inner, j = rest % ni, o = rest / ni;
    return (o * D + ix[j]) * inner + in_;
  });
}

// ---------------------------------------------------------------------------------------------
// Constants and casts

bool onnx_type_is_float(std::int64_t t) { return t == 1 || t == 10 || t == 11 || t == 16; }

void op_cast(OpCtx& c) {
  const Value& X = c.x(0);
  if (!c.node.has("to")) c.fail("Cast needs its 'to' attribute");
  const std::int64_t to = c.node.get_i("to", 1);
  // The TensorProto types this runtime can represent: float ones as float32, integer / bool ones as int64.
  // Anything else (string, complex, float8 / 4-bit types, an unknown number) is refused, not cast to int64.
  static const std::int64_t kSupported[] = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16};
  if (std::find(std::begin(kSupported), std::end(kSupported), to) == std::end(kSupported))
    c.fail("casting to ONNX data type " + std::to_string(to) + (to == 8 ? " (string)" : "") +
           " is not supported (float, double, float16, bfloat16, bool, (u)int8/16/32/64)");
  const bool to_int = !onnx_type_is_float(to);
  Value& Y = c.alloc(0, X.shape, to_int);
  if (c.shape_only) return;
  const std::int64_t n = X.numel();
  for (std::int64_t k = 0; k < n; ++k) {
    if (to_int) {
      double v = X.at(k);
      if (to == 9) v = v != 0.0;
      if (!std::isfinite(v) || std::fabs(v) > 9.2e18) c.fail("value out of the integer range");
      (*Y.i)[k] = static_cast<std::int64_t>(v);
    } else {
      float v = static_cast<float>(X.at(k));
      if (to == 10) v = f16_to_f32(f32_to_f16(v));
      if (to == 16) v = bf16_to_f32(f32_to_bf16(v));
      (*Y.f)[k] = v;
    }
  }
}

void op_constant(OpCtx& c) {
  if (c.out.empty()) c.out.resize(1);
  const Node& n = c.node;
  auto it = n.attrs.find("value");
  if (it != n.attrs.end() && it->second.t) { c.out[0] = *it->second.t; return; }
  if (n.has("value_float")) { Value v = Value::floats({}); (*v.f)[0] = n.get_f("value_float", 0); c.out[0] = v; return; }
  if (n.has("value_int")) { Value v = Value::ints({}); (*v.i)[0] = n.get_i("value_int", 0); c.out[0] = v; return; }
  if (n.has("value_ints")) {
    auto xs = n.get_ints("value_ints");
    Value v = Value::ints({static_cast<std::int64_t>(xs.size())});
    std::copy(xs.begin(), xs.end(), v.i->begin());
    c.out[0] = v;
    return;
  }
  if (n.has("value_floats")) {
    const auto& xs = n.attrs.at("value_floats").floats;
    Value v = Value::floats({static_cast<std::int64_t>(xs.size())});
    std::copy(xs.begin(), xs.end(), v.f->begin());
    c.out[0] = v;
    return;
  }
  c.fail("no supported value attribute");
}

void op_constant_of_shape(OpCtx& c) {
  auto dims = c.ints_of(0);
  Shape s(dims.begin(), dims.end());
  auto it = c.node.attrs.find("value");
  const Value* fill = (it != c.node.attrs.end() && it->second.t) ? it->second.t.get() : nullptr;
  if (fill && fill->numel() != 1) c.fail("value must have one element");
  const bool ints = fill && fill->is_int;
  Value& Y = c.alloc(0, s, ints);
  if (c.shape_only) return;
  if (ints) std::fill(Y.i->begin(), Y.i->end(), (*fill->i)[0]);
  else std::fill(Y.f->begin(), Y.f->end(), fill ? (*fill->f)[0] : 0.0f);
}

void op_shape(OpCtx& c) {
  const Value& X = c.x(0);
  const auto r = static_cast<std::int64_t>(X.shape.size());
  std::int64_t b = c.node.get_i("start", 0), e = c.node.get_i("end", r);
  if (b < 0) b += r;
  if (e < 0) e += r;
  b = std::clamp<std::int64_t>(b, 0, r);
  e = std::clamp<std::int64_t>(e, b, r);
  if (c.out.empty()) c.out.resize(1);
  Value v = Value::ints({e - b});  // data is known even in shape-only mode
  for (std::int64_t k = b; k < e; ++k) (*v.i)[k - b] = X.shape[k];
  c.out[0] = v;
}

// ---------------------------------------------------------------------------------------------
// More elementwise operators (activations of MobileNet / EfficientNet / ViT exports, arithmetic,
// comparisons and logic; bool values are int64 0 / 1).

void op_hard_sigmoid(OpCtx& c) {
  const float a = c.node.get_f("alpha", 0.2f), b = c.node.get_f("beta", 0.5f);
  unary(c, [a, b](float x) { return std::max(0.0f, std::min(1.0f, a * x + b)); });
}
void op_hard_swish(OpCtx& c) {
  unary(c, [](float x) { return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f)); });
}
float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }
void op_softplus(OpCtx& c) { unary(c, softplus); }
void op_mish(OpCtx& c) { unary(c, [](float x) { return x * std::tanh(softplus(x)); }); }
void op_softsign(OpCtx& c) { unary(c, [](float x) { return x / (1.0f + std::fabs(x)); }); }
void op_elu(OpCtx& c) {
  const float a = c.node.get_f("alpha", 1.0f);
  unary(c, [a](float x) { return x < 0.0f ? a * std::expm1(x) : x; });
}
void op_celu(OpCtx& c) {
  const float a = c.node.get_f("alpha", 1.0f);
  unary(c, [a](float x) { return std::max(0.0f, x) + std::min(0.0f, a * std::expm1(x / a)); });
}
void op_selu(OpCtx& c) {
  const float a = c.node.get_f("alpha", 1.67326319217681884765625f), g = c.node.get_f("gamma", 1.05070102214813232421875f);
  unary(c, [a, g](float x) { return x > 0.0f ? g * x : g * a * std::expm1(x); });
}
void op_thresholded_relu(OpCtx& c) {
  const float a = c.node.get_f("alpha", 1.0f);
  unary(c, [a](float x) { return x > a ? x : 0.0f; });
}
void op_exp(OpCtx& c) { unary(c, [](float x) { return std::exp(x); }); }
void op_log(OpCtx& c) { unary(c, [](float x) { return std::log(x); }); }
void op_reciprocal(OpCtx& c) { unary(c, [](float x) { return 1.0f / x; }); }
void op_floor(OpCtx& c) { unary(c, [](float x) { return std::floor(x); }); }
void op_ceil(OpCtx& c) { unary(c, [](float x) { return std::ceil(x); }); }
void op_round(OpCtx& c) { unary(c, [](float x) { return std::nearbyint(x); }); }  // ties to even (default FE mode)
void op_sin(OpCtx& c) { unary(c, [](float x) { return std::sin(x); }); }
void op_cos(OpCtx& c) { unary(c, [](float x) { return std::cos(x); }); }

void op_neg(OpCtx& c) { unary_num(c, [](float x) { return -x; }, [](std::int64_t x) { return wsub(0, x); }); }
void op_abs(OpCtx& c) { unary_num(c, [](float x) { return std::fabs(x); }, [](std::int64_t x) { return x < 0 ? wsub(0, x) : x; }); }
void op_sign(OpCtx& c) {
  unary_num(c, [](float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); },
            [](std::int64_t x) -> std::int64_t { return x > 0 ? 1 : (x < 0 ? -1 : 0); });
}

void op_pow(OpCtx& c) {
  binary(c, [](float a, float b) { return std::pow(a, b); },
         [](std::int64_t a, std::int64_t b) {
           if (b < 0) return std::int64_t(a == 1 ? 1 : (a == -1 ? (b % 2 ? -1 : 1) : 0));
           // Square-and-multiply in unsigned arithmetic: wraps (defined) like the fixed-width integer it models.
           std::uint64_t r = 1, x = static_cast<std::uint64_t>(a);
           for (auto e = static_cast<std::uint64_t>(b); e; e >>= 1, x *= x) if (e & 1) r *= x;
           return static_cast<std::int64_t>(r);
         });
}
void op_prelu(OpCtx& c) {
  binary(c, [](float x, float s) { return x < 0.0f ? s * x : x; }, [](std::int64_t x, std::int64_t s) { return x < 0 ? wmul(s, x) : x; });
}
void op_mod(OpCtx& c) {
  const bool fm = c.node.get_i("fmod", 0) != 0;
  binary(c, [fm](float a, float b) {
           if (fm) return std::fmod(a, b);
           float r = std::fmod(a, b);
           return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
         },
         [&c, fm](std::int64_t a, std::int64_t b) -> std::int64_t {
           if (b == 0) c.fail("integer modulo by zero");
           std::int64_t r = b == -1 ? 0 : a % b;
           if (!fm && r != 0 && ((r < 0) != (b < 0))) r += b;
           return r;
         });
}

float nan_max(float a, float b) { return (std::isnan(a) || std::isnan(b)) ? std::numeric_limits<float>::quiet_NaN() : std::max(a, b); }
float nan_min(float a, float b) { return (std::isnan(a) || std::isnan(b)) ? std::numeric_limits<float>::quiet_NaN() : std::min(a, b); }

// Variadic Min / Max / Sum / Mean: pairwise with broadcasting, left to right.
template <class FF, class FI>
void variadic(OpCtx& c, FF ff, FI fi, bool mean) {
  if (c.n_in() == 0) c.fail("needs at least one input");
  Value acc = c.x(0);
  for (std::size_t k = 1; k < c.n_in(); ++k) {
    OpCtx t{c.node, {&acc, &c.x(k)}, {}, c.shape_only, c.threads, c.opset};
    binary(t, ff, fi);
    acc = std::move(t.out[0]);
  }
  if (c.out.empty()) c.out.resize(1);
  if (mean && !c.shape_only) {
    if (acc.is_int) c.fail("Mean expects float tensors");
    Value r = Value::floats(acc.shape);
    const float n = static_cast<float>(c.n_in());
    for (std::int64_t k = 0; k < acc.numel(); ++k) (*r.f)[k] = (*acc.f)[k] / n;
    acc = std::move(r);
  } else if (c.n_in() == 1 && !c.shape_only) {
    acc = c.x(0);
  }
  c.out[0] = std::move(acc);
}
void op_max(OpCtx& c) { variadic(c, nan_max, [](std::int64_t a, std::int64_t b) { return std::max(a, b); }, false); }
void op_min(OpCtx& c) { variadic(c, nan_min, [](std::int64_t a, std::int64_t b) { return std::min(a, b); }, false); }
void op_sum(OpCtx& c) { variadic(c, [](float a, float b) { return a + b; }, wadd, false); }
void op_mean(OpCtx& c) { variadic(c, [](float a, float b) { return a + b; }, wadd, true); }

// Comparisons and logic: int64 0 / 1 results.
template <class F>
void compare(OpCtx& c, F f) {
  const Value& a = c.x(0);
  const Value& b = c.x(1);
  Shape os = broadcast(c, a.shape, b.shape);
  Value& o = c.alloc(0, os, true);
  if (c.shape_only) return;
  auto* po = o.i->data();
  if (a.is_int && b.is_int) {
    const auto* pa = a.ip(); const auto* pb = b.ip();
    // Compared as integers (exact beyond 2^53): f sees the sign of x - y against 0.
    for_broadcast(os, a.shape, b.shape, [&](std::int64_t k, std::int64_t ia, std::int64_t ib) {
      const std::int64_t x = pa[ia], y = pb[ib];
      po[k] = f(x < y ? -1.0 : (x > y ? 1.0 : 0.0), 0.0) ? 1 : 0;
    });
  } else {
    for_broadcast(os, a.shape, b.shape, [&](std::int64_t k, std::int64_t ia, std::int64_t ib) {
      po[k] = f(a.is_int ? static_cast<double>((*a.i)[ia]) : static_cast<double>((*a.f)[ia]),
                b.is_int ? static_cast<double>((*b.i)[ib]) : static_cast<double>((*b.f)[ib])) ? 1 : 0;
    });
  }
}
void op_equal(OpCtx& c) { compare(c, [](double a, double b) { return a == b; }); }
void op_less(OpCtx& c) { compare(c, [](double a, double b) { return a < b; }); }
void op_greater(OpCtx& c) { compare(c, [](double a, double b) { return a > b; }); }
void op_less_equal(OpCtx& c) { compare(c, [](double a, double b) { return a <= b; }); }
void op_greater_equal(OpCtx& c) { compare(c, [](double a, double b) { return a >= b; }); }
template <class F>
void logic(OpCtx& c, F f) {
  if (!c.x(0).is_int || !c.x(1).is_int) c.fail("expects bool tensors");
  binary(c, [](float, float) { return 0.0f; }, [f](std::int64_t a, std::int64_t b) -> std::int64_t { return f(a != 0, b != 0) ? 1 : 0; });
}
void op_and(OpCtx& c) { logic(c, [](bool a, bool b) { return a && b; }); }
void op_or(OpCtx& c) { logic(c, [](bool a, bool b) { return a || b; }); }
void op_xor(OpCtx& c) { logic(c, [](bool a, bool b) { return a != b; }); }
void op_not(OpCtx& c) {
  const Value& a = c.x(0);
  if (!a.is_int) c.fail("expects a bool tensor");
  Value& o = c.alloc(0, a.shape, true);
  if (c.shape_only) return;
  for (std::int64_t k = 0; k < a.numel(); ++k) (*o.i)[k] = (*a.i)[k] == 0 ? 1 : 0;
}

// Offsets of an operand of shape `in` broadcast to `out`, for every output element in order.
std::vector<std::int64_t> broadcast_offsets(const Shape& in, const Shape& out) {
  std::vector<std::int64_t> r(static_cast<std::size_t>(shape_numel(out)));
  for_broadcast(out, in, out, [&](std::int64_t k, std::int64_t ia, std::int64_t) { r[k] = ia; });
  return r;
}

void op_where(OpCtx& c) {
  const Value& C = c.x(0);
  const Value& X = c.x(1);
  const Value& Y = c.x(2);
  if (!C.is_int) c.fail("condition must be a bool tensor");
  const Shape os = broadcast(c, broadcast(c, C.shape, X.shape), Y.shape);
  const bool ints = X.is_int && Y.is_int;
  if (X.is_int != Y.is_int) c.fail("X and Y differ in type");
  Value& O = c.alloc(0, os, ints);
  if (c.shape_only) return;
  auto oc = broadcast_offsets(C.shape, os), ox = broadcast_offsets(X.shape, os), oy = broadcast_offsets(Y.shape, os);
  for (std::size_t k = 0; k < oc.size(); ++k) {
    const bool t = (*C.i)[oc[k]] != 0;
    if (ints) (*O.i)[k] = t ? (*X.i)[ox[k]] : (*Y.i)[oy[k]];
    else (*O.f)[k] = t ? (*X.f)[ox[k]] : (*Y.f)[oy[k]];
  }
}

// Inference: Dropout is the identity (its mask, if asked for, all true). Training mode with a non-zero
// ratio draws random numbers, which a deterministic runtime does not do.
void op_dropout(OpCtx& c) {
  const Value& X = c.x(0);
  const bool training = c.present(2) && c.data(2).at(0) != 0.0;
  const double ratio = c.present(1) ? c.data(1).at(0) : c.node.get_f("ratio", 0.5f);
  if (training && ratio != 0.0) c.fail("training mode (random dropout) is not supported");
  if (c.out.size() < c.node.outputs.size()) c.out.resize(c.node.outputs.size());
  c.out[0] = X;
  if (c.node.outputs.size() > 1) {
    Value& m = c.alloc(1, X.shape, true);
    if (!c.shape_only) std::fill(m.i->begin(), m.i->end(), 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Reductions (axes as attribute, or as input 1 from opset 13 for ReduceSum and 18 for the others)

enum class Red { Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp };

// The reduced axes (flags) of a Reduce* node; `all` when none are given (noop_with_empty_axes = 0).
std::vector<bool> reduce_axes(const OpCtx& c, std::size_t rank, bool& noop) {
  std::vector<std::int64_t> axes;
  if (c.present(1)) axes = c.ints_of(1);
  else axes = c.node.get_ints("axes");
  noop = axes.empty() && c.node.get_i("noop_with_empty_axes", 0) != 0;
  std::vector<bool> red(rank, axes.empty());
  for (auto a : axes) red[norm_axis(c, a, rank)] = true;
  return red;
}

void reduce(OpCtx& c, Red kind) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  bool noop = false;
  auto red = reduce_axes(c, r, noop);
  if (noop) { op_identity(c); return; }
  const bool keep = c.node.get_i("keepdims", 1) != 0;
  Shape os, ks(r);
  for (std::size_t d = 0; d < r; ++d) {
    ks[d] = red[d] ? 1 : X.shape[d];
    if (!red[d] || keep) os.push_back(ks[d]);
  }
  const bool ints = X.is_int && (kind == Red::Sum || kind == Red::Max || kind == Red::Min || kind == Red::Prod);
  Value& Y = c.alloc(0, os, ints);
  if (c.shape_only) return;
  const std::int64_t no = shape_numel(ks);
  std::int64_t count = 1;
  for (std::size_t d = 0; d < r; ++d) if (red[d]) count *= X.shape[d];
  double init = 0;
  if (kind == Red::Max) init = -std::numeric_limits<double>::infinity();
  if (kind == Red::Min) init = std::numeric_limits<double>::infinity();
  if (kind == Red::Prod) init = 1;
  std::vector<double> acc(static_cast<std::size_t>(no), init);
  std::vector<std::int64_t> iacc;
  if (ints) iacc.assign(static_cast<std::size_t>(no), kind == Red::Max ? std::numeric_limits<std::int64_t>::min()
                                                      : kind == Red::Min ? std::numeric_limits<std::int64_t>::max() : kind == Red::Prod ? 1 : 0);
  // LogSumExp: shift by the maximum of each group for range.
  std::vector<double> shift;
  if (kind == Red::LogSumExp) {
    shift.assign(static_cast<std::size_t>(no), -std::numeric_limits<double>::infinity());
    for_broadcast(X.shape, X.shape, ks, [&](std::int64_t k, std::int64_t, std::int64_t o) { shift[o] = std::max(shift[o], X.at(k)); });
    for (auto& s : shift) if (!std::isfinite(s)) s = 0;
  }
  for_broadcast(X.shape, X.shape, ks, [&](std::int64_t k, std::int64_t, std::int64_t o) {
    if (ints) {
      const std::int64_t v = (*X.i)[k];
      auto& a = iacc[o];
      switch (kind) {
        case Red::Sum: a = wadd(a, v); break;
        case Red::Max: a = std::max(a, v); break;
        case Red::Min: a = std::min(a, v); break;
        default: a = wmul(a, v); break;
      }
      return;
    }
    const double v = X.is_int ? static_cast<double>((*X.i)[k]) : (*X.f)[k];
    double& a = acc[o];
    switch (kind) {
      case Red::Sum: case Red::Mean: case Red::LogSum: a += v; break;
      case Red::Max: a = (std::isnan(v) || v > a) ? v : a; break;
      case Red::Min: a = (std::isnan(v) || v < a) ? v : a; break;
      case Red::Prod: a *= v; break;
      case Red::L1: a += std::fabs(v); break;
      case Red::L2: case Red::SumSquare: a += v * v; break;
      case Red::LogSumExp: a += std::exp(v - shift[o]); break;
    }
  });
  if (ints) { std::copy(iacc.begin(), iacc.end(), Y.i->begin()); return; }
  for (std::int64_t o = 0; o < no; ++o) {
    double a = acc[o];
    if (kind == Red::Mean) a /= static_cast<double>(count);
    if (kind == Red::L2) a = std::sqrt(a);
    if (kind == Red::LogSum) a = std::log(a);
    if (kind == Red::LogSumExp) a = std::log(a) + shift[o];
    (*Y.f)[o] = static_cast<float>(a);
  }
}
void op_reduce_sum(OpCtx& c) { reduce(c, Red::Sum); }
void op_reduce_mean(OpCtx& c) { reduce(c, Red::Mean); }
void op_reduce_max(OpCtx& c) { reduce(c, Red::Max); }
void op_reduce_min(OpCtx& c) { reduce(c, Red::Min); }
void op_reduce_prod(OpCtx& c) { reduce(c, Red::Prod); }
void op_reduce_l1(OpCtx& c) { reduce(c, Red::L1); }
void op_reduce_l2(OpCtx& c) { reduce(c, Red::L2); }
void op_reduce_sum_square(OpCtx& c) { reduce(c, Red::SumSquare); }
void op_reduce_log_sum(OpCtx& c) { reduce(c, Red::LogSum); }
void op_reduce_log_sum_exp(OpCtx& c) { reduce(c, Red::LogSumExp); }

void arg_extreme(OpCtx& c, bool is_max) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  const auto axis = norm_axis(c, c.node.get_i("axis", 0), r);
  const bool keep = c.node.get_i("keepdims", 1) != 0, last = c.node.get_i("select_last_index", 0) != 0;
  Shape os;
  for (std::size_t d = 0; d < r; ++d) {
    if (static_cast<std::int64_t>(d) != axis) os.push_back(X.shape[d]);
    else if (keep) os.push_back(1);
  }
  Value& Y = c.alloc(0, os, true);
  if (c.shape_only) return;
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < r; ++d) if (static_cast<std::int64_t>(d) < axis) outer *= X.shape[d]; else if (static_cast<std::int64_t>(d) > axis) inner *= X.shape[d];
  const std::int64_t D = X.shape[axis];
  if (D == 0) c.fail("cannot reduce an empty axis");
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < inner; ++i) {
      std::int64_t best = 0;
      double bv = X.at(o * D * inner + i);
      for (std::int64_t k = 1; k < D; ++k) {
        const double v = X.at((o * D + k) * inner + i);
        if (is_max ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv))) { bv = v; best = k; }
      }
      (*Y.i)[o * inner + i] = best;
    }
}
void op_argmax(OpCtx& c) { arg_extreme(c, true); }
void op_argmin(OpCtx& c) { arg_extreme(c, false); }

// ---------------------------------------------------------------------------------------------
// More shape operators

void op_split(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  const auto axis = norm_axis(c, c.node.get_i("axis", 0), r);
  const std::size_t nout = c.node.outputs.size();
  std::vector<std::int64_t> parts = c.present(1) ? c.ints_of(1) : c.node.get_ints("split");
  const std::int64_t D = X.shape[axis];
  if (parts.empty()) {
    // Equal parts (the last one smaller when num_outputs does not divide the axis, opset 18).
    const std::int64_t n = static_cast<std::int64_t>(nout), each = (D + n - 1) / n;
    for (std::int64_t k = 0; k < n; ++k) parts.push_back(std::max<std::int64_t>(0, std::min(each, D - k * each)));
  }
  if (parts.size() != nout) c.fail("split has " + std::to_string(parts.size()) + " parts for " + std::to_string(nout) + " outputs");
  std::int64_t total = 0;
  for (auto p : parts) { if (p < 0 || p > D) c.fail("split size " + std::to_string(p) + " outside [0, " + std::to_string(D) + "]"); total += p; }
  if (total != D) c.fail("split sizes add up to " + std::to_string(total) + ", the axis has " + std::to_string(D));
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < r; ++d) if (static_cast<std::int64_t>(d) < axis) outer *= X.shape[d]; else if (static_cast<std::int64_t>(d) > axis) inner *= X.shape[d];
  std::int64_t pos = 0;
  for (std::size_t k = 0; k < nout; ++k) {
    Shape s = X.shape;
    s[axis] = parts[k];
    Value& Y = c.alloc(k, s, X.is_int);
    if (!c.shape_only) {
      const std::int64_t len = parts[k] * inner;
      for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t j = 0; j < len; ++j) {
          const std::int64_t src = o * D * inner + pos * inner + j;
          if (X.is_int) (*Y.i)[o * len + j] = (*X.i)[src];
          else (*Y.f)[o * len + j] = (*X.f)[src];
        }
    }
    pos += parts[k];
  }
}

void op_expand(OpCtx& c) {
  const Value& X = c.x(0);
  auto dims = c.ints_of(1);
  for (auto d : dims) if (d < 0) c.fail("negative dimension in the target shape");
  const Shape os = broadcast(c, X.shape, Shape(dims.begin(), dims.end()));
  Value& Y = c.alloc(0, os, X.is_int);
  if (c.shape_only) return;
  for_broadcast(os, X.shape, os, [&](std::int64_t k, std::int64_t ia, std::int64_t) {
    if (X.is_int) (*Y.i)[k] = (*X.i)[ia];
    else (*Y.f)[k] = (*X.f)[ia];
  });
}

void op_tile(OpCtx& c) {
  const Value& X = c.x(0);
  auto rep = c.ints_of(1);
  const std::size_t r = X.shape.size();
  if (rep.size() != r) c.fail("repeats has " + std::to_string(rep.size()) + " entries for rank " + std::to_string(r));
  Shape os(r);
  for (std::size_t d = 0; d < r; ++d) {
    if (rep[d] < 0) c.fail("negative repeat");
    if (X.shape[d] != 0 && rep[d] > max_tensor_elements() / X.shape[d]) c.fail("repeats exceed the tensor size limit");
    os[d] = X.shape[d] * rep[d];
  }
  Value& Y = c.alloc(0, os, X.is_int);
  if (c.shape_only) return;
  auto ist = strides_of(X.shape);
  std::vector<std::int64_t> idx(r, 0);
  const std::int64_t n = Y.numel();
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t off = 0;
    for (std::size_t d = 0; d < r; ++d) off += (idx[d] % X.shape[d]) * ist[d];
    if (X.is_int) (*Y.i)[k] = (*X.i)[off];
    else (*Y.f)[k] = (*X.f)[off];
    for (std::int64_t d = static_cast<std::int64_t>(r) - 1; d >= 0; --d) {
      if (++idx[d] < os[d]) break;
      idx[d] = 0;
    }
  }
}

void op_range(OpCtx& c) {
  const Value& S = c.data(0);
  const Value& L = c.data(1);
  const Value& D = c.data(2);
  if (S.numel() != 1 || L.numel() != 1 || D.numel() != 1) c.fail("start, limit and delta must be scalars");
  const bool ints = S.is_int && L.is_int && D.is_int;
  const double s = S.at(0), l = L.at(0), d = D.at(0);
  if (d == 0) c.fail("delta is 0");
  const double n = std::max(0.0, std::ceil((l - s) / d));
  if (!(n <= static_cast<double>(max_tensor_elements()))) c.fail("range of " + std::to_string(n) + " elements is too large");
  Value& Y = c.alloc(0, {static_cast<std::int64_t>(n)}, ints);
  if (c.shape_only) return;
  for (std::int64_t k = 0; k < Y.numel(); ++k) {
    if (ints) (*Y.i)[k] = (*S.i)[0] + k * (*D.i)[0];
    else (*Y.f)[k] = static_cast<float>(s) + static_cast<float>(k) * static_cast<float>(d);
  }
}

void op_gather_elements(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& I = c.data(1);
  const std::size_t r = X.shape.size();
  if (I.shape.size() != r) c.fail("indices must have the rank of the data");
  const auto axis = norm_axis(c, c.node.get_i("axis", 0), r);
  Value& Y = c.alloc(0, I.shape, X.is_int);
  if (c.shape_only) return;
  auto xst = strides_of(X.shape);
  std::vector<std::int64_t> idx(r, 0);
  const std::int64_t D = X.shape[axis];
  for (std::int64_t k = 0; k < I.numel(); ++k) {
    std::int64_t j = c.int_at(I, k);
    if (j < 0) j += D;
    if (j < 0 || j >= D) c.fail("index out of range");
    std::int64_t off = 0;
    for (std::size_t d = 0; d < r; ++d) {
      const std::int64_t v = static_cast<std::int64_t>(d) == axis ? j : idx[d];
      if (v >= X.shape[d]) c.fail("indices shape exceeds the data shape");
      off += v * xst[d];
    }
    if (X.is_int) (*Y.i)[k] = (*X.i)[off];
    else (*Y.f)[k] = (*X.f)[off];
    for (std::int64_t d = static_cast<std::int64_t>(r) - 1; d >= 0; --d) {
      if (++idx[d] < I.shape[d]) break;
      idx[d] = 0;
    }
  }
}

void op_instance_norm(OpCtx& c) {
  const Value& X = c.x(0);
  if (X.shape.size() < 3) c.fail("expects rank >= 3");
  if (X.is_int || c.x(1).is_int || c.x(2).is_int) c.fail("expects float tensors");
  const std::int64_t N = X.shape[0], C = X.shape[1], inner = X.numel() / std::max<std::int64_t>(1, N * C);
  if (c.x(1).numel() != C || c.x(2).numel() != C) c.fail("scale and bias must have " + std::to_string(C) + " elements");
  Value& Y = c.alloc(0, X.shape);
  if (c.shape_only) return;
  const float eps = c.node.get_f("epsilon", 1e-5f);
  const float* s = c.x(1).fp();
  const float* b = c.x(2).fp();
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t ch = 0; ch < C; ++ch) {
      const float* xs = X.fp() + (n * C + ch) * inner;
      float* ys = Y.mfp() + (n * C + ch) * inner;
      double mean = 0, var = 0;
      for (std::int64_t k = 0; k < inner; ++k) mean += xs[k];
      mean /= static_cast<double>(inner);
      for (std::int64_t k = 0; k < inner; ++k) var += (xs[k] - mean) * (xs[k] - mean);
      var /= static_cast<double>(inner);
      const double a = s[ch] / std::sqrt(var + eps);
      for (std::int64_t k = 0; k < inner; ++k) ys[k] = static_cast<float>((xs[k] - mean) * a + b[ch]);
    }
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose (U-Net / FCN decoders): per group, col = W_g^T x X_g by sgemm, then col2im adds each
// kernel tap into the strided, dilated, padded output.

void op_conv_transpose(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& Wt = c.x(1);
  if (X.shape.size() != Wt.shape.size()) c.fail("input " + shape_str(X.shape) + " and weight " + shape_str(Wt.shape) + " differ in rank");
  const bool one_d = X.shape.size() == 3;
  const Shape xs4 = as_2d(c, X.shape, "input"), ws4 = as_2d(c, Wt.shape, "weight");
  if (X.is_int || Wt.is_int) c.fail("expects float tensors");
  const std::int64_t N = xs4[0], C = xs4[1], H = xs4[2], W = xs4[3];
  const std::int64_t G = c.node.get_i("group", 1);
  if (G < 1 || ws4[0] != C || C % G != 0) c.fail("channel mismatch: input " + shape_str(X.shape) + ", weight " + shape_str(Wt.shape) + ", group " + std::to_string(G));
  const std::int64_t Mg = ws4[1], M = Mg * G, kh = ws4[2], kw = ws4[3], Cg = C / G;
  auto ks = attr2d(c, "kernel_shape", {kh, kw}, one_d);
  if (ks.size() != 2 || ks[0] != kh || ks[1] != kw) c.fail("kernel_shape does not match the weight");
  auto st = attr2d(c, "strides", {1, 1}, one_d), di = attr2d(c, "dilations", {1, 1}, one_d);
  auto op = attr2d(c, "output_padding", {0, 0}, one_d), pads = attr2d(c, "pads", {0, 0, 0, 0}, one_d);
  if (st.size() != 2 || di.size() != 2 || op.size() != 2 || pads.size() != 4) c.fail("only 1-D and 2-D windows are supported");
  constexpr std::int64_t kMaxWin = std::int64_t(1) << 20;  // keeps the size arithmetic below far from overflow
  for (int k = 0; k < 2; ++k)
    if (st[k] < 1 || di[k] < 1 || op[k] < 0 || st[k] > kMaxWin || di[k] > kMaxWin || op[k] > kMaxWin || std::abs(pads[k]) > kMaxWin ||
        std::abs(pads[k + 2]) > kMaxWin)
      c.fail("bad strides, dilations, pads or output_padding");
  if (kh > kMaxWin || kw > kMaxWin || H > kMaxWin || W > kMaxWin) c.fail("input or kernel too large");
  const std::int64_t in[2] = {H, W}, kk[2] = {kh, kw};
  std::int64_t out[2], pb[2] = {pads[0], pads[1]};
  const std::string ap = c.node.get_s("auto_pad", "NOTSET");
  // output_shape: the spatial sizes, possibly preceded by N and C.
  std::vector<std::int64_t> oshape = c.node.get_ints("output_shape");
  const std::size_t nsp = one_d ? 1 : 2;
  if (!oshape.empty()) {
    if (oshape.size() < nsp) c.fail("output_shape has too few entries");
    oshape.erase(oshape.begin(), oshape.end() - static_cast<std::ptrdiff_t>(nsp));
    if (one_d) oshape.insert(oshape.begin(), 1);
    for (auto v : oshape) if (v < 0 || v > max_tensor_elements()) c.fail("output_shape entry out of range");
  }
  for (int k = 0; k < 2; ++k) {
    const std::int64_t full = st[k] * (in[k] - 1) + op[k] + (kk[k] - 1) * di[k] + 1;
    if (!oshape.empty() || ap == "SAME_UPPER" || ap == "SAME_LOWER") {
      const std::int64_t want = !oshape.empty() ? oshape[k] : in[k] * st[k];
      // total < 0 (an output_shape beyond the full result) pads the end: ONNX's reference splits it
      // with floor division.
      const std::int64_t total = full - want;
      const std::int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      pb[k] = ap == "SAME_UPPER" ? half : total - half;
      out[k] = want;
    } else {
      if (ap != "NOTSET" && ap != "VALID") c.fail("unknown auto_pad '" + ap + "'");
      if (ap == "VALID") pb[k] = 0;
      out[k] = full - (ap == "VALID" ? 0 : pads[k] + pads[k + 2]);
    }
    if (out[k] < 0) c.fail("negative output size");
  }
  const Value* B = c.present(2) ? &c.x(2) : nullptr;
  if (B && B->numel() != M) c.fail("bias has " + std::to_string(B->numel()) + " elements, expected " + std::to_string(M));
  if (B && B->is_int) c.fail("bias must be float");
  const std::int64_t P = out[0], Q = out[1];
  Value& Y = c.alloc(0, one_d ? Shape{N, M, Q} : Shape{N, M, P, Q});
  if (c.shape_only) return;
  const std::int64_t HW = H * W, K = Mg * kh * kw;
  const float* x = X.fp();
  const float* wt = Wt.fp();
  float* y = Y.mfp();
  parallel_for(N, c.threads, [&](std::int64_t b, std::int64_t e) {
    FloatBuf col(static_cast<std::size_t>(K * HW));
    for (std::int64_t n = b; n < e; ++n)
      for (std::int64_t g = 0; g < G; ++g) {
        // col[K, HW] = W_g[Cg, K]^T x X_g[Cg, HW]
        blas::sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(K), static_cast<int>(HW), static_cast<int>(Cg), 1.0f,
                    wt + g * Cg * K, static_cast<int>(K), x + (n * C + g * Cg) * HW, static_cast<int>(HW), 0.0f, col.data(),
                    static_cast<int>(HW));
        float* ys = y + (n * M + g * Mg) * P * Q;
        for (std::int64_t m = 0; m < Mg; ++m) {
          float* ym = ys + m * P * Q;
          const float bv = B ? B->fp()[g * Mg + m] : 0.0f;
          std::fill(ym, ym + P * Q, bv);
          for (std::int64_t i = 0; i < kh; ++i)
            for (std::int64_t j = 0; j < kw; ++j) {
              const float* cr = col.data() + ((m * kh + i) * kw + j) * HW;
              for (std::int64_t h = 0; h < H; ++h) {
                const std::int64_t oh = h * st[0] + i * di[0] - pb[0];
                if (oh < 0 || oh >= P) continue;
                for (std::int64_t w = 0; w < W; ++w) {
                  const std::int64_t ow = w * st[1] + j * di[1] - pb[1];
                  if (ow >= 0 && ow < Q) ym[oh * Q + ow] += cr[h * W + w];
                }
              }
            }
        }
      }
  });
}

// ---------------------------------------------------------------------------------------------
// Resize (opset 10-19: nearest / linear, the coordinate transformation modes exporters write) and
// Upsample (opset 7-9, = Resize with asymmetric coordinates and floor rounding).

struct ResizeSpec {
  std::string mode = "nearest", coord = "half_pixel", nearest = "round_prefer_floor";
  float extrapolation = 0.0f;
  std::vector<double> scales;        // per axis
  std::vector<double> roi;           // 2 * rank (tf_crop_and_resize)
};

void resize_run(OpCtx& c, const ResizeSpec& rs, const Shape& os) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  Value& Y = c.alloc(0, os, X.is_int);
  if (c.shape_only) return;
  if (rs.mode != "nearest" && rs.mode != "linear") c.fail("mode '" + rs.mode + "' is not supported (nearest, linear)");
  const bool linear = rs.mode == "linear";
  // Per axis and output coordinate: two source indices and the weight of the second (linear), or one
  // index (nearest); -1 = outside (tf_crop_and_resize: the extrapolation value).
  std::vector<std::vector<std::int64_t>> lo(r), hi(r);
  std::vector<std::vector<double>> wt(r);
  for (std::size_t d = 0; d < r; ++d) {
    const std::int64_t in = X.shape[d], out = os[d];
    const double scale = rs.scales[d];
    // ONNX's reference maps coordinates with the unrounded resized length in * scale (= sizes when
    // sizes are given), not the floored output size.
    const double outf = scale * static_cast<double>(in);
    lo[d].resize(out); hi[d].resize(out); wt[d].resize(out);
    for (std::int64_t o = 0; o < out; ++o) {
      double xo;
      const double x = static_cast<double>(o);
      const std::string& m = rs.coord;
      if (m == "half_pixel") xo = (x + 0.5) / scale - 0.5;
      else if (m == "pytorch_half_pixel") xo = outf > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
      else if (m == "align_corners") xo = outf == 1 ? 0.0 : x * static_cast<double>(in - 1) / (outf - 1);
      else if (m == "asymmetric") xo = x / scale;
      else if (m == "tf_half_pixel_for_nn") xo = (x + 0.5) / scale;
      else if (m == "half_pixel_symmetric") {
        const double adj = static_cast<double>(out) / (scale * static_cast<double>(in));
        const double center = static_cast<double>(in) / 2.0, offset = center * (1.0 - adj);
        xo = offset + (x + 0.5) / scale - 0.5;
      } else if (m == "tf_crop_and_resize") {
        const double s0 = rs.roi.empty() ? 0.0 : rs.roi[d], e0 = rs.roi.empty() ? 1.0 : rs.roi[d + r];
        xo = outf > 1 ? s0 * static_cast<double>(in - 1) + x * (e0 - s0) * static_cast<double>(in - 1) / (outf - 1)
                     : 0.5 * (s0 + e0) * static_cast<double>(in - 1);
        if (xo < 0 || xo > static_cast<double>(in - 1)) { lo[d][o] = hi[d][o] = -1; continue; }
      } else {
        c.fail("coordinate_transformation_mode '" + m + "' is not supported");
      }
      // NaN from a NaN roi or scale: no source position (converting it to an index is undefined).
      if (std::isnan(xo)) c.fail("a non-finite source coordinate (roi or scales contain NaN)");
      if (linear) {
        xo = std::clamp(xo, 0.0, static_cast<double>(in - 1));
        const std::int64_t i0 = static_cast<std::int64_t>(std::floor(xo));
        lo[d][o] = i0;
        hi[d][o] = std::min(i0 + 1, in - 1);
        wt[d][o] = xo - static_cast<double>(i0);
      } else {
        double v;
        const std::string& nm = rs.nearest;
        if (nm == "round_prefer_floor") v = (xo - std::floor(xo) == 0.5) ? std::floor(xo) : std::round(xo);
        else if (nm == "round_prefer_ceil") v = std::round(xo);
        else if (nm == "floor") v = std::floor(xo);
        else if (nm == "ceil") v = std::ceil(xo);
        else c.fail("nearest_mode '" + nm + "' is not supported");
        const std::int64_t i = static_cast<std::int64_t>(std::clamp(v, 0.0, static_cast<double>(in - 1)));  // clamp first: v may be beyond int64
        lo[d][o] = hi[d][o] = i;
        wt[d][o] = 0.0;
      }
    }
  }
  auto ist = strides_of(X.shape);
  std::vector<std::int64_t> idx(r, 0);
  const std::int64_t n = Y.numel();
  for (std::int64_t k = 0; k < n; ++k) {
    bool outside = false;
    for (std::size_t d = 0; d < r; ++d) outside = outside || lo[d][idx[d]] < 0;
    double acc = 0;
    if (!outside) {
      // Sum over the 2^r corners, skipping the axes whose second weight is 0.
      const std::size_t corners = std::size_t(1) << r;
      for (std::size_t m = 0; m < corners; ++m) {
        double w = 1;
        std::int64_t off = 0;
        for (std::size_t d = 0; d < r && w != 0; ++d) {
          const bool up = (m >> d) & 1;
          const double wd = wt[d][idx[d]];
          if (up && wd == 0) { w = 0; break; }
          w *= up ? wd : 1.0 - wd;
          off += (up ? hi[d][idx[d]] : lo[d][idx[d]]) * ist[d];
        }
        if (w != 0) acc += w * X.at(off);
      }
    } else {
      acc = rs.extrapolation;
    }
    if (X.is_int) (*Y.i)[k] = static_cast<std::int64_t>(acc);
    else (*Y.f)[k] = static_cast<float>(acc);
    for (std::int64_t d = static_cast<std::int64_t>(r) - 1; d >= 0; --d) {
      if (++idx[d] < os[d]) break;
      idx[d] = 0;
    }
  }
}

void op_resize(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  ResizeSpec rs;
  rs.mode = c.node.get_s("mode", "nearest");
  rs.coord = c.node.get_s("coordinate_transformation_mode", c.opset < 11 ? "asymmetric" : "half_pixel");
  rs.nearest = c.node.get_s("nearest_mode", c.opset < 11 ? "floor" : "round_prefer_floor");
  rs.extrapolation = c.node.get_f("extrapolation_value", 0.0f);
  if (c.node.get_i("antialias", 0) != 0) c.fail("antialias is not supported");
  if (c.node.has("axes")) c.fail("the axes attribute is not supported");
  if (c.node.get_s("keep_aspect_ratio_policy", "stretch") != "stretch") c.fail("keep_aspect_ratio_policy is not supported");
  std::vector<double> scales;
  std::vector<std::int64_t> sizes;
  if (c.opset < 11) {
    const Value& S = c.data(1);
    for (std::int64_t k = 0; k < S.numel(); ++k) scales.push_back(S.at(k));
  } else {
    if (c.present(1) && c.x(1).numel() > 0) {
      const Value& R = c.data(1);
      for (std::int64_t k = 0; k < R.numel(); ++k) rs.roi.push_back(R.at(k));
    }
    if (c.present(2) && c.x(2).numel() > 0) {
      const Value& S = c.data(2);
      for (std::int64_t k = 0; k < S.numel(); ++k) scales.push_back(S.at(k));
    }
    if (c.present(3) && c.x(3).numel() > 0) sizes = c.ints_of(3);
  }
  if (scales.empty() == sizes.empty()) c.fail("exactly one of scales and sizes must be given");
  Shape os(r);
  if (!scales.empty()) {
    if (scales.size() != r) c.fail("scales has " + std::to_string(scales.size()) + " entries for rank " + std::to_string(r));
    for (std::size_t d = 0; d < r; ++d) {
      if (!(scales[d] > 0)) c.fail("scales must be positive");
      const double n = std::floor(static_cast<double>(X.shape[d]) * static_cast<float>(scales[d]));
      if (!(n <= static_cast<double>(max_tensor_elements()))) c.fail("scales exceed the tensor size limit");
      os[d] = static_cast<std::int64_t>(n);
    }
    rs.scales = scales;
  } else {
    if (sizes.size() != r) c.fail("sizes has " + std::to_string(sizes.size()) + " entries for rank " + std::to_string(r));
    for (std::size_t d = 0; d < r; ++d) {
      if (sizes[d] < 0) c.fail("negative size");
      os[d] = sizes[d];
      rs.scales.push_back(X.shape[d] ? static_cast<double>(sizes[d]) / static_cast<double>(X.shape[d]) : 1.0);
    }
  }
  if (!rs.roi.empty() && rs.roi.size() != 2 * r) c.fail("roi must have 2 * rank entries");
  resize_run(c, rs, os);
}

void op_upsample(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  ResizeSpec rs;
  rs.mode = c.node.get_s("mode", "nearest");
  rs.coord = "asymmetric";
  rs.nearest = "floor";
  std::vector<double> scales;
  if (c.present(1)) {
    const Value& S = c.data(1);
    for (std::int64_t k = 0; k < S.numel(); ++k) scales.push_back(S.at(k));
  } else {
    const auto it = c.node.attrs.find("scales");
    if (it != c.node.attrs.end()) scales.assign(it->second.floats.begin(), it->second.floats.end());
  }
  if (scales.size() != r) c.fail("scales must have one entry per axis");
  Shape os(r);
  for (std::size_t d = 0; d < r; ++d) {
    if (!(scales[d] >= 1)) c.fail("scales must be >= 1");
    const double n = std::floor(static_cast<double>(X.shape[d]) * scales[d]);
    if (!(n <= static_cast<double>(max_tensor_elements()))) c.fail("scales exceed the tensor size limit");
    os[d] = static_cast<std::int64_t>(n);
  }
  rs.scales = scales;
  resize_run(c, rs, os);
}

// ---------------------------------------------------------------------------------------------
// Further operators: trigonometry, NaN / Inf tests, Shrink, Size, Hardmax, LRN (AlexNet / GoogLeNet),
// DepthToSpace / SpaceToDepth (pixel shuffle), TopK, Trilu, CumSum.

void op_tan(OpCtx& c) { unary(c, [](float x) { return std::tan(x); }); }
void op_asin(OpCtx& c) { unary(c, [](float x) { return std::asin(x); }); }
void op_acos(OpCtx& c) { unary(c, [](float x) { return std::acos(x); }); }
void op_atan(OpCtx& c) { unary(c, [](float x) { return std::atan(x); }); }
void op_sinh(OpCtx& c) { unary(c, [](float x) { return std::sinh(x); }); }
void op_cosh(OpCtx& c) { unary(c, [](float x) { return std::cosh(x); }); }
void op_asinh(OpCtx& c) { unary(c, [](float x) { return std::asinh(x); }); }
void op_acosh(OpCtx& c) { unary(c, [](float x) { return std::acosh(x); }); }
void op_atanh(OpCtx& c) { unary(c, [](float x) { return std::atanh(x); }); }
void op_shrink(OpCtx& c) {
  const float l = c.node.get_f("lambd", 0.5f), b = c.node.get_f("bias", 0.0f);
  unary(c, [l, b](float x) { return x < -l ? x + b : (x > l ? x - b : 0.0f); });
}

template <class F>
void float_test(OpCtx& c, F f) {
  const Value& X = c.x(0);
  if (X.is_int) c.fail("expects a float tensor");
  Value& Y = c.alloc(0, X.shape, true);
  if (c.shape_only) return;
  for (std::int64_t k = 0; k < X.numel(); ++k) (*Y.i)[k] = f((*X.f)[k]) ? 1 : 0;
}
void op_isnan(OpCtx& c) { float_test(c, [](float x) { return std::isnan(x); }); }
void op_isinf(OpCtx& c) {
  const bool pos = c.node.get_i("detect_positive", 1) != 0, neg = c.node.get_i("detect_negative", 1) != 0;
  float_test(c, [pos, neg](float x) { return std::isinf(x) && (x > 0 ? pos : neg); });
}

void op_size(OpCtx& c) {
  if (c.out.empty()) c.out.resize(1);
  Value v = Value::ints({});  // known from the shape alone, also in shape-only mode
  (*v.i)[0] = c.x(0).numel();
  c.out[0] = v;
}

void op_hardmax(OpCtx& c) {
  const Value& X = c.x(0);
  if (X.is_int) c.fail("expects a float tensor");
  const auto r = X.shape.size();
  const std::int64_t axis = norm_axis(c, c.node.get_i("axis", c.opset >= 13 ? -1 : 1), r);
  Value& Y = c.alloc(0, X.shape);
  if (c.shape_only) return;
  // opset < 13: over the flattened dims [axis, rank); opset >= 13: over one axis.
  std::int64_t outer = 1, len = 1, inner = 1;
  for (std::size_t k = 0; k < r; ++k) {
    if (static_cast<std::int64_t>(k) < axis) outer *= X.shape[k];
    else if (static_cast<std::int64_t>(k) == axis || c.opset < 13) len *= X.shape[k];
    else inner *= X.shape[k];
  }
  std::fill(Y.f->begin(), Y.f->end(), 0.0f);
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < inner; ++i) {
      const float* xs = X.fp() + o * len * inner + i;
      std::int64_t best = 0;
      for (std::int64_t k = 1; k < len; ++k) if (xs[k * inner] > xs[best * inner]) best = k;
      if (len > 0) Y.mfp()[o * len * inner + i + best * inner] = 1.0f;
    }
}

void op_lrn(OpCtx& c) {
  const Value& X = c.x(0);
  if (X.is_int || X.shape.size() < 3) c.fail("expects a float tensor of rank >= 3");
  const std::int64_t size = c.node.get_i("size", 0);
  if (size < 1) c.fail("size must be >= 1");
  const float alpha = c.node.get_f("alpha", 1e-4f), beta = c.node.get_f("beta", 0.75f), bias = c.node.get_f("bias", 1.0f);
  Value& Y = c.alloc(0, X.shape);
  if (c.shape_only) return;
  const std::int64_t N = X.shape[0], C = X.shape[1], inner = X.numel() / std::max<std::int64_t>(1, N * C);
  const std::int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t ch = 0; ch < C; ++ch)
      for (std::int64_t k = 0; k < inner; ++k) {
        double sq = 0;
        for (std::int64_t j = std::max<std::int64_t>(0, ch - lo); j <= std::min(C - 1, ch + hi); ++j) {
          const double v = X.fp()[(n * C + j) * inner + k];
          sq += v * v;
        }
        const std::int64_t o = (n * C + ch) * inner + k;
        Y.mfp()[o] = static_cast<float>(X.fp()[o] / std::pow(bias + alpha / static_cast<double>(size) * sq, beta));
      }
}

// DepthToSpace (DCR / CRD) and SpaceToDepth: y[n, c', h*b+i, w*b+j] <-> x[n, channel(c', i, j), h, w].
void depth_space(OpCtx& c, bool to_space) {
  const Value& X = c.x(0);
  if (X.shape.size() != 4) c.fail("expects a 4-D tensor, got " + shape_str(X.shape));
  const std::int64_t b = c.node.get_i("blocksize", 0);
  if (b < 1 || b > (1 << 16)) c.fail("blocksize must be in [1, 65536]");
  const std::int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
  if (std::max({C, H, W}) > max_tensor_elements() / (b * b)) c.fail("result exceeds the tensor size limit");
  const bool crd = c.node.get_s("mode", "DCR") == "CRD";
  Shape os;
  if (to_space) {
    if (C % (b * b) != 0) c.fail("channels not divisible by blocksize^2");
    os = {N, C / (b * b), H * b, W * b};
  } else {
    if (H % b != 0 || W % b != 0) c.fail("height / width not divisible by blocksize");
    os = {N, C * b * b, H / b, W / b};
  }
  Value& Y = c.alloc(0, os, X.is_int);
  if (c.shape_only) return;
  // Indices over the large (space) layout: (n, cs, hs, ws) with cs the small channel count.
  const std::int64_t Cs = to_space ? os[1] : C, Hs = to_space ? os[2] : H, Ws = to_space ? os[3] : W;
  const std::int64_t Cd = Cs * b * b, Hd = Hs / b, Wd = Ws / b;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t cs = 0; cs < Cs; ++cs)
      for (std::int64_t hs = 0; hs < Hs; ++hs)
        for (std::int64_t ws = 0; ws < Ws; ++ws) {
          const std::int64_t i = hs % b, j = ws % b;
          const std::int64_t cd = crd ? (cs * b + i) * b + j : (i * b + j) * Cs + cs;
          const std::int64_t sp = ((n * Cs + cs) * Hs + hs) * Ws + ws, dp = ((n * Cd + cd) * Hd + hs / b) * Wd + ws / b;
          const std::int64_t dst = to_space ? sp : dp, src = to_space ? dp : sp;
          if (X.is_int) (*Y.i)[dst] = (*X.i)[src];
          else (*Y.f)[dst] = (*X.f)[src];
        }
}
void op_depth_to_space(OpCtx& c) { depth_space(c, true); }
void op_space_to_depth(OpCtx& c) {
  if (c.node.has("mode")) c.fail("SpaceToDepth has no mode attribute");
  depth_space(c, false);
}

void op_topk(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  const auto axis = norm_axis(c, c.node.get_i("axis", -1), r);
  const Value& Kv = c.data(1);
  if (Kv.numel() != 1) c.fail("K must have one element");
  const std::int64_t K = c.int_at(Kv, 0), D = X.shape[axis];
  if (K < 0 || K > D) c.fail("K = " + std::to_string(K) + " outside [0, " + std::to_string(D) + "]");
  const bool largest = c.node.get_i("largest", 1) != 0;
  Shape os = X.shape;
  os[axis] = K;
  Value& V = c.alloc(0, os, X.is_int);
  Value& I = c.alloc(1, os, true);
  if (c.shape_only) return;
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < r; ++d) if (static_cast<std::int64_t>(d) < axis) outer *= X.shape[d]; else if (static_cast<std::int64_t>(d) > axis) inner *= X.shape[d];
  std::vector<std::int64_t> idx(static_cast<std::size_t>(D));
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < inner; ++i) {
      auto val = [&](std::int64_t k) { return X.at((o * D + k) * inner + i); };
      for (std::int64_t k = 0; k < D; ++k) idx[k] = k;
      // Sorted by value, ties by the smaller index (ONNX's rule).
      std::stable_sort(idx.begin(), idx.end(), [&](std::int64_t a, std::int64_t b) { return largest ? val(a) > val(b) : val(a) < val(b); });
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t dst = (o * K + k) * inner + i, src = (o * D + idx[k]) * inner + i;
        if (X.is_int) (*V.i)[dst] = (*X.i)[src];
        else (*V.f)[dst] = (*X.f)[src];
        (*I.i)[dst] = idx[k];
      }
    }
}

void op_trilu(OpCtx& c) {
  const Value& X = c.x(0);
  if (X.shape.size() < 2) c.fail("expects rank >= 2");
  const std::int64_t k = c.present(1) ? c.int_at(c.data(1), 0) : 0;
  const bool upper = c.node.get_i("upper", 1) != 0;
  Value& Y = c.alloc(0, X.shape, X.is_int);
  if (c.shape_only) return;
  const std::int64_t R = X.shape[X.shape.size() - 2], C = X.shape.back();
  for (std::int64_t e = 0; e < X.numel(); ++e) {
    const std::int64_t j = e % C, i = (e / C) % std::max<std::int64_t>(1, R);
    const bool keep = upper ? j - i >= k : j - i <= k;
    if (X.is_int) (*Y.i)[e] = keep ? (*X.i)[e] : 0;
    else (*Y.f)[e] = keep ? (*X.f)[e] : 0.0f;
  }
}

void op_cumsum(OpCtx& c) {
  const Value& X = c.x(0);
  const std::size_t r = X.shape.size();
  const Value& A = c.data(1);
  if (A.numel() != 1) c.fail("axis must have one element");
  const auto axis = norm_axis(c, c.int_at(A, 0), r);
  const bool excl = c.node.get_i("exclusive", 0) != 0, rev = c.node.get_i("reverse", 0) != 0;
  Value& Y = c.alloc(0, X.shape, X.is_int);
  if (c.shape_only) return;
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < r; ++d) if (static_cast<std::int64_t>(d) < axis) outer *= X.shape[d]; else if (static_cast<std::int64_t>(d) > axis) inner *= X.shape[d];
  const std::int64_t D = X.shape[axis];
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < inner; ++i) {
      double acc = 0;
      std::int64_t iacc = 0;
      for (std::int64_t s = 0; s < D; ++s) {
        const std::int64_t k = rev ? D - 1 - s : s, off = (o * D + k) * inner + i;
        if (X.is_int) {
          if (excl) { (*Y.i)[off] = iacc; iacc = wadd(iacc, (*X.i)[off]); }
          else { iacc = wadd(iacc, (*X.i)[off]); (*Y.i)[off] = iacc; }
        } else {
          if (excl) { (*Y.f)[off] = static_cast<float>(acc); acc += (*X.f)[off]; }
          else { acc += (*X.f)[off]; (*Y.f)[off] = static_cast<float>(acc); }
        }
      }
    }
}

struct OpEntry {
  const char* name;
  OpFn fn;
  int min_in, max_in;
};

const OpEntry kOps[] = {
    {"Abs", op_abs, 1, 1},
    {"Acos", op_acos, 1, 1},
    {"Acosh", op_acosh, 1, 1},
    {"Add", op_add, 2, 2},
    {"And", op_and, 2, 2},
    {"ArgMax", op_argmax, 1, 1},
    {"ArgMin", op_argmin, 1, 1},
    {"Asin", op_asin, 1, 1},
    {"Asinh", op_asinh, 1, 1},
    {"Atan", op_atan, 1, 1},
    {"Atanh", op_atanh, 1, 1},
    {"AveragePool", op_avgpool, 1, 1},
    {"BatchNormalization", op_batchnorm, 5, 5},
    {"Cast", op_cast, 1, 1},
    {"Ceil", op_ceil, 1, 1},
    {"Celu", op_celu, 1, 1},
    {"Clip", op_clip, 1, 3},
    {"Concat", op_concat, 1, 1 << 20},
    {"Constant", op_constant, 0, 0},
    {"ConstantOfShape", op_constant_of_shape, 1, 1},
    {"Conv", op_conv, 2, 3},
    {"ConvTranspose", op_conv_transpose, 2, 3},
    {"Einsum", op_einsum, 1, 64},
    {"If", op_if, 1, 1 << 20},
    {"Loop", op_loop, 2, 1 << 20},
    {"Scan", op_scan, 1, 1 << 20},
    {"GatherND", op_gather_nd, 2, 2},
    {"NonZero", op_non_zero, 1, 1},
    {"OneHot", op_one_hot, 3, 3},
    {"ScatterND", op_scatter_nd, 3, 3},
    {"Scatter", op_scatter_elements, 3, 3},
    {"ScatterElements", op_scatter_elements, 3, 3},
    {"Cos", op_cos, 1, 1},
    {"Cosh", op_cosh, 1, 1},
    {"CumSum", op_cumsum, 2, 2},
    {"DepthToSpace", op_depth_to_space, 1, 1},
    {"DequantizeLinear", op_dequantize_linear, 2, 3},
    {"QuantizeLinear", op_quantize_linear, 2, 3},
    {"DynamicQuantizeLinear", op_dynamic_quantize_linear, 1, 1},
    {"Div", op_div, 2, 2},
    {"Dropout", op_dropout, 1, 3},
    {"Elu", op_elu, 1, 1},
    {"Equal", op_equal, 2, 2},
    {"Erf", op_erf, 1, 1},
    {"Exp", op_exp, 1, 1},
    {"Expand", op_expand, 2, 2},
    {"Flatten", op_flatten, 1, 1},
    {"Floor", op_floor, 1, 1},
    {"Gather", op_gather, 2, 2},
    {"GatherElements", op_gather_elements, 2, 2},
    {"Gelu", op_gelu, 1, 1},
    {"GRU", op_gru, 3, 6},
    {"Gemm", op_gemm, 2, 3},
    {"GlobalAveragePool", op_gap, 1, 1},
    {"GlobalMaxPool", op_gmp, 1, 1},
    {"Greater", op_greater, 2, 2},
    {"GreaterOrEqual", op_greater_equal, 2, 2},
    {"HardSigmoid", op_hard_sigmoid, 1, 1},
    {"HardSwish", op_hard_swish, 1, 1},
    {"Hardmax", op_hardmax, 1, 1},
    {"Identity", op_identity, 1, 1},
    {"InstanceNormalization", op_instance_norm, 3, 3},
    {"IsInf", op_isinf, 1, 1},
    {"IsNaN", op_isnan, 1, 1},
    {"LRN", op_lrn, 1, 1},
    {"LSTM", op_lstm, 3, 8},
    {"LayerNormalization", op_layernorm, 2, 3},
    {"LeakyRelu", op_leaky_relu, 1, 1},
    {"Less", op_less, 2, 2},
    {"LessOrEqual", op_less_equal, 2, 2},
    {"Log", op_log, 1, 1},
    {"LogSoftmax", op_log_softmax, 1, 1},
    {"MatMul", op_matmul, 2, 2},
    {"Max", op_max, 1, 1 << 20},
    {"MaxPool", op_maxpool, 1, 1},
    {"Mean", op_mean, 1, 1 << 20},
    {"Min", op_min, 1, 1 << 20},
    {"Mish", op_mish, 1, 1},
    {"Mod", op_mod, 2, 2},
    {"Mul", op_mul, 2, 2},
    {"Neg", op_neg, 1, 1},
    {"Not", op_not, 1, 1},
    {"Or", op_or, 2, 2},
    {"PRelu", op_prelu, 2, 2},
    {"Pad", op_pad, 1, 4},
    {"Pow", op_pow, 2, 2},
    {"Range", op_range, 3, 3},
    {"Reciprocal", op_reciprocal, 1, 1},
    {"ReduceL1", op_reduce_l1, 1, 2},
    {"ReduceL2", op_reduce_l2, 1, 2},
    {"ReduceLogSum", op_reduce_log_sum, 1, 2},
    {"ReduceLogSumExp", op_reduce_log_sum_exp, 1, 2},
    {"ReduceMax", op_reduce_max, 1, 2},
    {"ReduceMean", op_reduce_mean, 1, 2},
    {"ReduceMin", op_reduce_min, 1, 2},
    {"ReduceProd", op_reduce_prod, 1, 2},
    {"ReduceSum", op_reduce_sum, 1, 2},
    {"ReduceSumSquare", op_reduce_sum_square, 1, 2},
    {"RNN", op_rnn, 3, 6},
    {"Relu", op_relu, 1, 1},
    {"Reshape", op_reshape, 1, 2},
    {"Resize", op_resize, 1, 4},
    {"Round", op_round, 1, 1},
    {"Selu", op_selu, 1, 1},
    {"Shape", op_shape, 1, 1},
    {"Shrink", op_shrink, 1, 1},
    {"Sigmoid", op_sigmoid, 1, 1},
    {"Sign", op_sign, 1, 1},
    {"Sin", op_sin, 1, 1},
    {"Sinh", op_sinh, 1, 1},
    {"Size", op_size, 1, 1},
    {"Slice", op_slice, 1, 5},
    {"Softmax", op_softmax, 1, 1},
    {"Softplus", op_softplus, 1, 1},
    {"Softsign", op_softsign, 1, 1},
    {"SpaceToDepth", op_space_to_depth, 1, 1},
    {"Split", op_split, 1, 2},
    {"Sqrt", op_sqrt, 1, 1},
    {"Squeeze", op_squeeze, 1, 2},
    {"Sub", op_sub, 2, 2},
    {"Sum", op_sum, 1, 1 << 20},
    {"Tan", op_tan, 1, 1},
    {"Tanh", op_tanh, 1, 1},
    {"ThresholdedRelu", op_thresholded_relu, 1, 1},
    {"Tile", op_tile, 2, 2},
    {"TopK", op_topk, 2, 2},
    {"Transpose", op_transpose, 1, 1},
    {"Trilu", op_trilu, 1, 2},
    {"Unsqueeze", op_unsqueeze, 1, 2},
    {"Upsample", op_upsample, 1, 2},
    {"Where", op_where, 3, 3},
    {"Xor", op_xor, 2, 2},
};

const OpEntry* find_entry(const std::string& op) {
  for (const auto& e : kOps) if (op == e.name) return &e;
  return nullptr;
}

}  // namespace

OpFn find_op(const std::string& op) {
  const OpEntry* e = find_entry(op);
  return e ? e->fn : nullptr;
}

std::vector<std::string> op_names() {
  std::vector<std::string> r;
  for (const auto& e : kOps) r.emplace_back(e.name);
  return r;
}

std::pair<int, int> op_arity(const std::string& op) {
  const OpEntry* e = find_entry(op);
  return e ? std::make_pair(e->min_in, e->max_in) : std::make_pair(0, 0);
}

}  // namespace qcast::nn::detail
