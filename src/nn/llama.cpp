// LLaMA forward pass (llama2.c semantics), checkpoint loaders, tokenizer, perplexity and sampling.
#include "qcast/kernels/blas.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/logits.hpp"
#include "qcast/nn/evaluate.hpp"
#include "nn/llama_load.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/gguf.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/graph.hpp"
#include "qcast/nn/observer.hpp"
#include "qcast/quantize.hpp"
#include "qcast/sniff.hpp"

namespace qcast::nn {

namespace fs = std::filesystem;

namespace {

void blas1() {
  static std::once_flag once;
  std::call_once(once, [] { blas::set_num_threads(1); });
}

void rmsnorm(float* o, const float* x, const float* w, int n, float eps) {
  float ss = 0.0f;
  for (int j = 0; j < n; ++j) ss += x[j] * x[j];
  ss /= static_cast<float>(n);
  ss += eps;
  ss = 1.0f / std::sqrt(ss);
  for (int j = 0; j < n; ++j) o[j] = w[j] * (ss * x[j]);
}

// The low-bit path (Llama::use_lowbit_kernels): the input rows in 8-bit blocks, the product on the packed
// weight. False when the layer has no packed weight or the model runs fp32.
bool lowbit_product(const Linear& L, const float* in, int T, float* y, int threads) {
  if (threads <= 0 || !L.packed) return false;
  thread_local kern::Q8Activations xq;  // scratch, reused across calls on this thread
  kern::quantize_q8_0(in, T, L.in, xq);
  kern::lowbit_gemm(*L.packed, xq, y, threads);
  return true;
}

void linear(const Linear& L, const float* x, float* y, std::vector<float>& qbuf, int lowbit_threads) {
  const float* in = x;
  if (L.act) {
    qbuf.resize(static_cast<std::size_t>(L.in));
    L.act->apply(x, qbuf.data(), {1, L.in}, 1, 1, L.name);
    in = qbuf.data();
  }
  if (lowbit_product(L, in, 1, y, lowbit_threads)) return;
  blas::sgemv(CblasRowMajor, CblasNoTrans, L.out, L.in, 1.0f, L.w.data(), L.in, in, 1, 0.0f, y, 1);
}

}  // namespace

void detail::check_config(const LlamaConfig& c, const std::string& what) {
  auto bad = [&](const std::string& m) { throw Error(what + ": bad model config: " + m); };
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.vocab_size <= 0 || c.seq_len <= 0)
    bad("dimensions must be positive (dim " + std::to_string(c.dim) + ", hidden " + std::to_string(c.hidden_dim) + ", layers " +
        std::to_string(c.n_layers) + ", heads " + std::to_string(c.n_heads) + ", kv heads " + std::to_string(c.n_kv_heads) +
        ", vocab " + std::to_string(c.vocab_size) + ", seq_len " + std::to_string(c.seq_len) + ")");
  if (c.dim % c.n_heads != 0) bad("dim is not a multiple of n_heads");
  if (c.head_size() % 2 != 0) bad("head size must be even for RoPE");
  if (c.n_heads % c.n_kv_heads != 0) bad("n_heads is not a multiple of n_kv_heads");
  if (c.dim > (1 << 16) || c.hidden_dim > (1 << 18) || c.n_layers > 1024 || c.vocab_size > (1 << 22) || c.seq_len > (1 << 20))
    bad("dimensions are implausibly large");
}

namespace {

Linear make_linear(std::string name, int out, int in) {
  Linear L;
  L.name = std::move(name);
  L.out = out;
  L.in = in;
  return L;
}

}  // namespace

Llama::State Llama::new_state() const {
  State s;
  const auto& c = cfg;
  s.x.resize(c.dim); s.xb.resize(c.dim); s.xb2.resize(c.dim);
  s.hb.resize(c.hidden_dim); s.hb2.resize(c.hidden_dim);
  s.q.resize(c.dim); s.k.resize(c.kv_dim()); s.v.resize(c.kv_dim());
  s.att.resize(static_cast<std::size_t>(c.n_heads) * c.seq_len);
  s.logits.resize(c.vocab_size);
  s.key_cache.resize(static_cast<std::size_t>(c.n_layers) * c.seq_len * c.kv_dim());
  s.value_cache.resize(s.key_cache.size());
  return s;
}

