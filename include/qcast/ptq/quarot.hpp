// QuaRot-style rotation of a LLaMA model's residual stream (Ashkboos et al. 2024, arXiv 2404.00456),
// applied to the fp32 model before any quantization method (`qcast quantize --method quarot+gptq`).
//
//   1. Norm folding: every RMSNorm weight g is folded into the linear layers that read the normalised
//      vector, W <- W diag(g) (wq/wk/wv take attention_norm, w1/w3 take ffn_norm, the classifier takes the
//      final norm), and g is set to 1. Exact: rmsnorm(x) * g read by W equals rmsnorm(x) read by W diag(g).
//   2. Residual rotation by an orthogonal Q [dim, dim]: the residual stream x becomes x Q. Embedding
//      rows E <- E Q; layers reading the stream (through a unit-weight RMSNorm, which commutes with Q since
//      ||x Q|| = ||x||) W_in <- W_in Q; layers writing to it W_out <- Q^T W_out. The fp32 function is
//      unchanged; outliers of the residual features are spread over all of them, which is what helps
//      per-block / per-group quantization of weights and activations.
//   3. Optional value/output head rotation: per attention head a Walsh-Hadamard H_hs / sqrt(hs) on the
//      value head (rows of wv) and the matching columns of wo. Fused into the weights (no online op), exact.
//
// Q is a randomized Hadamard diag(d) H_n / sqrt(n) (d random +-1, seeded) when dim = 2^k, or 2^k (p + 1)
// with p a prime = 3 mod 4 (Paley construction of H_{p+1}, then Kronecker with H_{2^k}); otherwise a
// random orthogonal matrix from the QR (Gram-Schmidt, twice) of a seeded Gaussian matrix.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qcast/nn/llama.hpp"

namespace qcast::ptq {

struct QuarotOptions {
  std::uint64_t seed = 0;
  bool fold_norms = true;     ///< step 1 (steps 2 and 3 require it; rotate=false leaves only the folding)
  bool rotate = true;         ///< step 2
  bool value_heads = true;    ///< step 3 (only when the head size is a power of two)
};

/// What was applied (reported in the quantized file's metadata).
struct QuarotInfo {
  std::string residual;       ///< "hadamard", "paley-hadamard", "qr" or "" (not rotated)
  int head_hadamard = 0;      ///< head size rotated in step 3, 0 = none
  std::uint64_t seed = 0;
  std::string to_json() const;
};

/// The orthogonal residual rotation Q [n, n] row-major (see above); deterministic in (n, seed).
/// `kind` (optional) receives "hadamard", "paley-hadamard" or "qr". Throws qcast::Error for n <= 0.
std::vector<float> residual_rotation(int n, std::uint64_t seed, std::string* kind = nullptr);

/// Folds every RMSNorm weight into the following linear layers and sets the norm weights to 1.
/// Works on the fp32 weights (w_fp32 when a recipe was applied); any fake-quantized weights are
/// replaced by the folded fp32 ones. The classifier stops being shared with the embedding.
void fold_norms(nn::Llama& m);

/// Steps 1-3 on `m` in place, per `o`. Returns what was applied.
QuarotInfo quarot(nn::Llama& m, const QuarotOptions& o);

}  // namespace qcast::ptq
