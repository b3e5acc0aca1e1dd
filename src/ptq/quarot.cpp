// QuaRot-style norm folding and residual-stream rotation of LLaMA models. See include/qcast/ptq/quarot.hpp.
#include "qcast/kernels/blas.hpp"
#include "qcast/ptq/quarot.hpp"


#include <cmath>
#include <nlohmann/json.hpp>

#include "qcast/kernels/reference.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/rotate.hpp"

namespace qcast::ptq {

namespace {

bool is_pow2(int n) { return n > 0 && (n & (n - 1)) == 0; }

bool is_prime(int p) {
  if (p < 2) return false;
  for (int d = 2; d * d <= p; ++d)
    if (p % d == 0) return false;
  return true;
}

/// Paley construction I: for a prime p = 3 mod 4, H = I + S with S = [[0, 1^T], [-1, J]] and J the
/// Jacobsthal matrix J_ij = chi(j - i) (chi = quadratic character mod p). J is antisymmetric for
/// p = 3 mod 4, so S is skew with S S^T = p I and H H^T = (p + 1) I. Entries +-1.
std::vector<double> paley(int p) {
  std::vector<int> chi(static_cast<std::size_t>(p), -1);
  chi[0] = 0;
  for (int a = 1; a < p; ++a) chi[static_cast<std::size_t>((static_cast<long long>(a) * a) % p)] = 1;
  const int n = p + 1;
  std::vector<double> H(static_cast<std::size_t>(n) * n);
  auto at = [&](int i, int j) -> double& { return H[static_cast<std::size_t>(i) * n + j]; };
  for (int j = 1; j < n; ++j) { at(0, j) = 1; at(j, 0) = -1; }
  for (int i = 1; i < n; ++i)
    for (int j = 1; j < n; ++j) at(i, j) = chi[static_cast<std::size_t>(((j - i) % p + p) % p)];
  for (int i = 0; i < n; ++i) at(i, i) += 1;
  return H;
}

/// Dense +-1 Hadamard of order n (Sylvester for 2^k, Paley (p + 1) x Sylvester 2^k), or empty.
std::vector<double> hadamard(int n, std::string& kind) {
  if (is_pow2(n)) {
    kind = "hadamard";
    std::vector<double> H(static_cast<std::size_t>(n) * n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) H[static_cast<std::size_t>(i) * n + j] = (__builtin_popcount(static_cast<unsigned>(i & j)) & 1) ? -1.0 : 1.0;
    return H;
  }
  for (int s = 1; s <= n && n % s == 0; s *= 2) {  // n = s (p + 1), s a power of two
    const int p = n / s - 1;
    if (p % 4 != 3 || !is_prime(p)) continue;
    kind = "paley-hadamard";
    const std::vector<double> P = paley(p);
    const int m = p + 1;
    std::vector<double> H(static_cast<std::size_t>(n) * n);
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b)
        for (int i = 0; i < s; ++i)
          for (int j = 0; j < s; ++j)
            H[static_cast<std::size_t>(a * s + i) * n + (b * s + j)] =
                P[static_cast<std::size_t>(a) * m + b] * ((__builtin_popcount(static_cast<unsigned>(i & j)) & 1) ? -1.0 : 1.0);
    return H;
  }
  return {};
}

/// A Haar-random orthogonal matrix: Gram-Schmidt (applied twice, for orthogonality to rounding) on the
/// rows of a Gaussian matrix drawn from the counter-based generator (portable across standard libraries).
std::vector<double> random_orthogonal(int n, std::uint64_t seed) {
  std::vector<double> G(static_cast<std::size_t>(n) * n);
  for (std::size_t k = 0; k < G.size(); ++k) {
    const double u1 = (ref::counter_rand(seed, 2 * k) + 0.5) / 4294967296.0;
    const double u2 = (ref::counter_rand(seed, 2 * k + 1) + 0.5) / 4294967296.0;
    G[k] = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);  // Box-Muller
  }
  for (int i = 0; i < n; ++i) {
    double* r = &G[static_cast<std::size_t>(i) * n];
    for (int pass = 0; pass < 2; ++pass)
      for (int k = 0; k < i; ++k) {
        const double* q = &G[static_cast<std::size_t>(k) * n];
        double d = 0;
        for (int j = 0; j < n; ++j) d += r[j] * q[j];
        for (int j = 0; j < n; ++j) r[j] -= d * q[j];
      }
    double nr = 0;
    for (int j = 0; j < n; ++j) nr += r[j] * r[j];
    nr = std::sqrt(nr);
    if (!(nr > 1e-8)) throw Error("residual rotation: degenerate random matrix (n " + std::to_string(n) + ")");
    for (int j = 0; j < n; ++j) r[j] /= nr;
  }
  return G;
}

/// The fp32 weights of a linear layer (w_fp32 when a recipe was applied, else w).
std::vector<float>& source(nn::Linear& L) { return L.w_fp32.empty() ? L.w : L.w_fp32; }

/// Makes `W` the layer's fp32 weight (and its current weight).
void put(nn::Linear& L, std::vector<float> W) {
  L.w = std::move(W);
  L.w_fp32.clear();
}

/// W [rows, n] <- W Q.
void right_mul(std::vector<float>& W, int n, const std::vector<float>& Q) {
  const int rows = static_cast<int>(W.size() / static_cast<std::size_t>(n));
  std::vector<float> out(W.size());
  blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, n, 1.0f, W.data(), n, Q.data(), n, 0.0f, out.data(), n);
  W.swap(out);
}