const float* Llama::forward(State& s, int token, int pos) const {
  const auto& c = cfg;
  if (token < 0 || token >= c.vocab_size) throw Error("token id " + std::to_string(token) + " out of range");
  if (pos < 0 || pos >= c.seq_len) throw Error("position " + std::to_string(pos) + " beyond seq_len " + std::to_string(c.seq_len));
  blas1();
  const int dim = c.dim, kv_dim = c.kv_dim(), hs = c.head_size(), kv_mul = c.n_heads / c.n_kv_heads;
  std::memcpy(s.x.data(), tok_emb.data() + static_cast<std::size_t>(token) * dim, dim * sizeof(float));
  for (int l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = layers[l];
    rmsnorm(s.xb.data(), s.x.data(), L.rms_att.data(), dim, c.norm_eps);
    const std::size_t loff = static_cast<std::size_t>(l) * c.seq_len * kv_dim;
    float* kc = s.key_cache.data() + loff + static_cast<std::size_t>(pos) * kv_dim;
    float* vc = s.value_cache.data() + loff + static_cast<std::size_t>(pos) * kv_dim;
    linear(L.wq, s.xb.data(), s.q.data(), s.qbuf, lowbit_threads);
    linear(L.wk, s.xb.data(), kc, s.qbuf, lowbit_threads);
    linear(L.wv, s.xb.data(), vc, s.qbuf, lowbit_threads);
    // RoPE.
    for (int i = 0; i < dim; i += 2) {
      const int hd = i % hs;
      int a = i, b = i + 1, fi = hd;
      if (c.rope_half) {  // pair (j, j + hs/2) inside the head, frequency index 2j
        const int head = i / hs, j = hd / 2;
        a = head * hs + j;
        b = a + hs / 2;
        fi = 2 * j;
      }
      const float freq = 1.0f / std::pow(c.rope_theta, static_cast<float>(fi) / static_cast<float>(hs));
      const float val = static_cast<float>(pos) * freq;
      const float fcr = std::cos(val), fci = std::sin(val);
      const int rotn = i < kv_dim ? 2 : 1;
      for (int r = 0; r < rotn; ++r) {
        float* vec = r == 0 ? s.q.data() : kc;
        const float v0 = vec[a], v1 = vec[b];
        vec[a] = v0 * fcr - v1 * fci;
        vec[b] = v0 * fci + v1 * fcr;
      }
    }
    if (kv) {
      QuantOptions o;
      o.axis = 1;
      fake_quant(*kv, kc, kc, {1, kv_dim}, o);
      fake_quant(*kv, vc, vc, {1, kv_dim}, o);
    }
    // Attention.
    const float inv = 1.0f / std::sqrt(static_cast<float>(hs));
    // Scores and the weighted values as BLAS products over the cache (strided by kv_dim): vectorized, where
    // the scalar loops ran a quarter of a low-bit token's time at 128 positions.
    for (int h = 0; h < c.n_heads; ++h) {
      const float* q = s.q.data() + h * hs;
      float* att = s.att.data() + static_cast<std::size_t>(h) * c.seq_len;
      const float* kh = s.key_cache.data() + loff + (h / kv_mul) * hs;
      const float* vh = s.value_cache.data() + loff + (h / kv_mul) * hs;
      blas::sgemv(CblasRowMajor, CblasNoTrans, pos + 1, hs, inv, kh, kv_dim, q, 1, 0.0f, att, 1);
      float mx = att[0];
      for (int t = 1; t <= pos; ++t) mx = std::max(mx, att[t]);
      float sum = 0.0f;
      for (int t = 0; t <= pos; ++t) { att[t] = std::exp(att[t] - mx); sum += att[t]; }
      for (int t = 0; t <= pos; ++t) att[t] /= sum;
      blas::sgemv(CblasRowMajor, CblasTrans, pos + 1, hs, 1.0f, vh, kv_dim, att, 1, 0.0f, s.xb.data() + h * hs, 1);
    }
    linear(L.wo, s.xb.data(), s.xb2.data(), s.qbuf, lowbit_threads);
    for (int i = 0; i < dim; ++i) s.x[i] += s.xb2[i];
    rmsnorm(s.xb.data(), s.x.data(), L.rms_ffn.data(), dim, c.norm_eps);
    linear(L.w1, s.xb.data(), s.hb.data(), s.qbuf, lowbit_threads);
    linear(L.w3, s.xb.data(), s.hb2.data(), s.qbuf, lowbit_threads);
    for (int i = 0; i < c.hidden_dim; ++i) {
      float v = s.hb[i];
      v *= 1.0f / (1.0f + std::exp(-v));
      s.hb[i] = v * s.hb2[i];
    }
    linear(L.w2, s.hb.data(), s.xb.data(), s.qbuf, lowbit_threads);
    for (int i = 0; i < dim; ++i) s.x[i] += s.xb[i];
  }
  rmsnorm(s.x.data(), s.x.data(), rms_final.data(), dim, c.norm_eps);
  linear(cls, s.x.data(), s.logits.data(), s.qbuf, lowbit_threads);
  return s.logits.data();
}

namespace {
// Y[T, out] = X[T, in] * W^T, with the input rows fake-quantized when the layer has an activation format.
void linear_rows(const Linear& L, const float* x, int T, float* y, std::vector<float>& qbuf, int lowbit_threads,
                 const LinearObserver* obs = nullptr) {
  const float* in = x;
  if (L.act) {
    qbuf.resize(static_cast<std::size_t>(T) * L.in);
    L.act->apply(x, qbuf.data(), {T, L.in}, 1, 1, L.name);
    in = qbuf.data();
  }
  if (obs) (*obs)(L, in, T);
  if (lowbit_product(L, in, T, y, lowbit_threads)) return;
  blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L.out, L.in, 1.0f, in, L.in, L.w.data(), L.in, 0.0f, y, L.out);
}
}  // namespace

