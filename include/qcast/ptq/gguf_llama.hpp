// GGUF export of a quantized LLaMA model (`qcast quantize MODEL.bin --out model.gguf`), in the layout
// llama.cpp's "llama" architecture loads:
//   metadata  general.architecture = "llama", llama.context_length / embedding_length / block_count /
//             feed_forward_length / attention.head_count / attention.head_count_kv / rope.dimension_count /
//             rope.freq_base / attention.layer_norm_rms_epsilon / vocab_size, the llama2.c tokenizer as
//             tokenizer.ggml.* (model "llama"), and qcast.* provenance (method, recipe JSON);
//   tensors   token_embd.weight, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
//             ffn_down, ffn_up}.weight, output_norm.weight, output.weight.
// Quantized layers are stored with qcast's own codes and scales in Q8_0 / Q4_0 / MXFP4 (gguf::make_tensor),
// so the file dequantizes to exactly the weights `qcast eval` computes with. Norms, the token embedding and
// unquantized layers are F32; a quantized layer whose rows are not a multiple of 32 (ggml blocks cannot be
// ragged) is stored as F32 of its fake-quantized values, and reported in `notes`.
//
// RoPE: llama2.c checkpoints rotate adjacent pairs (2i, 2i+1), which is llama.cpp's LLAMA_ROPE_TYPE_NORM for
// this architecture, so wq / wk are written unpermuted (as llama.cpp's own convert-llama2c-to-ggml does).
// Hugging Face checkpoints (half-split RoPE) would need the inverse of convert_hf_to_gguf's q/k row
// permutation and are refused.
#pragma once
#include <string>
#include <vector>

#include "qcast/nn/llama.hpp"
#include "qcast/ptq/gguf.hpp"
#include "qcast/ptq/model.hpp"

namespace qcast::ptq {

/// Throws qcast::Error (naming the format and listing gguf::ggml_mapping()) if weight format `fmt` has no
/// ggml block type. "" / "none" / "fp32" (layers left in float) are accepted.
void check_gguf_format(const std::string& fmt);

/// The tokenizer file for a LLaMA model: `given` if not empty, else tok<vocab>.bin or tokenizer.bin beside
/// the model. Throws qcast::Error when none is found.
std::string find_llama_tokenizer(const Model& m, const std::string& given);

/// The llama2.c tokenizer as GGUF fields: spaces become U+2581, ids 0 / 1 / 2 are <unk> / <s> / </s>
/// (types UNKNOWN / CONTROL), "<0xHH>" pieces BYTE, empty pieces CONTROL, the rest NORMAL.
void add_llama2c_tokenizer(gguf::File& f, const nn::Tokenizer& tok);

/// The GGUF file of a model quantized by quantize_model (its result `r`, run with `method`).
/// Throws qcast::Error for graph models, Hugging Face (half-split RoPE) models, layers whose format has no
/// ggml type, and layers with a rotation or a low-rank branch (not expressible as one ggml tensor).
gguf::File llama_gguf(const Model& m, const QuantizeResult& r, const std::string& method, const nn::Tokenizer& tok,
                      std::vector<std::string>* notes = nullptr);

}  // namespace qcast::ptq