/// W [n, cols] <- Q^T W.
void left_mul_t(std::vector<float>& W, int n, const std::vector<float>& Q) {
  const int cols = static_cast<int>(W.size() / static_cast<std::size_t>(n));
  std::vector<float> out(W.size());
  blas::sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, cols, n, 1.0f, Q.data(), n, W.data(), cols, 0.0f, out.data(), cols);
  W.swap(out);
}

}  // namespace

std::string QuarotInfo::to_json() const {
  return nlohmann::json{{"residual", residual}, {"head_hadamard", head_hadamard}, {"seed", seed}}.dump();
}

std::vector<float> residual_rotation(int n, std::uint64_t seed, std::string* kind) {
  if (n <= 0) throw Error("residual rotation: dimension must be positive, got " + std::to_string(n));
  std::string k;
  std::vector<double> M = hadamard(n, k);
  if (!M.empty()) {
    // Randomized Hadamard diag(d) H / sqrt(n): rows scaled by the seeded signs.
    const double norm = 1.0 / std::sqrt(static_cast<double>(n));
    for (int i = 0; i < n; ++i) {
      const double d = (ref::counter_rand(seed, static_cast<std::uint64_t>(i)) & 1u) ? -norm : norm;
      for (int j = 0; j < n; ++j) M[static_cast<std::size_t>(i) * n + j] *= d;
    }
  } else {
    k = "qr";
    M = random_orthogonal(n, seed);
  }
  if (kind) *kind = k;
  return std::vector<float>(M.begin(), M.end());
}

void fold_norms(nn::Llama& m) {
  const int dim = m.cfg.dim;
  auto fold = [dim](nn::Linear& L, std::vector<float>& g) {
    std::vector<float> W = source(L);
    if (L.in != dim || g.size() != static_cast<std::size_t>(dim) || W.size() != static_cast<std::size_t>(L.out) * dim)
      throw Error("norm folding: layer " + L.name + " does not read the " + std::to_string(dim) + "-wide residual stream");
    for (int o = 0; o < L.out; ++o)
      for (int j = 0; j < dim; ++j) W[static_cast<std::size_t>(o) * dim + j] *= g[static_cast<std::size_t>(j)];
    put(L, std::move(W));
  };
  for (auto& L : m.layers) {
    for (nn::Linear* p : {&L.wq, &L.wk, &L.wv}) fold(*p, L.rms_att);
    for (nn::Linear* p : {&L.w1, &L.w3}) fold(*p, L.rms_ffn);
    std::fill(L.rms_att.begin(), L.rms_att.end(), 1.0f);
    std::fill(L.rms_ffn.begin(), L.rms_ffn.end(), 1.0f);
    for (nn::Linear* p : {&L.wo, &L.w2}) put(*p, source(*p));  // no folding; keep them consistent (fp32)
  }
  fold(m.cls, m.rms_final);
  std::fill(m.rms_final.begin(), m.rms_final.end(), 1.0f);
  // The classifier now holds W diag(g), no longer the embedding table.
  m.cfg.shared_classifier = false;
}

QuarotInfo quarot(nn::Llama& m, const QuarotOptions& o) {
  QuarotInfo info;
  info.seed = o.seed;
  if (!o.fold_norms) {
    if (o.rotate || o.value_heads) throw Error("quarot: the residual / head rotations need norm folding first");
    return info;
  }
  fold_norms(m);
  const auto& c = m.cfg;
  if (o.rotate) {
    const int n = c.dim;
    const std::vector<float> Q = residual_rotation(n, o.seed, &info.residual);
    right_mul(m.tok_emb, n, Q);  // E <- E Q: the stream starts rotated
    for (auto& L : m.layers) {
      for (nn::Linear* p : {&L.wq, &L.wk, &L.wv, &L.w1, &L.w3}) right_mul(p->w, n, Q);  // readers
      for (nn::Linear* p : {&L.wo, &L.w2}) left_mul_t(p->w, n, Q);                      // writers
    }
    right_mul(m.cls.w, n, Q);
  }
  const int hs = c.head_size();
  if (o.value_heads && is_pow2(hs) && hs > 1) {
    // v_h -> v_h H (H = H_hs / sqrt(hs), symmetric and orthogonal): rows of each value head become H W_v,h;
    // attention mixes positions linearly, so each head's output is rotated by H too, undone by W_o,h <- W_o,h H.
    const float norm = 1.0f / std::sqrt(static_cast<float>(hs));
    std::vector<float> col(static_cast<std::size_t>(hs));
    for (auto& L : m.layers) {
      std::vector<float>& V = L.wv.w;
      for (int h = 0; h < c.n_kv_heads; ++h)
        for (int j = 0; j < c.dim; ++j) {
          for (int i = 0; i < hs; ++i) col[i] = V[static_cast<std::size_t>(h * hs + i) * c.dim + j];
          fwht(col.data(), hs);
          for (int i = 0; i < hs; ++i) V[static_cast<std::size_t>(h * hs + i) * c.dim + j] = col[i] * norm;
        }
      std::vector<float>& O = L.wo.w;
      for (int r = 0; r < L.wo.out; ++r)
        for (int h = 0; h < c.n_heads; ++h) {
          float* v = &O[static_cast<std::size_t>(r) * L.wo.in + h * hs];
          fwht(v, hs);
          for (int i = 0; i < hs; ++i) v[i] *= norm;
        }
    }
    info.head_hadamard = hs;
  }
  return info;
}

}  // namespace qcast::ptq