namespace {
std::vector<float> forward_seq_impl(const Llama& m, const std::vector<int>& tokens, const LinearObserver* obs) {
  const auto& c = m.cfg;
  const int T = static_cast<int>(tokens.size());
  if (T == 0) return {};
  if (T > c.seq_len) throw Error("sequence of " + std::to_string(T) + " tokens exceeds seq_len " + std::to_string(c.seq_len));
  blas1();
  const int dim = c.dim, kv_dim = c.kv_dim(), hs = c.head_size(), kv_mul = c.n_heads / c.n_kv_heads, H = c.hidden_dim;
  const std::size_t Ts = static_cast<std::size_t>(T);
  std::vector<float> x(Ts * dim), xb(Ts * dim), xb2(Ts * dim), q(Ts * dim), k(Ts * kv_dim), v(Ts * kv_dim), hb(Ts * H),
      hb2(Ts * H), att(Ts * Ts), qbuf;
  for (int t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) throw Error("token id " + std::to_string(tokens[t]) + " out of range");
    std::memcpy(&x[t * dim], m.tok_emb.data() + static_cast<std::size_t>(tokens[t]) * dim, dim * sizeof(float));
  }
  // RoPE tables per (pos, pair).
  std::vector<float> cosv(Ts * (dim / 2)), sinv(Ts * (dim / 2));
  std::vector<int> pa(dim / 2), pb(dim / 2);
  for (int i = 0; i < dim; i += 2) {
    const int hd = i % hs;
    int a = i, b = i + 1, fi = hd;
    if (c.rope_half) {
      const int head = i / hs, j = hd / 2;
      a = head * hs + j;
      b = a + hs / 2;
      fi = 2 * j;
    }
    pa[i / 2] = a;
    pb[i / 2] = b;
    const float freq = 1.0f / std::pow(c.rope_theta, static_cast<float>(fi) / static_cast<float>(hs));
    for (int t = 0; t < T; ++t) {
      const float val = static_cast<float>(t) * freq;
      cosv[t * (dim / 2) + i / 2] = std::cos(val);
      sinv[t * (dim / 2) + i / 2] = std::sin(val);
    }
  }
  const float inv = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& L = m.layers[l];
    for (int t = 0; t < T; ++t) rmsnorm(&xb[t * dim], &x[t * dim], L.rms_att.data(), dim, c.norm_eps);
    linear_rows(L.wq, xb.data(), T, q.data(), qbuf, m.lowbit_threads, obs);
    linear_rows(L.wk, xb.data(), T, k.data(), qbuf, m.lowbit_threads, obs);
    linear_rows(L.wv, xb.data(), T, v.data(), qbuf, m.lowbit_threads, obs);
    for (int t = 0; t < T; ++t)
      for (int p = 0; p < dim / 2; ++p) {
        const float fcr = cosv[t * (dim / 2) + p], fci = sinv[t * (dim / 2) + p];
        const int rotn = 2 * p < kv_dim ? 2 : 1;
        for (int r = 0; r < rotn; ++r) {
          float* vec = r == 0 ? &q[t * dim] : &k[t * kv_dim];
          const float v0 = vec[pa[p]], v1 = vec[pb[p]];
          vec[pa[p]] = v0 * fcr - v1 * fci;
          vec[pb[p]] = v0 * fci + v1 * fcr;
        }
      }
    if (m.kv) {
      QuantOptions o;
      o.axis = 1;
      fake_quant(*m.kv, k.data(), k.data(), {T, kv_dim}, o);
      fake_quant(*m.kv, v.data(), v.data(), {T, kv_dim}, o);
    }
    for (int h = 0; h < c.n_heads; ++h) {
      const int kh = h / kv_mul;
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, inv, &q[h * hs], dim, &k[kh * hs], kv_dim, 0.0f, att.data(), T);
      for (int t = 0; t < T; ++t) {
        float* row = &att[static_cast<std::size_t>(t) * T];
        float mx = row[0];
        for (int u = 1; u <= t; ++u) mx = std::max(mx, row[u]);
        float sum = 0.0f;
        for (int u = 0; u <= t; ++u) { row[u] = std::exp(row[u] - mx); sum += row[u]; }
        for (int u = 0; u <= t; ++u) row[u] /= sum;
        for (int u = t + 1; u < T; ++u) row[u] = 0.0f;
      }
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, att.data(), T, &v[kh * hs], kv_dim, 0.0f, &xb[h * hs], dim);
    }
    linear_rows(L.wo, xb.data(), T, xb2.data(), qbuf, m.lowbit_threads, obs);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += xb2[i];
    for (int t = 0; t < T; ++t) rmsnorm(&xb[t * dim], &x[t * dim], L.rms_ffn.data(), dim, c.norm_eps);
    linear_rows(L.w1, xb.data(), T, hb.data(), qbuf, m.lowbit_threads, obs);
    linear_rows(L.w3, xb.data(), T, hb2.data(), qbuf, m.lowbit_threads, obs);
    for (std::size_t i = 0; i < hb.size(); ++i) {
      float a = hb[i];
      a *= 1.0f / (1.0f + std::exp(-a));
      hb[i] = a * hb2[i];
    }
    linear_rows(L.w2, hb.data(), T, xb.data(), qbuf, m.lowbit_threads, obs);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += xb[i];
  }
  for (int t = 0; t < T; ++t) rmsnorm(&x[t * dim], &x[t * dim], m.rms_final.data(), dim, c.norm_eps);
  std::vector<float> logits(Ts * c.vocab_size);
  linear_rows(m.cls, x.data(), T, logits.data(), qbuf, m.lowbit_threads, obs);
  return logits;
}
}  // namespace

