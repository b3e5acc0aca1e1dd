// LLaMA-family language models: llama2.c checkpoints (legacy and v1 headers) with their BPE tokenizer,
// and Hugging Face LLaMA checkpoints (config.json + *.safetensors). RMSNorm, RoPE, grouped-query causal
// attention with a KV cache, SwiGLU; tied or separate classifier. Fake-quant hooks on every linear
// layer's weight and input, and on the KV cache.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/kernels/lowbit.hpp"
#include "qcast/nn/act_quant.hpp"
#include "qcast/nn/recipe.hpp"

namespace qcast::nn {

struct LlamaConfig {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  /// RoPE pairing: llama2.c rotates adjacent pairs (2i, 2i+1); Hugging Face rotates (i, i + head/2).
  bool rope_half = false;
  int head_size() const { return dim / n_heads; }
  int kv_dim() const { return head_size() * n_kv_heads; }
};

/// One linear layer: weight [out, in] row-major, plus its quantization.
/// A weight's blocks as a GGUF file stored them (ggml type id and bytes, rows one after the other).
struct StoredBlocks {
  std::uint32_t ggml_type = 0;
  std::vector<std::uint8_t> bytes;
};

struct Linear {
  std::string name;
  int out = 0, in = 0;
  std::vector<float> w;        // current (possibly fake-quantized) weight
  std::vector<float> w_fp32;   // original
  std::optional<ActQuant> act; // input fake-quant (dynamic or static; blocks / channels along `in`)
  std::optional<Format> w_format;  // the format `w` was fake-quantized to by apply_recipe (none: as loaded)
  /// `w` in ggml blocks (Q8_0 / Q4_0) that decode to exactly `w`, for the low-bit kernels: kept from a GGUF
  /// file's tensor or made by Llama::use_lowbit_kernels. Shared, so copies of a model share the bytes.
  std::shared_ptr<const kern::LowbitMatrix> packed;
  /// The blocks of `w_fp32` as the GGUF file it was read from stored them (quantized types only), so that
  /// quantizing it again to its own type can keep them (ptq's rtn checks they still decode to the weights).
  std::shared_ptr<const StoredBlocks> stored;
};

struct LlamaLayer {
  std::vector<float> rms_att, rms_ffn;
  Linear wq, wk, wv, wo, w1, w2, w3;
};

class Llama {
 public:
  LlamaConfig cfg;
  std::vector<float> tok_emb;  // [vocab, dim]
  std::vector<LlamaLayer> layers;
  std::vector<float> rms_final;
  Linear cls;                  // [vocab, dim]
  std::optional<Format> kv;    // KV-cache fake-quant (blocks along the kv_dim of one position)
  std::string source;

  /// Per-sequence state (KV cache and scratch); one per concurrent sequence.
  struct State {
    std::vector<float> x, xb, xb2, hb, hb2, q, k, v, att, logits, key_cache, value_cache, qbuf;
  };
  State new_state() const;
  /// Runs one token at position `pos` (0-based, < seq_len); returns the logits (valid until the next call).
  const float* forward(State& s, int token, int pos) const;
  /// Runs a whole sequence (positions 0..n-1, n <= seq_len) at once with GEMMs and a causal mask;
  /// returns logits [n, vocab]. Same arithmetic as n calls of forward() up to summation order.
  std::vector<float> forward_seq(const std::vector<int>& tokens) const;

  /// Names of the quantizable linear layers ("layers.0.attention.wq", ..., "output").
  std::vector<std::string> layer_names() const;
  /// Applies a recipe: fake-quantizes weights, sets activation and KV formats. Returns a warning
  /// (unmatched patterns) or "".
  std::string apply_recipe(const Recipe& r, int threads = 1);
  std::int64_t num_params() const;

