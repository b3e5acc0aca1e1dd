// Recurrent operators of the graph executor: ONNX RNN, GRU and LSTM (opset 7-22 semantics: directions,
// layout, sequence_lens, initial states, peepholes, clip, input_forget, linear_before_reset; the default
// activation functions). The input projections of all time steps are one sgemm per direction; the recurrence
// is one sgemm per step (batch rows x gates).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "qcast/kernels/blas.hpp"
#include "nn/ops.hpp"

namespace qcast::nn::detail {

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

enum class Cell { Rnn, Gru, Lstm };

// Runs all three cells. Gate blocks in W / R / B follow ONNX's orders: RNN i; GRU z r h; LSTM i o f c.
void recurrent(OpCtx& c, Cell cell) {
  const std::size_t G = cell == Cell::Rnn ? 1 : cell == Cell::Gru ? 3 : 4;
  const Value& X = c.x(0);
  const Value& W = c.x(1);
  const Value& R = c.x(2);
  if (X.is_int || W.is_int || R.is_int) c.fail("float inputs expected");
  if (X.shape.size() != 3) c.fail("X must be 3-D, got " + shape_str(X.shape));
  const std::int64_t layout = c.node.get_i("layout", 0);
  const std::string dir = c.node.get_s("direction", "forward");
  if (dir != "forward" && dir != "reverse" && dir != "bidirectional") c.fail("direction '" + dir + "' is not forward, reverse or bidirectional");
  const std::int64_t D = dir == "bidirectional" ? 2 : 1;
  const std::int64_t T = layout ? X.shape[1] : X.shape[0], N = layout ? X.shape[0] : X.shape[1], I = X.shape[2];
  if (W.shape.size() != 3 || W.shape[0] != D || W.shape[2] != I || W.shape[1] % static_cast<std::int64_t>(G) != 0)
    c.fail("W has shape " + shape_str(W.shape) + ", expected [" + std::to_string(D) + ", " + std::to_string(G) + "*hidden, " + std::to_string(I) + "]");
  const std::int64_t H = W.shape[1] / static_cast<std::int64_t>(G);
  if (c.node.has("hidden_size") && c.node.get_i("hidden_size", H) != H) c.fail("hidden_size does not match W " + shape_str(W.shape));
  if (R.shape != Shape{D, static_cast<std::int64_t>(G) * H, H}) c.fail("R has shape " + shape_str(R.shape) + ", expected " + shape_str({D, static_cast<std::int64_t>(G) * H, H}));
  const Value* B = c.present(3) ? c.in[3] : nullptr;
  const Value* L = c.present(4) ? c.in[4] : nullptr;
  const Value* H0 = c.present(5) ? c.in[5] : nullptr;
  const Value* C0 = cell == Cell::Lstm && c.present(6) ? c.in[6] : nullptr;
  const Value* P = cell == Cell::Lstm && c.present(7) ? c.in[7] : nullptr;
  if (B && B->shape != Shape{D, 2 * static_cast<std::int64_t>(G) * H}) c.fail("B has shape " + shape_str(B->shape));
  if (L && L->shape != Shape{N}) c.fail("sequence_lens has shape " + shape_str(L->shape) + ", expected [" + std::to_string(N) + "]");
  const Shape state = layout ? Shape{N, D, H} : Shape{D, N, H};
  if (H0 && H0->shape != state) c.fail("initial_h has shape " + shape_str(H0->shape) + ", expected " + shape_str(state));
  if (C0 && C0->shape != state) c.fail("initial_c has shape " + shape_str(C0->shape) + ", expected " + shape_str(state));
  if (P && P->shape != Shape{D, 3 * H}) c.fail("P has shape " + shape_str(P->shape));
  const std::size_t nout = c.out.size();
  const Shape yshape = layout ? Shape{N, T, D, H} : Shape{T, D, N, H};
  Value* Y = nout > 0 ? &c.alloc(0, yshape) : nullptr;
  Value* Yh = nout > 1 ? &c.alloc(1, state) : nullptr;
  Value* Yc = cell == Cell::Lstm && nout > 2 ? &c.alloc(2, state) : nullptr;
  if (c.shape_only) return;
  // The default activations only (Sigmoid / Tanh): a list of other functions is refused by name.
  if (c.node.has("activations") || c.node.has("activation_alpha") || c.node.has("activation_beta"))
    c.fail("only the default activations (Sigmoid, Tanh) are supported");
  const float clip = c.node.get_f("clip", 0.0f);
  const bool has_clip = c.node.has("clip");
  const bool input_forget = c.node.get_i("input_forget", 0) != 0;
  const bool lbr = c.node.get_i("linear_before_reset", 0) != 0;
  std::vector<std::int64_t> len(static_cast<std::size_t>(N), T);
  if (L)
    for (std::int64_t n = 0; n < N; ++n) {
      len[static_cast<std::size_t>(n)] = static_cast<std::int64_t>(L->at(n));
      if (len[static_cast<std::size_t>(n)] < 0 || len[static_cast<std::size_t>(n)] > T) c.fail("sequence_lens holds " + std::to_string(len[static_cast<std::size_t>(n)]) + ", outside [0, " + std::to_string(T) + "]");
    }
  if (Y) std::fill(Y->f->begin(), Y->f->end(), 0.0f);
  const std::int64_t GH = static_cast<std::int64_t>(G) * H;
  // x as [T, N, I] rows: row (t, n).
  auto xrow = [&](std::int64_t t, std::int64_t n) { return X.fp() + (layout ? (n * T + t) : (t * N + n)) * I; };
  auto sidx = [&](std::int64_t d, std::int64_t n) { return layout ? (n * D + d) * H : (d * N + n) * H; };
  std::vector<float> xs(static_cast<std::size_t>(T * N * I)), xp(static_cast<std::size_t>(T * N * GH)), hp(static_cast<std::size_t>(N * GH));
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t n = 0; n < N; ++n) std::copy_n(xrow(t, n), I, xs.data() + (t * N + n) * I);
  std::vector<float> h(static_cast<std::size_t>(N * H)), cst(static_cast<std::size_t>(N * H)), rh(static_cast<std::size_t>(N * H));
  for (std::int64_t d = 0; d < D; ++d) {
    const bool rev = dir == "reverse" || d == 1;
    const float* w = W.fp() + d * GH * I;
    const float* r = R.fp() + d * GH * H;
    const float* wb = B ? B->fp() + d * 2 * GH : nullptr;
    const float* rb = B ? wb + GH : nullptr;
    const float* p = P ? P->fp() + d * 3 * H : nullptr;
    // All input projections at once: xp[t*N + n] = x W^T (+ Wb, and + Rb except for GRU's h gate).
    if (T * N > 0) blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(T * N), static_cast<blasint>(GH), static_cast<blasint>(I), 1.0f,
                               xs.data(), static_cast<blasint>(I), w, static_cast<blasint>(I), 0.0f, xp.data(), static_cast<blasint>(GH));
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t k = 0; k < H; ++k) {
        h[static_cast<std::size_t>(n * H + k)] = H0 ? H0->fp()[sidx(d, n) + k] : 0.0f;
        cst[static_cast<std::size_t>(n * H + k)] = C0 ? C0->fp()[sidx(d, n) + k] : 0.0f;
      }
    for (std::int64_t s = 0; s < T; ++s) {
      // hp = h R^T (for GRU with linear_before_reset = 0 the h gate's block is recomputed from r (.) h below).
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(N), static_cast<blasint>(GH), static_cast<blasint>(H), 1.0f,
                  h.data(), static_cast<blasint>(H), r, static_cast<blasint>(H), 0.0f, hp.data(), static_cast<blasint>(GH));
      for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t ln = len[static_cast<std::size_t>(n)];
        if (s >= ln) continue;  // past this sequence's end: state kept, Y stays 0
        const std::int64_t t = rev ? ln - 1 - s : s;
        const float* gx = xp.data() + (t * N + n) * GH;
        const float* gh = hp.data() + n * GH;
        float* hn = h.data() + n * H;
        float* cn = cst.data() + n * H;
        auto pre = [&](std::int64_t g, std::int64_t k, bool with_h) {
          float v = gx[g * H + k] + (with_h ? gh[g * H + k] : 0.0f);
          if (wb) v += wb[g * H + k] + (with_h ? rb[g * H + k] : 0.0f);
          return v;
        };
        auto clipped = [&](float v) { return has_clip ? std::max(-clip, std::min(clip, v)) : v; };
        if (cell == Cell::Rnn) {
          for (std::int64_t k = 0; k < H; ++k) rh[static_cast<std::size_t>(k)] = std::tanh(clipped(pre(0, k, true)));
          std::copy_n(rh.data(), H, hn);
        } else if (cell == Cell::Gru) {
          std::vector<float> z(static_cast<std::size_t>(H)), rr(static_cast<std::size_t>(H)), hh(static_cast<std::size_t>(H));
          for (std::int64_t k = 0; k < H; ++k) {
            z[static_cast<std::size_t>(k)] = sigmoid(clipped(pre(0, k, true)));
            rr[static_cast<std::size_t>(k)] = sigmoid(clipped(pre(1, k, true)));
          }
          if (lbr) {
            for (std::int64_t k = 0; k < H; ++k)
              hh[static_cast<std::size_t>(k)] = std::tanh(clipped(gx[2 * H + k] + (wb ? wb[2 * H + k] : 0.0f) +
                                                             rr[static_cast<std::size_t>(k)] * (gh[2 * H + k] + (rb ? rb[2 * H + k] : 0.0f))));
          } else {
            std::vector<float> rhv(static_cast<std::size_t>(H));
            for (std::int64_t k = 0; k < H; ++k) rhv[static_cast<std::size_t>(k)] = rr[static_cast<std::size_t>(k)] * hn[k];
            for (std::int64_t k = 0; k < H; ++k) {
              double acc = 0;
              const float* rrow = r + (2 * H + k) * H;
              for (std::int64_t j = 0; j < H; ++j) acc += static_cast<double>(rrow[j]) * rhv[static_cast<std::size_t>(j)];
              hh[static_cast<std::size_t>(k)] = std::tanh(clipped(gx[2 * H + k] + static_cast<float>(acc) + (wb ? wb[2 * H + k] + rb[2 * H + k] : 0.0f)));
            }
          }
          for (std::int64_t k = 0; k < H; ++k) {
            const float zk = z[static_cast<std::size_t>(k)];
            hn[k] = (1.0f - zk) * hh[static_cast<std::size_t>(k)] + zk * hn[k];
          }
        } else {
          for (std::int64_t k = 0; k < H; ++k) {
            const float cprev = cn[k];
            const float i = sigmoid(clipped(pre(0, k, true) + (p ? p[k] * cprev : 0.0f)));
            const float f = input_forget ? 1.0f - i : sigmoid(clipped(pre(2, k, true) + (p ? p[2 * H + k] * cprev : 0.0f)));
            const float g = std::tanh(clipped(pre(3, k, true)));
            const float cnew = f * cprev + i * g;
            const float o = sigmoid(clipped(pre(1, k, true) + (p ? p[H + k] * cnew : 0.0f)));
            cn[k] = cnew;
            rh[static_cast<std::size_t>(k)] = o * std::tanh(cnew);
          }
          std::copy_n(rh.data(), H, hn);
        }
        if (Y) {
          float* y = Y->mfp() + (layout ? ((n * T + t) * D + d) * H : ((t * D + d) * N + n) * H);
          std::copy_n(hn, H, y);
        }
      }
    }
    for (std::int64_t n = 0; n < N; ++n) {
      if (Yh) std::copy_n(h.data() + n * H, H, Yh->mfp() + sidx(d, n));
      if (Yc) std::copy_n(cst.data() + n * H, H, Yc->mfp() + sidx(d, n));
    }
  }
}

}  // namespace

void op_rnn(OpCtx& c) { recurrent(c, Cell::Rnn); }
void op_gru(OpCtx& c) { recurrent(c, Cell::Gru); }
void op_lstm(OpCtx& c) { recurrent(c, Cell::Lstm); }

}  // namespace qcast::nn::detail