std::vector<float> Llama::forward_seq(const std::vector<int>& tokens) const { return forward_seq_impl(*this, tokens, nullptr); }

std::vector<float> forward_seq_observed(const Llama& m, const std::vector<int>& tokens, const LinearObserver& obs) {
  return forward_seq_impl(m, tokens, &obs);
}

std::vector<std::string> Llama::layer_names() const {
  std::vector<std::string> r;
  for (const auto& L : layers)
    for (const Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) r.push_back(p->name);
  r.push_back(cls.name);
  return r;
}

std::string Llama::apply_recipe(const Recipe& r, int threads) {
  auto apply = [&](Linear& L) {
    std::string wf, af, obs;
    r.formats_for(L.name, wf, af, obs);
    L.act.reset();
    if (auto f = parse_optional_format(af)) {
      L.act = make_act_quant(*f, obs, L.name);
      if (auto it = r.act_ranges.find(L.name); it != r.act_ranges.end() && L.act->is_static()) L.act->range = it->second;
    }
    auto w = parse_optional_format(wf);
    // Packed blocks describe the weight they were made from: a GGUF's blocks stay valid while the weight
    // stays as loaded; blocks of a format go with it.
    if (w || L.w_format) L.packed.reset();
    if (!w) {
      // Back to the weights as loaded where a format had replaced them; else nothing to copy (a recipe of
      // activation formats only, as quantize applies before it quantizes, copied every weight twice).
      if (L.w_format) L.w = L.w_fp32;
      L.w_format.reset();
      return;
    }
    L.w_format = w;
    if (L.w_fp32.empty()) L.w_fp32 = L.w;
    L.w.resize(L.w_fp32.size());
    QuantOptions o;
    o.axis = 1;
    o.threads = threads;
    fake_quant(*w, L.w_fp32.data(), L.w.data(), {L.out, L.in}, o);
  };
  for (auto& L : layers)
    for (Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) apply(*p);
  apply(cls);
  kv = parse_optional_format(r.kv);
  return unmatched_warning(r, layer_names());
}

std::shared_ptr<const kern::LowbitMatrix> detail::lowbit_blocks(gguf::GgmlType type, std::int64_t rows, std::int64_t cols,
                                                                const std::uint8_t* bytes, std::size_t nbytes) {
  const std::string name = gguf::type_name(type);
  if (!kern::lowbit_fast_for_ggml(name)) return nullptr;  // decided before any unpacking
  return std::make_shared<kern::LowbitMatrix>(kern::lowbit_from_ggml(name, rows, cols, bytes, nbytes));
}

namespace {

// Blocks that decode to exactly L.w, or null: the layer's own (a GGUF's), else the blocks of its weight
// format when that has a ggml layout the kernels take (qcast's int8 / int4@fp16/b32, the ggml rules, the
// k-quants, iq4_nl, mxfp4, nvfp4_ggml).
std::shared_ptr<const kern::LowbitMatrix> exact_blocks(const Linear& L) {
  const Shape shape = {L.out, L.in};
  auto decodes_to_w = [&](const kern::LowbitMatrix& p) {
    std::vector<float> back(L.w.size());
    if (p.rows * p.cols != static_cast<std::int64_t>(back.size())) return false;
    kern::lowbit_decode(p, back.data());
    // Equal values (a fake-quant -0 is a code's +0; a product cannot tell them apart).
    if (back.size() != L.w.size()) return false;
    for (std::size_t i = 0; i < back.size(); ++i)
      if (!(back[i] == L.w[i])) return false;
    return true;
  };
  // A weight changed after packing (GPTQ, a later recipe) must not run on stale blocks.
  if (L.packed) return decodes_to_w(*L.packed) ? L.packed : nullptr;
  if (!L.w_format || L.in % kern::kLowbitBlock != 0 || L.w_fp32.size() != L.w.size()) return nullptr;
  const gguf::GgmlType t = gguf::ggml_type_for(*L.w_format, shape);
  if (!kern::lowbit_fast_for_ggml(gguf::type_name(t))) return nullptr;  // before encoding the whole weight
  QuantOptions o;
  o.axis = 1;
  gguf::TensorData td;
  try {
    td = gguf::make_tensor(L.name, encode(*L.w_format, L.w_fp32.data(), shape, o));
  } catch (const Error&) {
    return nullptr;  // no ggml layout for these codes after all: the layer stays fp32
  }
  if (td.type != t) return nullptr;
  const auto p = detail::lowbit_blocks(td.type, L.out, L.in, td.data.data(), td.data.size());
  return p && decodes_to_w(*p) ? p : nullptr;
}

}  // namespace

int Llama::use_lowbit_kernels(int threads) {
  int n = 0;
  auto pack = [&](Linear& L) {
    L.packed = exact_blocks(L);
    n += L.packed != nullptr;
  };
  for (auto& L : layers)
    for (Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) pack(*p);
  pack(cls);
  lowbit_threads = std::max(1, threads);
  return n;
}

std::int64_t Llama::num_params() const {
  std::int64_t n = static_cast<std::int64_t>(tok_emb.size() + rms_final.size());
  for (const auto& L : layers) {
    n += static_cast<std::int64_t>(L.rms_att.size() + L.rms_ffn.size());
    for (const Linear* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) n += static_cast<std::int64_t>(p->w.size());
  }
  if (!cfg.shared_classifier) n += static_cast<std::int64_t>(cls.w.size());
  return n;
}

