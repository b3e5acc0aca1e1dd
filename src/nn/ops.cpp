// Operator implementations of the graph executor (ONNX semantics, float32 and int64 values).
#include "kernels/blas.hpp"
#include "nn/ops.hpp"
#include "nn/conv_direct.hpp"


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

std::vector<std::int64_t> OpCtx::ints_of(std::size_t k) const {
  const Value& v = data(k);
  std::vector<std::int64_t> r(static_cast<std::size_t>(v.numel()));
  for (std::size_t j = 0; j < r.size(); ++j) r[j] = v.is_int ? (*v.i)[j] : static_cast<std::int64_t>((*v.f)[j]);
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
  if (axis < 0) axis += r + (allow_end ? 1 : 0);
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

void op_add(OpCtx& c) { binary(c, [](float a, float b) { return a + b; }, [](std::int64_t a, std::int64_t b) { return a + b; }); }
void op_sub(OpCtx& c) { binary(c, [](float a, float b) { return a - b; }, [](std::int64_t a, std::int64_t b) { return a - b; }); }
void op_mul(OpCtx& c) { binary(c, [](float a, float b) { return a * b; }, [](std::int64_t a, std::int64_t b) { return a * b; }); }
void op_div(OpCtx& c) {
  binary(c, [](float a, float b) { return a / b; },
         [&c](std::int64_t a, std::int64_t b) -> std::int64_t { if (b == 0) c.fail("integer division by zero"); return a / b; });
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
  if (c.present(1)) lo = static_cast<float>(c.data(1).at(0));
  if (c.present(2)) hi = static_cast<float>(c.data(2).at(0));
  unary(c, [lo, hi](float x) { return std::min(std::max(x, lo), hi); });
}

void op_identity(OpCtx& c) {
  if (c.out.empty()) c.out.resize(1);
  c.out[0] = c.x(0);
}

// ---------------------------------------------------------------------------------------------
// Activation fake-quant helper: returns a pointer to the (possibly quantized) input data.

const float* maybe_quant_act(OpCtx& c, const Value& x, int axis, std::vector<float>& buf) {
  if (!c.node.quant.act) return x.fp();
  buf.resize(static_cast<std::size_t>(x.numel()));
  c.node.quant.act->apply(x.fp(), buf.data(), x.shape, axis, c.threads, c.node.name);
  return buf.data();
}

// ---------------------------------------------------------------------------------------------
// Conv / pooling

struct Window {
  std::int64_t kh, kw, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0, P = 0, Q = 0;
};

Window window(const OpCtx& c, std::int64_t H, std::int64_t W, std::int64_t kh, std::int64_t kw, bool ceil_mode) {
  Window w{kh, kw};
  auto st = c.node.get_ints("strides", {1, 1});
  auto di = c.node.get_ints("dilations", {1, 1});
  auto pads = c.node.get_ints("pads", {0, 0, 0, 0});
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

void op_conv(OpCtx& c) {
  const Value& X = c.x(0);
  const Value& Wt = c.x(1);
  if (X.shape.size() != 4 || Wt.shape.size() != 4) c.fail("only 2-D convolution (4-D input and weight) is supported, got input " + shape_str(X.shape) + " weight " + shape_str(Wt.shape));
  if (X.is_int || Wt.is_int) c.fail("expects float tensors");
  const std::int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
  const std::int64_t M = Wt.shape[0], Cg = Wt.shape[1], kh = Wt.shape[2], kw = Wt.shape[3];
  const std::int64_t G = c.node.get_i("group", 1);
  if (G < 1 || C != Cg * G || M % G != 0) c.fail("channel mismatch: input " + shape_str(X.shape) + ", weight " + shape_str(Wt.shape) + ", group " + std::to_string(G));
  auto ks = c.node.get_ints("kernel_shape", {kh, kw});
  if (ks.size() != 2 || ks[0] != kh || ks[1] != kw) c.fail("kernel_shape does not match the weight");
  Window w = window(c, H, W, kh, kw, false);
  const Value* B = c.present(2) ? &c.x(2) : nullptr;
  if (B && B->numel() != M) c.fail("bias has " + std::to_string(B->numel()) + " elements, expected " + std::to_string(M));
  Value& Y = c.alloc(0, {N, M, w.P, w.Q});
  if (c.shape_only) return;
  std::vector<float> qbuf;
  const float* x = maybe_quant_act(c, X, 1, qbuf);
  const float* wt = Wt.fp();
  const float* bias = B ? B->fp() : nullptr;
  float* y = Y.mfp();
  const std::int64_t Mg = M / G, K = Cg * kh * kw, PQ = w.P * w.Q;
  const bool direct = kh == 1 && kw == 1 && w.sh == 1 && w.sw == 1 && w.pt == 0 && w.pl == 0 && w.pb == 0 && w.pr == 0;
  const ConvDirectShape ds{C, H, W, M, kh, kw, w.P, w.Q};
  const bool small = !direct && G == 1 && w.sh == 1 && w.sw == 1 && w.dh == 1 && w.dw == 1 && w.pt == 0 && w.pl == 0 &&
                     w.pb == 0 && w.pr == 0 && conv_direct_applies(ds);
  if (small) {
    parallel_for(N, c.threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t n = b; n < e; ++n) conv_direct(ds, x + n * C * H * W, wt, bias, y + n * M * w.P * w.Q);
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

void pool(OpCtx& c, bool is_max) {
  const Value& X = c.x(0);
  if (X.shape.size() != 4) c.fail("only 2-D pooling (4-D input) is supported, got " + shape_str(X.shape));
  auto ks = c.node.get_ints("kernel_shape");
  if (ks.size() != 2) c.fail("kernel_shape must have 2 entries");
  const std::int64_t N = X.shape[0], C = X.shape[1], H = X.shape[2], W = X.shape[3];
  if (!is_max && c.node.has("dilations")) {
    auto d = c.node.get_ints("dilations");
    if (d != std::vector<std::int64_t>{1, 1}) c.fail("dilated AveragePool is not supported");
  }
  Window w = window(c, H, W, ks[0], ks[1], c.node.get_i("ceil_mode", 0) != 0);
  Value& Y = c.alloc(0, {N, C, w.P, w.Q});
  if (c.shape_only) return;
  const bool include_pad = c.node.get_i("count_include_pad", 0) != 0;
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
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t k = 0; k < static_cast<std::int64_t>(X.shape.size()); ++k) (k < axis ? outer : inner) *= X.shape[k];
  if (c.x(1).numel() != inner || (c.present(2) && c.x(2).numel() != inner)) c.fail("scale / bias size does not match the normalised dims");
  if (c.node.outputs.size() > 1) c.fail("Mean / InvStdDev outputs are not supported");
  Value& Y = c.alloc(0, X.shape);
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
    for (std::int64_t k = 0; k < inner; ++k) ys[k] = (xs[k] - static_cast<float>(mean)) * r * g[k] + (b ? b[k] : 0.0f);
  }
}

void op_softmax(OpCtx& c) {
  const Value& X = c.x(0);
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
      const float inv = static_cast<float>(1.0 / s);
      for (std::int64_t k = 0; k < len; ++k) ys[k * inner] *= inv;
    }
}

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

std::vector<std::int64_t> strides_of(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (std::int64_t k = static_cast<std::int64_t>(s.size()) - 2; k >= 0; --k) st[k] = st[k + 1] * s[k + 1];
  return st;
}

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
  std::vector<std::int64_t> idx(r, 0);
  std::int64_t base = 0;
  for (std::size_t d = 0; d < r; ++d) base += st[d] * ist[d];
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
    auto v = static_cast<std::int64_t>(I.at(k));
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

struct OpEntry {
  const char* name;
  OpFn fn;
  int min_in, max_in;
};

const OpEntry kOps[] = {
    {"Add", op_add, 2, 2},
    {"AveragePool", op_avgpool, 1, 1},
    {"BatchNormalization", op_batchnorm, 5, 5},
    {"Cast", op_cast, 1, 1},
    {"Clip", op_clip, 1, 3},
    {"Concat", op_concat, 1, 1 << 20},
    {"Constant", op_constant, 0, 0},
    {"ConstantOfShape", op_constant_of_shape, 1, 1},
    {"Conv", op_conv, 2, 3},
    {"Div", op_div, 2, 2},
    {"Erf", op_erf, 1, 1},
    {"Flatten", op_flatten, 1, 1},
    {"Gather", op_gather, 2, 2},
    {"Gelu", op_gelu, 1, 1},
    {"Gemm", op_gemm, 2, 3},
    {"GlobalAveragePool", op_gap, 1, 1},
    {"GlobalMaxPool", op_gmp, 1, 1},
    {"Identity", op_identity, 1, 1},
    {"LayerNormalization", op_layernorm, 2, 3},
    {"LeakyRelu", op_leaky_relu, 1, 1},
    {"MatMul", op_matmul, 2, 2},
    {"MaxPool", op_maxpool, 1, 1},
    {"Mul", op_mul, 2, 2},
    {"Pad", op_pad, 1, 4},
    {"Relu", op_relu, 1, 1},
    {"Reshape", op_reshape, 1, 2},
    {"Shape", op_shape, 1, 1},
    {"Sigmoid", op_sigmoid, 1, 1},
    {"Slice", op_slice, 1, 5},
    {"Softmax", op_softmax, 1, 1},
    {"Sqrt", op_sqrt, 1, 1},
    {"Squeeze", op_squeeze, 1, 2},
    {"Sub", op_sub, 2, 2},
    {"Tanh", op_tanh, 1, 1},
    {"Transpose", op_transpose, 1, 1},
    {"Unsqueeze", op_unsqueeze, 1, 2},
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
