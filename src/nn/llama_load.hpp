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
/// A ggml tensor [rows, cols] of type Q8_0 / Q4_0 as blocks for the low-bit kernels (checked and indexed by
/// LowbitMatrix::finish); null for every other type.
std::shared_ptr<const kern::LowbitMatrix> lowbit_blocks(gguf::GgmlType type, std::int64_t rows, std::int64_t cols,
                                                        std::vector<std::uint8_t> bytes);

}  // namespace qcast::nn::detail