// ---------------------------------------------------------------------------------------------
// Loaders

void detail::init_layers(Llama& m) {
  const auto& c = m.cfg;
  m.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    auto& L = m.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    L.wq = make_linear(p + "attention.wq", c.dim, c.dim);
    L.wk = make_linear(p + "attention.wk", c.kv_dim(), c.dim);
    L.wv = make_linear(p + "attention.wv", c.kv_dim(), c.dim);
    L.wo = make_linear(p + "attention.wo", c.dim, c.dim);
    L.w1 = make_linear(p + "feed_forward.w1", c.hidden_dim, c.dim);
    L.w2 = make_linear(p + "feed_forward.w2", c.dim, c.hidden_dim);
    L.w3 = make_linear(p + "feed_forward.w3", c.hidden_dim, c.dim);
  }
  m.cls = make_linear("output", c.vocab_size, c.dim);
}

namespace {

struct Reader {
  const std::uint8_t* p;
  std::size_t left;
  std::string what;
  void read(float* dst, std::size_t n, const std::string& tensor) {
    if (n > left / 4) throw Error(what + ": truncated checkpoint (tensor " + tensor + " needs " + std::to_string(n * 4) + " bytes, " + std::to_string(left) + " left)");
    std::memcpy(dst, p, n * 4);
    p += n * 4;
    left -= n * 4;
  }
  void skip(std::size_t n, const std::string& tensor) {
    if (n > left / 4) throw Error(what + ": truncated checkpoint (" + tensor + ")");
    p += n * 4;
    left -= n * 4;
  }
  std::vector<float> vec(std::size_t n, const std::string& tensor) {
    if (n > left / 4) throw Error(what + ": truncated checkpoint (tensor " + tensor + " needs " + std::to_string(n * 4) + " bytes, " + std::to_string(left) + " left)");
    std::vector<float> v(n);
    read(v.data(), n, tensor);
    return v;
  }
};

}  // namespace

Llama parse_llama2c(const std::uint8_t* data, std::size_t size, const std::string& what) {
  Llama m;
  m.source = what;
  auto i32 = [&](std::size_t off) { std::int32_t v; std::memcpy(&v, data + off, 4); return v; };
  if (size < 28) throw Error(what + ": too small for a llama2.c checkpoint header");
  std::uint32_t magic;
  std::memcpy(&magic, data, 4);
  std::size_t off;
  int vocab;
  if (magic == 0x616b3432u) {
    if (size < 256) throw Error(what + ": truncated v1 header");
    const int version = i32(4);
    if (version != 1) throw Error(what + ": llama2.c checkpoint version " + std::to_string(version) + " is not supported (only fp32 version 1)");
    auto& c = m.cfg;
    c.dim = i32(8); c.hidden_dim = i32(12); c.n_layers = i32(16); c.n_heads = i32(20); c.n_kv_heads = i32(24);
    vocab = i32(28); c.seq_len = i32(32);
    c.shared_classifier = data[36] != 0;
    c.vocab_size = vocab;
    off = 256;
  } else {
    auto& c = m.cfg;
    c.dim = i32(0); c.hidden_dim = i32(4); c.n_layers = i32(8); c.n_heads = i32(12); c.n_kv_heads = i32(16);
    vocab = i32(20); c.seq_len = i32(24);
    if (vocab == INT32_MIN) throw Error(what + ": bad vocab size");
    c.shared_classifier = vocab > 0;
    c.vocab_size = std::abs(vocab);
    off = 28;
  }
  detail::check_config(m.cfg, what);
  const auto& c = m.cfg;
  detail::init_layers(m);
  Reader rd{data + off, size - off, what};
  const std::size_t D = c.dim, Hd = c.hidden_dim, KV = c.kv_dim(), V = c.vocab_size, NL = c.n_layers;
  auto per_layer = [&](auto get, std::size_t n, const std::string& name) {
    for (std::size_t l = 0; l < NL; ++l) {
      std::vector<float>& dst = get(m.layers[l]);
      dst = rd.vec(n, name + "[" + std::to_string(l) + "]");
    }
  };
  auto lin = [&](Linear LlamaLayer::*f) { return [f](LlamaLayer& L) -> std::vector<float>& { return (L.*f).w; }; };
  if (magic == 0x616b3432u) {
    per_layer([](LlamaLayer& L) -> std::vector<float>& { return L.rms_att; }, D, "attention_norm");
    per_layer([](LlamaLayer& L) -> std::vector<float>& { return L.rms_ffn; }, D, "ffn_norm");
    m.rms_final = rd.vec(D, "norm");
    m.tok_emb = rd.vec(V * D, "tok_embeddings");
    per_layer(lin(&LlamaLayer::wq), D * D, "wq");
    per_layer(lin(&LlamaLayer::wk), KV * D, "wk");
    per_layer(lin(&LlamaLayer::wv), KV * D, "wv");
    per_layer(lin(&LlamaLayer::wo), D * D, "wo");
    per_layer(lin(&LlamaLayer::w1), Hd * D, "w1");
    per_layer(lin(&LlamaLayer::w2), D * Hd, "w2");
    per_layer(lin(&LlamaLayer::w3), Hd * D, "w3");
  } else {
    m.tok_emb = rd.vec(V * D, "token_embedding_table");
    per_layer([](LlamaLayer& L) -> std::vector<float>& { return L.rms_att; }, D, "rms_att_weight");
    per_layer(lin(&LlamaLayer::wq), D * D, "wq");
    per_layer(lin(&LlamaLayer::wk), KV * D, "wk");
    per_layer(lin(&LlamaLayer::wv), KV * D, "wv");
    per_layer(lin(&LlamaLayer::wo), D * D, "wo");
    per_layer([](LlamaLayer& L) -> std::vector<float>& { return L.rms_ffn; }, D, "rms_ffn_weight");
    per_layer(lin(&LlamaLayer::w1), Hd * D, "w1");
    per_layer(lin(&LlamaLayer::w2), D * Hd, "w2");
    per_layer(lin(&LlamaLayer::w3), Hd * D, "w3");
    m.rms_final = rd.vec(D, "rms_final_weight");
    rd.skip(static_cast<std::size_t>(c.seq_len) * c.head_size() / 2, "freq_cis_real");
    rd.skip(static_cast<std::size_t>(c.seq_len) * c.head_size() / 2, "freq_cis_imag");
  }
  if (c.shared_classifier) m.cls.w = m.tok_emb;
  else m.cls.w = rd.vec(V * D, "wcls");
  return m;
}

