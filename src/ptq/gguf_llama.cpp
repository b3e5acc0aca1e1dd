// GGUF export of quantized LLaMA models. See include/qcast/ptq/gguf_llama.hpp.
#include "qcast/ptq/gguf_llama.hpp"

#include <cctype>
#include <filesystem>
#include <map>

#include "qcast/error.hpp"
#include "qcast/kernels/ggml_quants.hpp"

namespace qcast::ptq {

namespace fs = std::filesystem;
namespace gg = gguf;

namespace {

// llama.cpp's token types (llama_token_type / the GGUF tokenizer.ggml.token_type convention).
constexpr std::int32_t kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6;

bool is_byte_piece(const std::string& s) {
  if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return false;
  return std::isxdigit(static_cast<unsigned char>(s[3])) && std::isxdigit(static_cast<unsigned char>(s[4]));
}

}  // namespace

void check_gguf_format(const std::string& fmt) {
  if (fmt.empty() || fmt == "none" || fmt == "fp32") return;
  const Format f = Format::parse(fmt);
  if (gg::ggml_type_for(f, {32, 256}) == gg::GgmlType::F32)  // rows that fit every block type
    throw Error("weight format " + fmt + " has no ggml type for GGUF output (" + gg::ggml_mapping() +
                "); write .safetensors instead");
}

std::string find_llama_tokenizer(const Model& m, const std::string& given) {
  if (!given.empty()) return given;
  const fs::path dir = fs::is_directory(m.path) ? fs::path(m.path) : fs::path(m.path).parent_path();
  for (const std::string& nm : {"tok" + std::to_string(m.llama.cfg.vocab_size) + ".bin", std::string("tokenizer.bin")})
    if (fs::exists(dir / nm)) return (dir / nm).string();
  throw Error(m.path + ": GGUF output needs the model's tokenizer: pass --tokenizer FILE (llama2.c tok*.bin)");
}

void add_llama2c_tokenizer(gg::File& f, const nn::Tokenizer& tok) {
  std::vector<std::string> pieces;
  std::vector<std::int32_t> types;
  for (std::size_t id = 0; id < tok.vocab.size(); ++id) {
    std::string t = tok.vocab[id];
    std::int32_t ty = kNormal;
    if (id == 0) t = "<unk>", ty = kUnknown;
    else if (id == 1) t = "<s>", ty = kControl;
    else if (id == 2) t = "</s>", ty = kControl;
    else if (t.empty()) ty = kControl;
    else if (is_byte_piece(t)) ty = kByte;
    // SentencePiece marks word boundaries with U+2581; llama2.c's export turned them into spaces.
    std::string esc;
    for (char c : t) esc += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
    pieces.push_back(std::move(esc));
    types.push_back(ty);
  }
  gg::add_tokenizer(f, "llama", pieces, tok.scores, types, 1, 2, 0);
}

gg::File llama_gguf(const Model& m, const QuantizeResult& r, const std::string& method, const nn::Tokenizer& tok,
                    std::vector<std::string>* notes) {
  if (m.is_graph) throw Error(m.path + ": GGUF output is for LLaMA language models; write .safetensors for ONNX models");
  const nn::Llama& L = m.llama;
  const nn::LlamaConfig& c = L.cfg;
  if (c.rope_half)
    throw Error(m.path + ": GGUF output of Hugging Face checkpoints (half-split RoPE) is not supported; llama2.c checkpoints are");
  if (static_cast<int>(tok.vocab.size()) != c.vocab_size)
    throw Error("tokenizer has " + std::to_string(tok.vocab.size()) + " pieces, " + m.path + " a vocabulary of " +
                std::to_string(c.vocab_size));
  std::map<std::string, const QuantizedLayer*> q;
  for (const auto& l : r.layers) q[l.name] = &l;

  gg::File f;
  auto u32 = [](std::int64_t v) { return gg::Value::of(static_cast<std::uint32_t>(v)); };
  f.metadata.emplace_back("general.architecture", gg::Value::of("llama"));
  f.metadata.emplace_back("general.name", gg::Value::of(fs::path(m.path).stem().string()));
  f.metadata.emplace_back("general.quantization_version", u32(2));
  f.metadata.emplace_back("llama.vocab_size", u32(c.vocab_size));
  f.metadata.emplace_back("llama.context_length", u32(c.seq_len));
  f.metadata.emplace_back("llama.embedding_length", u32(c.dim));
  f.metadata.emplace_back("llama.block_count", u32(c.n_layers));
  f.metadata.emplace_back("llama.feed_forward_length", u32(c.hidden_dim));
  f.metadata.emplace_back("llama.attention.head_count", u32(c.n_heads));
  f.metadata.emplace_back("llama.attention.head_count_kv", u32(c.n_kv_heads));
  f.metadata.emplace_back("llama.rope.dimension_count", u32(c.head_size()));
  f.metadata.emplace_back("llama.rope.freq_base", gg::Value::of(c.rope_theta));
  f.metadata.emplace_back("llama.attention.layer_norm_rms_epsilon", gg::Value::of(c.norm_eps));
  f.metadata.emplace_back("qcast.method", gg::Value::of(method));
  f.metadata.emplace_back("qcast.recipe", gg::Value::of(nn::recipe_to_json(r.recipe)));
  add_llama2c_tokenizer(f, tok);

  auto vec = [&](const std::string& name, const std::vector<float>& v) {
    f.tensors.push_back(gg::f32_tensor(name, v.data(), {static_cast<std::int64_t>(v.size())}));
  };
  auto linear = [&](const std::string& name, const nn::Linear& lin) {
    const Shape shape{lin.out, lin.in};
    auto it = q.find(lin.name);
    if (it == q.end()) {  // left in float (skipped by the recipe)
      f.tensors.push_back(gg::f32_tensor(name, lin.w.data(), shape));
      return;
    }
    const QuantizedLayer& ql = *it->second;
    if (ql.rotate_block > 0 || !ql.A.empty())
      throw Error("layer '" + lin.name + "': method " + method +
                  " adds a rotation / low-rank branch that no single ggml tensor holds; GGUF output supports rtn, search, gptq, ed, mixed");
    check_gguf_format(ql.q.format.name());
    if (gg::ggml_type_for(ql.q.format, shape) == gg::GgmlType::F32) {
      // ggml blocks cannot be ragged: keep the exact fake-quantized values.
      f.tensors.push_back(gg::f32_tensor(name, ql.q.values.data(), shape));
      if (notes)
        notes->push_back(name + " (" + lin.name + ", " + std::to_string(lin.in) + " inputs, not a multiple of 32): F32 of its " +
                         ql.q.format.name() + " values");
      return;
    }
    gg::TensorData t = gg::make_tensor(name, ql.q.encode());
    if (notes && kern::ggml_quant_of(ql.q.format) && gg::type_name(t.type) != kern::ggml_quant_layout(*kern::ggml_quant_of(ql.q.format)).name)
      notes->push_back(name + " (" + lin.name + ", " + std::to_string(lin.in) + " inputs, not whole blocks of " +
                       std::to_string(kern::ggml_quant_layout(*kern::ggml_quant_of(ql.q.format)).block) + "): " + gg::type_name(t.type) +
                       " (formats.md: the fallback of " + ql.q.format.name() + ")");
    f.tensors.push_back(std::move(t));
  };

  f.tensors.push_back(gg::f32_tensor("token_embd.weight", L.tok_emb.data(), {c.vocab_size, c.dim}));
  for (int i = 0; i < c.n_layers; ++i) {
    const nn::LlamaLayer& b = L.layers[static_cast<std::size_t>(i)];
    const std::string p = "blk." + std::to_string(i) + ".";
    vec(p + "attn_norm.weight", b.rms_att);
    linear(p + "attn_q.weight", b.wq);
    linear(p + "attn_k.weight", b.wk);
    linear(p + "attn_v.weight", b.wv);
    linear(p + "attn_output.weight", b.wo);
    vec(p + "ffn_norm.weight", b.rms_ffn);
    linear(p + "ffn_gate.weight", b.w1);
    linear(p + "ffn_down.weight", b.w2);
    linear(p + "ffn_up.weight", b.w3);
  }
  vec("output_norm.weight", L.rms_final);
  linear("output.weight", L.cls);
  return f;
}

}  // namespace qcast::ptq
