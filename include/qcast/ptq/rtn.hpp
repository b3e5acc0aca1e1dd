// Round-to-nearest: the baseline every PTQ method is compared against.
#pragma once
#include <optional>

#include "qcast/ptq/common.hpp"

namespace qcast::ptq {

/// Quantizes W [rows, cols] with the format's own scale rule (identical to fake_quant with axis -1),
/// keeping the per-group parameters. `round` is the element rounding mode (stochastic is seeded by `seed`).
QuantizedWeight rtn(const Format& f, const float* W, std::int64_t rows, std::int64_t cols,
                    RoundMode round = RoundMode::Even, std::uint64_t seed = 0);
/// The same result on up to `threads` threads: round to nearest even goes through qcast::encode's SIMD
/// kernels (bit for bit the reference's codes and scales; the packed codes are kept for encode()), other
/// rounding modes and asymmetric formats through the scalar reference.
QuantizedWeight rtn(const Format& f, const float* W, std::int64_t rows, std::int64_t cols, int threads);

/// rtn of weights read from a GGUF tensor (ggml type `ggml_type`, bytes `blocks`) to a format whose rows that
/// file type already is: the stored blocks themselves, when they decode to W exactly, else nullopt. Only for
/// llama.cpp's searched types (k-quants, IQ4_NL), whose quantizers are not idempotent: quantizing their
/// decoded values again would change the file, while the closed-form ones reproduce it.
std::optional<QuantizedWeight> rtn_keeping_blocks(const Format& f, const float* W, std::int64_t rows, std::int64_t cols,
                                                  std::uint32_t ggml_type, const std::vector<std::uint8_t>& blocks);

}  // namespace qcast::ptq