Llama load_llama2c(const std::string& path) {
  MappedFile f(path);
  return parse_llama2c(f.data(), f.size(), path);
}

Llama load_hf_llama(const std::string& path) {
  fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  const fs::path cfgp = dir / "config.json";
  std::ifstream cf(cfgp);
  if (!cf) throw Error(cfgp.string() + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(cf);
  } catch (const std::exception& e) {
    throw Error(cfgp.string() + ": " + e.what());
  }
  Llama m;
  m.source = dir.string();
  auto& c = m.cfg;
  try {
    c.dim = j.at("hidden_size").get<int>();
    c.hidden_dim = j.at("intermediate_size").get<int>();
    c.n_layers = j.at("num_hidden_layers").get<int>();
    c.n_heads = j.at("num_attention_heads").get<int>();
    c.n_kv_heads = j.value("num_key_value_heads", c.n_heads);
    c.vocab_size = j.at("vocab_size").get<int>();
    c.seq_len = j.value("max_position_embeddings", 2048);
    c.norm_eps = j.value("rms_norm_eps", 1e-6f);
    c.rope_theta = j.value("rope_theta", 10000.0f);
    c.shared_classifier = j.value("tie_word_embeddings", false);
    if (j.contains("head_dim") && !j["head_dim"].is_null() && j["head_dim"].get<int>() * c.n_heads != c.dim)
      throw Error(cfgp.string() + ": head_dim * num_attention_heads != hidden_size is not supported");
  } catch (const nlohmann::json::exception& e) {
    throw Error(cfgp.string() + ": " + e.what());
  }
  c.rope_half = true;
  detail::check_config(c, cfgp.string());
  std::vector<SafeTensorsFile> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") files.push_back(read_safetensors(e.path().string()));
  if (files.empty()) throw Error(dir.string() + ": no *.safetensors files");
  auto get = [&](const std::string& name, Shape want) -> std::vector<float> {
    for (auto& f : files)
      if (const Tensor* t = f.find(name)) {
        if (t->shape != want) throw Error(dir.string() + ": tensor " + name + " has shape " + shape_str(t->shape) + ", expected " + shape_str(want));
        Tensor f32 = t->to_f32();
        return std::vector<float>(f32.f32(), f32.f32() + f32.numel());
      }
    throw Error(dir.string() + ": tensor " + name + " is missing");
  };
  auto has = [&](const std::string& name) { for (auto& f : files) if (f.find(name)) return true; return false; };
  detail::init_layers(m);
  const std::int64_t D = c.dim, Hd = c.hidden_dim, KV = c.kv_dim(), V = c.vocab_size;
  m.tok_emb = get("model.embed_tokens.weight", {V, D});
  for (int l = 0; l < c.n_layers; ++l) {
    auto& L = m.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    L.rms_att = get(p + "input_layernorm.weight", {D});
    L.rms_ffn = get(p + "post_attention_layernorm.weight", {D});
    L.wq.w = get(p + "self_attn.q_proj.weight", {D, D});
    L.wk.w = get(p + "self_attn.k_proj.weight", {KV, D});
    L.wv.w = get(p + "self_attn.v_proj.weight", {KV, D});
    L.wo.w = get(p + "self_attn.o_proj.weight", {D, D});
    L.w1.w = get(p + "mlp.gate_proj.weight", {Hd, D});
    L.w2.w = get(p + "mlp.down_proj.weight", {D, Hd});
    L.w3.w = get(p + "mlp.up_proj.weight", {Hd, D});
  }
  m.rms_final = get("model.norm.weight", {D});
  if (!c.shared_classifier && has("lm_head.weight")) m.cls.w = get("lm_head.weight", {V, D});
  else { c.shared_classifier = true; m.cls.w = m.tok_emb; }
  return m;
}

