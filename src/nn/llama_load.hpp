// Internal helpers shared by the LLaMA checkpoint loaders (llama.cpp: llama2.c / HF; llama_gguf.cpp: GGUF).
#pragma once
#include <string>

#include "qcast/nn/llama.hpp"

namespace qcast::nn::detail {

/// Throws qcast::Error ("<what>: bad model config: ...") for non-positive or inconsistent dimensions.
void check_config(const LlamaConfig& c, const std::string& what);
/// Sizes m.layers and names every Linear (layers.N.attention.wq, ..., output) from m.cfg.
void init_layers(Llama& m);

}  // namespace qcast::nn::detail
