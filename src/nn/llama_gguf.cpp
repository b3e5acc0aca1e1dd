// LLaMA models and their SentencePiece vocabulary from GGUF files (llama.cpp's "llama" architecture).
// The inverse of ptq/gguf_llama.cpp's writer: the same metadata keys and tensor names, weights used as
// stored (no Q/K row permutation: see load_gguf_llama in qcast/nn/llama.hpp).
#include <cstdio>

#include "nn/llama_load.hpp"
#include "qcast/error.hpp"
#include "qcast/gguf.hpp"
#include "qcast/nn/llama.hpp"

namespace qcast::nn {

namespace {

constexpr std::int32_t kTypeUnknown = 2, kTypeControl = 3, kTypeByte = 6;  // llama.cpp token types

int dim_of(const gguf::Reader& g, const std::string& key, bool required, int fallback = 0) {
  const auto v = g.get_uint(key);
  if (!v) {
    if (required) throw Error(g.what() + ": GGUF metadata '" + key + "' is missing");
    return fallback;
  }
  if (*v > (1u << 30)) throw Error(g.what() + ": GGUF metadata '" + key + "' = " + std::to_string(*v) + " is implausibly large");
  return static_cast<int>(*v);
}

}  // namespace

Llama load_gguf_llama(const std::string& path) {
  const gguf::Reader g = gguf::Reader::open(path);
  const auto arch = g.get_string("general.architecture");
  if (!arch) throw Error(path + ": GGUF file has no general.architecture");
  if (*arch != "llama")
    throw Error(path + ": GGUF architecture '" + *arch + "' is not supported (qcast runs llama.cpp's \"llama\" architecture)");
  Llama m;
  m.source = path;
  LlamaConfig& c = m.cfg;
  c.dim = dim_of(g, "llama.embedding_length", true);
  c.hidden_dim = dim_of(g, "llama.feed_forward_length", true);
  c.n_layers = dim_of(g, "llama.block_count", true);
  c.n_heads = dim_of(g, "llama.attention.head_count", true);
  c.n_kv_heads = dim_of(g, "llama.attention.head_count_kv", false, c.n_heads);
  c.seq_len = dim_of(g, "llama.context_length", true);
  c.norm_eps = g.get_float("llama.attention.layer_norm_rms_epsilon").value_or(1e-5f);
  c.rope_theta = g.get_float("llama.rope.freq_base").value_or(10000.0f);
  c.rope_half = false;  // ggml's LLAMA_ROPE_TYPE_NORM: adjacent pairs
  const gguf::TensorInfo* emb = g.tensor("token_embd.weight");
  if (!emb) throw Error(path + ": GGUF tensor 'token_embd.weight' is missing");
  if (emb->ne.size() != 2) throw Error(path + ": token_embd.weight is not a matrix");
  if (emb->ne[1] > (1u << 30)) throw Error(path + ": token_embd.weight has an implausible vocabulary");
  c.vocab_size = static_cast<int>(emb->ne[1]);
  if (const auto v = g.get_uint("llama.vocab_size"); v && *v != emb->ne[1])
    throw Error(path + ": llama.vocab_size " + std::to_string(*v) + " differs from token_embd.weight's " + std::to_string(emb->ne[1]) + " rows");
  detail::check_config(c, path);
  if (const auto rd = g.get_uint("llama.rope.dimension_count"); rd && *rd != static_cast<std::uint64_t>(c.head_size()))
    throw Error(path + ": partial rotary embeddings (rope.dimension_count " + std::to_string(*rd) + ", head size " +
                std::to_string(c.head_size()) + ") are not supported");
  for (const char* k : {"llama.attention.key_length", "llama.attention.value_length"})
    if (const auto v = g.get_uint(k); v && *v != static_cast<std::uint64_t>(c.head_size()))
      throw Error(path + ": " + k + " " + std::to_string(*v) + " differs from embedding_length / head_count (not supported)");
  if (const auto s = g.get_string("llama.rope.scaling.type"); s && *s != "none")
    throw Error(path + ": RoPE scaling '" + *s + "' is not supported");
  if (g.tensor("rope_freqs.weight")) throw Error(path + ": per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 scaling) are not supported");
  if (const auto e = g.get_uint("llama.expert_count"); e && *e > 0) throw Error(path + ": mixture-of-experts models are not supported");
  if (g.tensor("blk.0.attn_q.bias")) throw Error(path + ": attention biases are not part of the llama architecture qcast runs");
  detail::init_layers(m);

  const std::int64_t D = c.dim, H = c.hidden_dim, KV = c.kv_dim(), V = c.vocab_size;
  auto get = [&](const std::string& name, const Shape& want) -> std::vector<float> {
    const gguf::TensorInfo* t = g.tensor(name);
    if (!t) throw Error(path + ": GGUF tensor '" + name + "' is missing");
    if (t->shape() != want)
      throw Error(path + ": GGUF tensor '" + name + "' has shape " + shape_str(t->shape()) + " (row-major), expected " + shape_str(want));
    return g.dequantize(*t);
  };
  // A linear layer stored in a type the low-bit kernels take keeps its blocks too (Llama::use_lowbit_kernels):
  // a copy of the quantized bytes (unpacked to 8-bit codes for some types), a fraction of the float32 weight.
  auto linear = [&](Linear& L, const std::string& name, const Shape& want) {
    L.w = get(name, want);
    const gguf::TensorInfo* t = g.tensor(name);
    L.packed = detail::lowbit_blocks(t->type, want[0], want[1], t->data, t->nbytes);
    if (t->type != gguf::GgmlType::F32 && t->type != gguf::GgmlType::F16 && t->type != gguf::GgmlType::BF16) {
      auto s = std::make_shared<StoredBlocks>();
      s->ggml_type = static_cast<std::uint32_t>(t->type);
      s->bytes.assign(t->data, t->data + t->nbytes);
      L.stored = std::move(s);
    }
  };
  m.tok_emb = get("token_embd.weight", {V, D});
  for (int l = 0; l < c.n_layers; ++l) {
    LlamaLayer& L = m.layers[static_cast<std::size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    L.rms_att = get(p + "attn_norm.weight", {D});
    linear(L.wq, p + "attn_q.weight", {D, D});
    linear(L.wk, p + "attn_k.weight", {KV, D});
    linear(L.wv, p + "attn_v.weight", {KV, D});
    linear(L.wo, p + "attn_output.weight", {D, D});
    L.rms_ffn = get(p + "ffn_norm.weight", {D});
    linear(L.w1, p + "ffn_gate.weight", {H, D});
    linear(L.w2, p + "ffn_down.weight", {D, H});
    linear(L.w3, p + "ffn_up.weight", {H, D});
  }
  m.rms_final = get("output_norm.weight", {D});
  c.shared_classifier = g.tensor("output.weight") == nullptr;
  if (c.shared_classifier)
    m.cls.w = m.tok_emb;
  else
    linear(m.cls, "output.weight", {V, D});
  return m;
}

Tokenizer Tokenizer::from_gguf(const std::string& path, int vocab_size) {
  const gguf::Reader g = gguf::Reader::open(path);
  const auto model = g.get_string("tokenizer.ggml.model");
  if (!model) throw Error(path + ": GGUF file has no tokenizer (tokenizer.ggml.model); pass --tokenizer FILE");
  if (*model != "llama")
    throw Error(path + ": GGUF tokenizer model '" + *model + "' is not supported (qcast encodes SentencePiece \"llama\" vocabularies)");
  const auto* tokens = g.get_array("tokenizer.ggml.tokens", gguf::ValueType::String);
  if (!tokens) throw Error(path + ": GGUF tokenizer has no tokenizer.ggml.tokens");
  if (static_cast<std::int64_t>(tokens->size()) != vocab_size)
    throw Error(path + ": GGUF tokenizer has " + std::to_string(tokens->size()) + " tokens, the model a vocabulary of " + std::to_string(vocab_size));
  if (vocab_size < 3) throw Error(path + ": vocabulary of " + std::to_string(vocab_size) + " tokens is too small");
  const auto* scores = g.get_array("tokenizer.ggml.scores", gguf::ValueType::F32);
  const auto* types = g.get_array("tokenizer.ggml.token_type", gguf::ValueType::I32);
  if (scores && scores->size() != tokens->size()) throw Error(path + ": tokenizer.ggml.scores and .tokens differ in length");
  if (types && types->size() != tokens->size()) throw Error(path + ": tokenizer.ggml.token_type and .tokens differ in length");
  Tokenizer t;
  t.bos_id = static_cast<int>(g.get_uint("tokenizer.ggml.bos_token_id").value_or(1));
  t.eos_id = static_cast<int>(g.get_uint("tokenizer.ggml.eos_token_id").value_or(2));
  if (t.bos_id >= vocab_size || t.eos_id >= vocab_size) throw Error(path + ": tokenizer BOS / EOS id outside the vocabulary");
  t.add_space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  t.byte_ids.assign(256, -1);
  for (int id = 0; id < vocab_size; ++id) {
    std::string piece;
    const std::string& raw = std::get<std::string>((*tokens)[static_cast<std::size_t>(id)]);
    for (std::size_t i = 0; i < raw.size(); ++i) {  // U+2581 (e2 96 81) marks a space in SentencePiece
      if (raw.compare(i, 3, "\xe2\x96\x81") == 0) {
        piece += ' ';
        i += 2;
      } else {
        piece += raw[i];
      }
    }
    const std::int32_t type = types ? std::get<std::int32_t>((*types)[static_cast<std::size_t>(id)]) : 1;
    unsigned byte;
    if (type == kTypeByte && piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1 && t.byte_ids[byte] < 0)
      t.byte_ids[byte] = id;
    t.max_token_length = std::max(t.max_token_length, static_cast<int>(piece.size()));
    t.vocab.push_back(piece);
    t.scores.push_back(scores ? std::get<float>((*scores)[static_cast<std::size_t>(id)]) : 0.0f);
    // encode() matches text against pieces; SentencePiece never produces control / unknown tokens from text.
    if (type != kTypeControl && type != kTypeUnknown) t.index_.emplace(std::string(t.vocab.back().c_str()), id);
  }
  return t;
}

}  // namespace qcast::nn