bool looks_like_llama(const std::string& path) {
  const FileKind k = sniff_model_file(path);
  return k == FileKind::Llama2c || k == FileKind::HfDir || k == FileKind::Gguf;
}

Llama load_llama(const std::string& path) {
  switch (sniff_model_file(path)) {
    case FileKind::HfDir: return load_hf_llama(path);
    case FileKind::Gguf: return load_gguf_llama(path);
    case FileKind::Llama2c: return load_llama2c(path);
    case FileKind::Missing: throw Error(path + ": no such file or directory");
    default: break;
  }
  refuse_file(path, sniff_model_file(path), "language-model loading", "llama2.c checkpoints, HF LLaMA directories and GGUF files");
  return {};
}

Tokenizer load_tokenizer_for(const std::string& model, const std::string& given, int vocab_size) {
  if (!given.empty()) {
    if (sniff_model_file(given) == FileKind::Gguf) return Tokenizer::from_gguf(given, vocab_size);
    return Tokenizer::load(given, vocab_size);
  }
  if (sniff_model_file(model) == FileKind::Gguf) return Tokenizer::from_gguf(model, vocab_size);
  const fs::path dir = fs::is_directory(model) ? fs::path(model) : fs::path(model).parent_path();
  for (const std::string& name : {"tok" + std::to_string(vocab_size) + ".bin", std::string("tokenizer.bin")})
    if (fs::exists(dir / name)) return Tokenizer::load((dir / name).string(), vocab_size);
  throw Error(model + ": no tokenizer: pass --tokenizer FILE (llama2.c tok*.bin, or a GGUF file with tokenizer.ggml.* metadata)");
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

Tokenizer Tokenizer::parse(const std::uint8_t* data, std::size_t size, int vocab_size, const std::string& what) {
  Tokenizer t;
  std::size_t off = 0;
  auto need = [&](std::size_t n) {
    if (size - off < n) throw Error(what + ": truncated tokenizer (" + std::to_string(t.vocab.size()) + " of " + std::to_string(vocab_size) + " tokens read)");
  };
  if (vocab_size < 3) throw Error(what + ": vocabulary of " + std::to_string(vocab_size) + " tokens is too small (needs <unk>, BOS, EOS)");
  need(4);
  std::int32_t mtl;
  std::memcpy(&mtl, data, 4);
  off = 4;
  if (mtl <= 0 || mtl > 1 << 16) throw Error(what + ": bad max_token_length " + std::to_string(mtl));
  t.max_token_length = mtl;
  for (int k = 0; k < vocab_size; ++k) {
    need(8);
    float score;
    std::int32_t len;
    std::memcpy(&score, data + off, 4);
    std::memcpy(&len, data + off + 4, 4);
    off += 8;
    if (len < 0 || len > 1 << 16) throw Error(what + ": bad token length " + std::to_string(len) + " for token " + std::to_string(k));
    need(static_cast<std::size_t>(len));
    t.vocab.emplace_back(reinterpret_cast<const char*>(data + off), static_cast<std::size_t>(len));
    t.scores.push_back(score);
    off += static_cast<std::size_t>(len);
  }
  // llama2.c compares pieces as C strings; the lowest id wins among equal pieces.
  for (int k = 0; k < vocab_size; ++k) t.index_.emplace(std::string(t.vocab[k].c_str()), k);
  return t;
}

Tokenizer Tokenizer::load(const std::string& path, int vocab_size) {
  MappedFile f(path);
  return parse(f.data(), f.size(), vocab_size, path);
}

int Tokenizer::lookup(const std::string& s) const {
  auto it = index_.find(s);
  return it == index_.end() ? -1 : it->second;
}

std::vector<int> Tokenizer::encode(const std::string& text, bool bos, bool eos) const {
  std::vector<int> tokens;
  if (bos) tokens.push_back(bos_id);
  if (add_space_prefix && !text.empty() && text[0] != '\0') {
    const int dummy = lookup(" ");
    if (dummy >= 0) tokens.push_back(dummy);
  }
  std::string buf;
  const std::size_t n = std::strlen(text.c_str());  // llama2.c stops at a NUL byte
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char ch = static_cast<unsigned char>(text[i]);
    if ((ch & 0xC0) != 0x80) buf.clear();
    buf.push_back(static_cast<char>(ch));
    const unsigned char next = i + 1 < n ? static_cast<unsigned char>(text[i + 1]) : 0;
    if ((next & 0xC0) == 0x80 && buf.size() < 4) continue;
    const int id = lookup(buf);
    if (id >= 0) tokens.push_back(id);
    else
      for (unsigned char b : buf) {
        // llama2.c: byte b is token b + 3; GGUF vocabularies name their byte tokens (<0xHH>, type BYTE).
        const int bt = byte_ids.empty() ? static_cast<int>(b) + 3 : byte_ids[b];
        if (bt < 0 || static_cast<std::size_t>(bt) >= vocab.size())
          throw Error("tokenizer has no byte-fallback token for byte " + std::to_string(b) + " (vocabulary of " + std::to_string(vocab.size()) + ")");
        tokens.push_back(bt);
      }
    buf.clear();
  }
  while (true) {
    float best = -1e10f;
    int best_id = -1, best_idx = -1;
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i) {
      const std::string merged = std::string(vocab[tokens[i]].c_str()) + vocab[tokens[i + 1]].c_str();
      const int id = lookup(merged);
      if (id != -1 && scores[id] > best) { best = scores[id]; best_id = id; best_idx = static_cast<int>(i); }
    }
    if (best_idx == -1) break;
    tokens[best_idx] = best_id;
    tokens.erase(tokens.begin() + best_idx + 1);
  }
  if (eos) tokens.push_back(eos_id);
  return tokens;
}

