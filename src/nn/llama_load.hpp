// Internal helpers shared by the LLaMA checkpoint loaders (llama.cpp: llama2.c / HF; llama_gguf.cpp: GGUF).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qcast/gguf.hpp"
#include "qcast/kernels/lowbit.hpp"
#include "qcast/nn/llama.hpp"

namespace qcast::nn::detail {

/// Throws qcast::Error ("<what>: bad model config: ...") for non-positive or inconsistent dimensions.
void check_config(const LlamaConfig& c, const std::string& what);
/// Sizes m.layers and names every Linear (layers.N.attention.wq, ..., output) from m.cfg.
void init_layers(Llama& m);
/// A ggml tensor [rows, cols] as a matrix for the low-bit kernels (kern::lowbit_from_ggml); null for a type
/// this CPU has no SIMD kernel for (kern::lowbit_fast_for_ggml).
std::shared_ptr<const kern::LowbitMatrix> lowbit_blocks(gguf::GgmlType type, std::int64_t rows, std::int64_t cols,
                                                        const std::uint8_t* bytes, std::size_t nbytes);

}  // namespace qcast::nn::detail
