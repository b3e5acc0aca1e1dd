// qcast's ggml-named formats against llama.cpp's own reference quantizers, bit for bit. The quantize_row_*_ref
// functions are called in the real ggml library that node-llama-cpp 3.21.1 ships (libggml-base.so, loaded
// with dlopen: nothing of ggml is compiled into qcast or this program). For every type, inputs of several
// kinds (Gaussian, uniform, heavy tails, exact rounding ties, all-zero and one-hot blocks, a negative or
// positive block maximum, tiny and large magnitudes) are quantized by ggml and by qcast
// (gguf::make_tensor with the named format); the GGUF block bytes must be equal, and qcast's fake-quantized
// values must equal ggml's bytes decoded (up to the sign of zero).
// Usage: ggml_ref LIBGGML_BASE.so   (exit 0: all equal, 1: a difference, 2: the library lacks a symbol)
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/gguf.hpp"
#include "qcast/kernels/ggml_quants.hpp"
#include "qcast/quantize.hpp"

namespace gg = qcast::gguf;

namespace {

using QuantizeRow = void (*)(const float*, void*, std::int64_t);
using DequantizeRow = void (*)(const void*, float*, std::int64_t);
// ggml_quantize_chunk's per-type quantizer (what llama-quantize calls), for types whose _ref is not it.
using QuantizeChunk = std::size_t (*)(const float*, void*, std::int64_t, std::int64_t, const float*);

struct Case {
  const char* format;    // qcast named format
  const char* symbol;    // ggml's reference quantizer
  const char* decoder;   // ggml's decoder
  gg::GgmlType type;
  bool chunk = false;    // `symbol` is a QuantizeChunk (rows, row length, no importance matrix)
};

std::vector<float> make_inputs(int kind, std::int64_t n, std::mt19937& rng) {
  std::vector<float> x(static_cast<std::size_t>(n));
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::student_t_distribution<float> t(2.0f);
  std::uniform_int_distribution<int> small(-40, 40);
  for (std::int64_t i = 0; i < n; ++i) {
    float& v = x[static_cast<std::size_t>(i)];
    switch (kind) {
      case 0: v = g(rng) * 0.02f; break;                        // weight-like
      case 1: v = u(rng); break;
      case 2: v = t(rng); break;                                // heavy tails
      case 3: v = static_cast<float>(small(rng)) / 8.0f; break; // many exact ties on the code grid
      case 4: v = (i % 32 == 0) ? g(rng) : 0.0f; break;        // one-hot blocks
      case 5: v = (i / 32) % 3 == 0 ? 0.0f : g(rng); break;     // all-zero blocks
      case 6: v = std::fabs(g(rng)) * ((i / 32) % 2 ? 1.0f : -1.0f); break;  // one-signed blocks
      case 7: v = g(rng) * 1e-6f; break;                        // fp16 subnormal scales
      case 8: v = g(rng) * 300.0f; break;                       // large
      case 9: v = static_cast<float>(i % 32) - 15.5f; break;    // ramps
      case 10: v = (i / 256) % 2 ? g(rng) : 0.0f; break;        // all-zero 256-blocks (k-quants)
      default: v = g(rng) * ((i / 256) % 2 ? 1e-17f : 1e-3f); break;  // 256-blocks below ggml's GROUP_MAX_EPS
    }
  }
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ggml_ref LIBGGML_BASE.so\n");
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::fprintf(stderr, "ggml_ref: cannot load %s: %s\n", argv[1], dlerror());
    return 2;
  }
  const Case cases[] = {
      {"q8_0_ggml", "quantize_row_q8_0_ref", "dequantize_row_q8_0", gg::GgmlType::Q8_0},
      {"q4_0_ggml", "quantize_row_q4_0_ref", "dequantize_row_q4_0", gg::GgmlType::Q4_0},
      {"q4_1", "quantize_row_q4_1_ref", "dequantize_row_q4_1", gg::GgmlType::Q4_1},
      {"q5_0", "quantize_row_q5_0_ref", "dequantize_row_q5_0", gg::GgmlType::Q5_0},
      {"q5_1", "quantize_row_q5_1_ref", "dequantize_row_q5_1", gg::GgmlType::Q5_1},
      {"mxfp4_ggml", "quantize_row_mxfp4_ref", "dequantize_row_mxfp4", gg::GgmlType::MXFP4},
      {"nvfp4_ggml", "quantize_row_nvfp4_ref", "dequantize_row_nvfp4", gg::GgmlType::NVFP4},
      {"q2_k", "quantize_row_q2_K_ref", "dequantize_row_q2_K", gg::GgmlType::Q2_K},
      {"q3_k", "quantize_row_q3_K_ref", "dequantize_row_q3_K", gg::GgmlType::Q3_K},
      {"q4_k", "quantize_row_q4_K_ref", "dequantize_row_q4_K", gg::GgmlType::Q4_K},
      {"q5_k", "quantize_row_q5_K_ref", "dequantize_row_q5_K", gg::GgmlType::Q5_K},
      {"q6_k", "quantize_row_q6_K_ref", "dequantize_row_q6_K", gg::GgmlType::Q6_K},
      // llama-quantize writes IQ4_NL with quantize_iq4_nl (a 15-step scale search); quantize_row_iq4_nl_ref
      // is a cheaper variant that llama.cpp uses only inside its CPU matrix products.
      {"iq4_nl", "quantize_iq4_nl", "dequantize_row_iq4_nl", gg::GgmlType::IQ4_NL, true},
  };
  const std::int64_t rows = 256, cols = 256;  // 2048 blocks of 32 (256 of 256) per input kind
  int failures = 0;
  for (const Case& c : cases) {
    void* sym = dlsym(lib, c.symbol);
    auto deq = reinterpret_cast<DequantizeRow>(dlsym(lib, c.decoder));
    if (!sym || !deq) {
      std::fprintf(stderr, "ggml_ref: %s has no %s or %s\n", argv[1], c.symbol, c.decoder);
      return 2;
    }
    const qcast::Format f = qcast::Format::parse(c.format);
    const auto& tr = gg::traits(c.type);
    std::int64_t blocks = 0, diff_blocks = 0, diff_values = 0, diff_decoded = 0;
    for (int kind = 0; kind < 12; ++kind) {
      std::mt19937 rng(1234u + static_cast<unsigned>(kind));
      const std::vector<float> x = make_inputs(kind, rows * cols, rng);
      std::vector<std::uint8_t> ref(static_cast<std::size_t>(rows * cols / tr.block * tr.bytes));
      if (c.chunk)
        reinterpret_cast<QuantizeChunk>(sym)(x.data(), ref.data(), rows, cols, nullptr);
      else
        for (std::int64_t r = 0; r < rows; ++r)
          reinterpret_cast<QuantizeRow>(sym)(x.data() + r * cols, ref.data() + r * (cols / tr.block) * tr.bytes, cols);
      const gg::TensorData t = gg::make_tensor("x", x.data(), {rows, cols}, f);
      if (t.type != c.type) {
        std::printf("FAIL %s: qcast stores it as %s, not %s\n", c.format, gg::type_name(t.type).c_str(), tr.name);
        ++failures;
        break;
      }
      for (std::size_t b = 0; b < ref.size() / tr.bytes; ++b, ++blocks)
        if (std::memcmp(ref.data() + b * tr.bytes, t.data.data() + b * tr.bytes, tr.bytes) != 0) {
          if (diff_blocks++ < 3) {
            std::printf("FAIL %s kind %d block %zu: ggml", c.format, kind, b);
            for (std::uint32_t i = 0; i < tr.bytes; ++i) std::printf(" %02x", ref[b * tr.bytes + i]);
            std::printf("\n   qcast                  ");
            for (std::uint32_t i = 0; i < tr.bytes; ++i) std::printf(" %02x", t.data[b * tr.bytes + i]);
            std::printf("\n   inputs");
            for (std::uint32_t i = 0; i < tr.block; ++i) std::printf(" %.9g", x[b * tr.block + i]);
            std::printf("\n");
          }
        }
      // qcast's fake-quant (the values eval / generate compute with) = ggml's blocks decoded; qcast's decoder
      // of those blocks = ggml's decoder.
      std::vector<float> fq(x.size()), dq(x.size()), gdq(x.size());
      qcast::fake_quant(f, x.data(), fq.data(), {rows, cols});
      gg::dequantize_row(c.type, ref.data(), dq.data(), rows * cols);
      deq(ref.data(), gdq.data(), rows * cols);
      for (std::size_t i = 0; i < x.size(); ++i)
        if (std::memcmp(&dq[i], &gdq[i], 4) != 0 && diff_decoded++ < 3)
          std::printf("FAIL %s kind %d element %zu: qcast decodes ggml's block as %.9g, ggml as %.9g\n", c.format, kind, i, dq[i], gdq[i]);
      for (std::size_t i = 0; i < x.size(); ++i)
        if (std::memcmp(&fq[i], &dq[i], 4) != 0 && !(fq[i] == 0.0f && dq[i] == 0.0f)) {
          if (diff_values++ < 3) std::printf("FAIL %s kind %d element %zu: fake-quant %.9g, ggml %.9g\n", c.format, kind, i, fq[i], dq[i]);
        }
    }
    std::printf("%-10s %-22s %6lld blocks: %lld differ; %lld fake-quant values differ; %lld decoded values differ\n", c.format,
                c.symbol, static_cast<long long>(blocks), static_cast<long long>(diff_blocks), static_cast<long long>(diff_values),
                static_cast<long long>(diff_decoded));
    failures += diff_blocks > 0 || diff_values > 0 || diff_decoded > 0;
  }
  // Importance-weighted quantization (llama-quantize --imatrix): ggml_quantize_chunk's quantize_<type> with an
  // importance vector, one weight per column, the same for every row.
  struct Weighted {
    const char* format;
    const char* symbol;
  };
  const Weighted weighted[] = {{"q2_k", "quantize_q2_K"}, {"q3_k", "quantize_q3_K"}, {"q4_k", "quantize_q4_K"},
                               {"q5_k", "quantize_q5_K"}, {"q6_k", "quantize_q6_K"}, {"iq4_nl", "quantize_iq4_nl"}};
  for (const Weighted& c : weighted) {
    auto fn = reinterpret_cast<QuantizeChunk>(dlsym(lib, c.symbol));
    if (!fn) {
      std::fprintf(stderr, "ggml_ref: %s has no %s\n", argv[1], c.symbol);
      return 2;
    }
    const qcast::Format f = qcast::Format::parse(c.format);
    const auto t = *qcast::kern::ggml_quant_of(f);
    const auto& lay = qcast::kern::ggml_quant_layout(t);
    std::int64_t blocks = 0, diff_blocks = 0, weighed = 0;
    for (int kind = 0; kind < 12; ++kind) {
      std::mt19937 rng(777u + static_cast<unsigned>(kind));
      const std::vector<float> x = make_inputs(kind, rows * cols, rng);
      // Column importances spread over four decades, as an imatrix's mean squares of activations are.
      std::vector<float> imp(static_cast<std::size_t>(cols));
      std::uniform_real_distribution<float> e(-2.0f, 2.0f);
      for (float& v : imp) v = std::pow(10.0f, e(rng));
      const std::size_t row_bytes = static_cast<std::size_t>(cols / lay.block * lay.bytes);
      std::vector<std::uint8_t> ref(static_cast<std::size_t>(rows) * row_bytes), mine(ref.size());
      fn(x.data(), ref.data(), rows, cols, imp.data());
      for (std::int64_t r = 0; r < rows; ++r)
        qcast::kern::ggml_quant_quantize(t, x.data() + r * cols, mine.data() + r * row_bytes, cols, imp.data());
      std::vector<std::uint8_t> plain(ref.size());  // without importance: must differ somewhere, or the test proves nothing
      qcast::kern::ggml_quant_quantize(t, x.data(), plain.data(), rows * cols);
      for (std::size_t b = 0; b < ref.size() / lay.bytes; ++b, ++blocks) {
        if (std::memcmp(ref.data() + b * lay.bytes, mine.data() + b * lay.bytes, lay.bytes) != 0 && diff_blocks++ < 3)
          std::printf("FAIL %s (importance) kind %d block %zu differs\n", c.format, kind, b);
        weighed += std::memcmp(plain.data() + b * lay.bytes, mine.data() + b * lay.bytes, lay.bytes) != 0;
      }
    }
    std::printf("%-10s %-22s %6lld blocks: %lld differ (importance-weighted; %lld differ from the unweighted blocks)\n", c.format,
                c.symbol, static_cast<long long>(blocks), static_cast<long long>(diff_blocks), static_cast<long long>(weighed));
    failures += diff_blocks > 0 || weighed == 0;
  }
  // The 32-block types' importance paths (quantize_row_q4_0_impl .. q5_1_impl), through qcast's packed layout and
  // its GGUF writer.
  const Case legacy[] = {{"q4_0_ggml", "quantize_q4_0", "", gg::GgmlType::Q4_0}, {"q4_1", "quantize_q4_1", "", gg::GgmlType::Q4_1},
                         {"q5_0", "quantize_q5_0", "", gg::GgmlType::Q5_0}, {"q5_1", "quantize_q5_1", "", gg::GgmlType::Q5_1}};
  for (const Case& c : legacy) {
    auto fn = reinterpret_cast<QuantizeChunk>(dlsym(lib, c.symbol));
    if (!fn) {
      std::fprintf(stderr, "ggml_ref: %s has no %s\n", argv[1], c.symbol);
      return 2;
    }
    const qcast::Format f = qcast::Format::parse(c.format);
    const auto& tr = gg::traits(c.type);
    std::int64_t blocks = 0, diff_blocks = 0, weighed = 0;
    for (int kind = 0; kind < 12; ++kind) {
      std::mt19937 rng(555u + static_cast<unsigned>(kind));
      const std::vector<float> x = make_inputs(kind, rows * cols, rng);
      std::vector<float> imp(static_cast<std::size_t>(cols));
      std::uniform_real_distribution<float> e(-2.0f, 2.0f);
      for (float& v : imp) v = std::pow(10.0f, e(rng));
      std::vector<std::uint8_t> ref(static_cast<std::size_t>(rows * cols / 32 * tr.bytes));
      fn(x.data(), ref.data(), rows, cols, imp.data());
      const gg::TensorData t = gg::make_tensor("x", qcast::kern::ggml_legacy_encode_weighted(f, x.data(), {rows, cols}, 2, imp.data()));
      const gg::TensorData plain = gg::make_tensor("x", x.data(), {rows, cols}, f);
      for (std::size_t b = 0; b < ref.size() / tr.bytes; ++b, ++blocks) {
        if (std::memcmp(ref.data() + b * tr.bytes, t.data.data() + b * tr.bytes, tr.bytes) != 0 && diff_blocks++ < 3)
          std::printf("FAIL %s (importance) kind %d block %zu differs\n", c.format, kind, b);
        weighed += std::memcmp(plain.data.data() + b * tr.bytes, t.data.data() + b * tr.bytes, tr.bytes) != 0;
      }
    }
    std::printf("%-10s %-22s %6lld blocks: %lld differ (importance-weighted; %lld differ from the unweighted blocks)\n", c.format,
                c.symbol, static_cast<long long>(blocks), static_cast<long long>(diff_blocks), static_cast<long long>(weighed));
    failures += diff_blocks > 0 || weighed == 0;
  }
  dlclose(lib);
  return failures ? 1 : 0;
}