std::string Tokenizer::decode(int prev, int token) const {
  if (token < 0 || token >= static_cast<int>(vocab.size())) return "";
  const char* piece = vocab[token].c_str();
  if (prev == bos_id && piece[0] == ' ') ++piece;
  unsigned int byte;
  if (std::sscanf(piece, "<0x%02X>", &byte) == 1) return std::string(1, static_cast<char>(byte));
  return piece;
}

// ---------------------------------------------------------------------------------------------
// Perplexity and generation

double PerplexityResult::perplexity() const { return std::exp(mean_nll()); }

PerplexityResult perplexity(const Llama& m, const Tokenizer& tok, const std::vector<std::string>& stories, int threads,
                            const std::function<void(const PerplexityResult&)>& on_story) {
  return perplexity(m, tok, stories, threads, nullptr, nullptr, on_story);
}

PerplexityResult perplexity(const Llama& m, const Tokenizer& tok, const std::vector<std::string>& stories, int threads,
                            std::vector<double>* story_nll, std::vector<std::int64_t>* story_tokens,
                            const std::function<void(const PerplexityResult&)>& on_story) {
  std::vector<double> nll(stories.size(), 0.0);
  PerplexityResult so_far;
  std::vector<std::int64_t> cnt(stories.size(), 0);
  std::mutex mu;
  auto story = [&](std::int64_t item) {
    {
      const auto k = static_cast<std::size_t>(item);
      auto toks = tok.encode(stories[k], true, false);
      if (static_cast<int>(toks.size()) > m.cfg.seq_len) toks.resize(m.cfg.seq_len);
      double sum = 0;
      std::vector<int> ctx(toks.begin(), toks.end() - (toks.empty() ? 0 : 1));
      const std::vector<float> all = m.forward_seq(ctx);
      for (std::size_t t = 0; t + 1 < toks.size(); ++t) {
        sum += nn::nll(all.data() + t * m.cfg.vocab_size, m.cfg.vocab_size, toks[t + 1]);
      }
      nll[k] = sum;
      cnt[k] = toks.empty() ? 0 : static_cast<std::int64_t>(toks.size()) - 1;
      if (on_story) {  // a running figure for progress only: the result below is summed in story order
        std::lock_guard<std::mutex> l(mu);
        so_far.nll += nll[k];
        so_far.tokens += cnt[k];
        ++so_far.samples;
        on_story(so_far);
      }
    }
  };
  kern::parallel_items(static_cast<std::int64_t>(stories.size()), threads, story);
  PerplexityResult r;
  for (std::size_t k = 0; k < stories.size(); ++k) { r.nll += nll[k]; r.tokens += cnt[k]; }  // fixed order: thread-count independent
  r.samples = static_cast<std::int64_t>(stories.size());
  if (story_nll) *story_nll = std::move(nll);
  if (story_tokens) *story_tokens = std::move(cnt);
  return r;
}

std::string generate(const Llama& m, const Tokenizer& tok, const std::string& prompt, int steps, float temperature,
                     std::uint64_t seed, std::vector<int>* out_tokens) {
  auto prompt_tokens = tok.encode(prompt, true, false);
  if (steps <= 0 || steps > m.cfg.seq_len) steps = m.cfg.seq_len;
  std::uint64_t rng = seed ? seed : 1;
  auto random_u32 = [&]() {
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return static_cast<std::uint32_t>((rng * 0x2545F4914F6CDD1Dull) >> 32);
  };
  Llama::State s = m.new_state();
  std::string out;
  int token = prompt_tokens[0];
  std::vector<float> probs(m.cfg.vocab_size);
  for (int pos = 0; pos < steps; ++pos) {
    const float* lg = m.forward(s, token, pos);
    int next;
    if (pos < static_cast<int>(prompt_tokens.size()) - 1) {
      next = prompt_tokens[pos + 1];
    } else if (temperature == 0.0f) {
      next = static_cast<int>(std::max_element(lg, lg + m.cfg.vocab_size) - lg);
    } else {
      float mx = lg[0];
      for (int v = 0; v < m.cfg.vocab_size; ++v) { probs[v] = lg[v] / temperature; mx = std::max(mx, probs[v]); }
      float sum = 0;
      for (int v = 0; v < m.cfg.vocab_size; ++v) { probs[v] = std::exp(probs[v] - mx); sum += probs[v]; }
      const float coin = static_cast<float>(random_u32() >> 8) / 16777216.0f;
      float cdf = 0;
      next = m.cfg.vocab_size - 1;
      for (int v = 0; v < m.cfg.vocab_size; ++v) { cdf += probs[v] / sum; if (coin < cdf) { next = v; break; } }
    }
    if (next == tok.bos_id) break;  // BOS delimits sequences
    out += tok.decode(token, next);
    if (out_tokens) out_tokens->push_back(next);
    token = next;
  }
  return out;
}

}  // namespace qcast::nn