  /// Runs the linear layers whose weights are (or pack exactly into) Q8_0 / Q4_0 blocks on the low-bit
  /// kernels (qcast/kernels/lowbit.hpp): their inputs are quantized to 8 bits per 32 as llama.cpp does, so
  /// results differ from the fp32 path by that activation rounding. `threads` splits each product's rows
  /// (results do not depend on it). Returns the number of layers that run low-bit; the rest stay fp32.
  int use_lowbit_kernels(int threads = 1);
  /// Threads of the low-bit products; 0 = the fp32 path everywhere (the default).
  int lowbit_threads = 0;
};

/// Loads a llama2.c checkpoint (legacy header: negative vocab size = separate classifier; or v1 header
/// with magic 0x616b3432). Throws qcast::Error for truncated or inconsistent files.
Llama load_llama2c(const std::string& path);
Llama parse_llama2c(const std::uint8_t* data, std::size_t size, const std::string& what);
/// Loads a Hugging Face LLaMA checkpoint: a directory (or its config.json) with *.safetensors.
Llama load_hf_llama(const std::string& path);
/// Loads a GGUF model of llama.cpp's "llama" architecture (llama.* hyperparameters; tensors token_embd,
/// blk.N.attn_{norm,q,k,v,output}, blk.N.ffn_{norm,gate,up,down}, output_norm, output (tied to token_embd
/// when absent)), every tensor dequantized to float32 (F32, F16, BF16, Q4_0..Q8_0, K-quants, MXFP4).
/// RoPE pairs adjacent elements (ggml's LLAMA_ROPE_TYPE_NORM): llama.cpp's converters permute the rows of
/// Hugging Face wq / wk into that order, and qcast writes llama2.c weights unpermuted, so the weights are
/// used as stored. Throws qcast::Error for other architectures, RoPE scaling, partial rotary, MoE, biases.
Llama load_gguf_llama(const std::string& path);
/// llama2.c, HF or GGUF, by content (qcast/sniff.hpp).
Llama load_llama(const std::string& path);
bool looks_like_llama(const std::string& path);

/// llama2.c's tokenizer (tok*.bin): vocab with merge scores; encode exactly as llama2.c's `encode`.
class Tokenizer {
 public:
  std::vector<std::string> vocab;
  std::vector<float> scores;
  int max_token_length = 0;

  int bos_id = 1, eos_id = 2;
  bool add_space_prefix = true;  ///< SentencePiece's dummy prefix (llama2.c always adds it)
  std::vector<int> byte_ids;     ///< token of each byte for byte fallback; empty = llama2.c's byte + 3

  static Tokenizer load(const std::string& path, int vocab_size);
  /// The SentencePiece ("llama") vocabulary of a GGUF file (tokenizer.ggml.tokens / scores / token_type,
  /// bos / eos ids, add_space_prefix): U+2581 becomes a space as in llama2.c's export; control and unknown
  /// tokens are never produced by encode(); byte fallback uses the BYTE tokens <0xHH>. Throws qcast::Error
  /// for other tokenizer models (e.g. "gpt2" BPE) or a vocabulary size other than `vocab_size`.
  static Tokenizer from_gguf(const std::string& path, int vocab_size);
  static Tokenizer parse(const std::uint8_t* data, std::size_t size, int vocab_size, const std::string& what);
  /// BOS (1) optionally, a dummy-prefix space token for non-empty text, code points (byte fallback
  /// +3), then greedy merges by best score; EOS (2) optionally.
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const;
  /// The text of `token` following `prev` (strips the leading space after BOS, decodes <0xXX>).
  std::string decode(int prev, int token) const;

 private:
  std::unordered_map<std::string, int> index_;  // piece (as a C string) -> lowest id
  int lookup(const std::string& s) const;
};

/// The tokenizer of a language model: `given` (llama2.c tok*.bin or a GGUF file) if not empty, else the
/// GGUF model's own vocabulary, else tok<vocab>.bin or tokenizer.bin beside the model. Error when none.
Tokenizer load_tokenizer_for(const std::string& model, const std::string& given, int vocab_size);

/// Perplexity protocol: for each story, tokens = encode(story, BOS, no EOS) truncated to seq_len; the
/// NLL of tokens 1..n-1 given their prefix (teacher forcing).
struct PerplexityResult {
  double nll = 0;          // total
  std::int64_t tokens = 0; // predicted tokens
  std::int64_t samples = 0;
  double mean_nll() const { return tokens ? nll / static_cast<double>(tokens) : 0.0; }
  double perplexity() const;
};
/// `on_story(so_far)` is called after each story (in completion order: a running figure for progress bars;
/// the result itself is summed in story order and does not depend on `threads`).
PerplexityResult perplexity(const Llama& m, const Tokenizer& tok, const std::vector<std::string>& stories, int threads,
                            const std::function<void(const PerplexityResult& so_far)>& on_story = {});
/// The same, also returning each story's total NLL and predicted tokens in story order (either may be null).
PerplexityResult perplexity(const Llama& m, const Tokenizer& tok, const std::vector<std::string>& stories, int threads,
                            std::vector<double>* story_nll, std::vector<std::int64_t>* story_tokens,
                            const std::function<void(const PerplexityResult& so_far)>& on_story = {});

/// llama2.c's sampler: greedy when temperature == 0, else multinomial on softmax(logits / T) with its
/// xorshift RNG seeded by `seed`.
std::string generate(const Llama& m, const Tokenizer& tok, const std::string& prompt, int steps, float temperature,
                     std::uint64_t seed, std::vector<int>* out_tokens = nullptr);

}  // namespace qcast::nn
