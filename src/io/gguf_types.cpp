// The ggml type table and dequantization of ggml's block types, written from the block layouts in
// ggml-common.h and the reference decoders dequantize_row_* in ggml-quants.c (the k-quants: kernels/ggml_quants.cpp). The float expressions keep
// ggml's order of operations (e.g. Q4_K: (d * sc) * q - dmin * m), so every value is bit-identical to
// ggml's reference decoder. Fixed-size blocks are read with memcpy (no alignment assumed).
#include <cstring>

#include "qcast/error.hpp"
#include "qcast/gguf.hpp"
#include "qcast/half.hpp"
#include "qcast/kernels/ggml_quants.hpp"

namespace qcast::gguf {

namespace {

constexpr int kQK = 256;  // QK_K: the k-quant super-block

float half_at(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// E8M0 scale of MXFP4 halved (ggml's GGML_E8M0_TO_FP32_HALF): 2^(e - 128) for every e, because ggml's
// value table holds the e2m1 values doubled.
float e8m0_half(std::uint8_t e) {
  const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
  return bits_f32(bits);
}

const std::int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

void deq_f32(const std::uint8_t* p, float* y, std::int64_t n) { std::memcpy(y, p, static_cast<std::size_t>(n) * 4); }

void deq_f16(const std::uint8_t* p, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = half_at(p + 2 * i);
}

void deq_bf16(const std::uint8_t* p, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    y[i] = bf16_to_f32(h);
  }
}

// Q4_0 {f16 d; u8 qs[16]}: element j is the low nibble of qs[j], element j+16 the high nibble; (q - 8) * d.
void deq_q4_0(const std::uint8_t* b, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, b += 18, y += 32) {
    const float d = half_at(b);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
    }
  }
}

// Q4_1 {f16 d; f16 m; u8 qs[16]}: q * d + m.
void deq_q4_1(const std::uint8_t* b, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, b += 20, y += 32) {
    const float d = half_at(b), m = half_at(b + 2);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b[4 + j] & 0x0F) * d + m;
      y[j + 16] = static_cast<float>(b[4 + j] >> 4) * d + m;
    }
  }
}

// Q5_0 {f16 d; u8 qh[4] (bit j = 5th bit of element j, as a little-endian u32); u8 qs[16]}: (q - 16) * d.
void deq_q5_0(const std::uint8_t* b, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, b += 22, y += 32) {
    const float d = half_at(b);
    std::uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const std::uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
      const int x0 = static_cast<int>((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - 16;
      const int x1 = static_cast<int>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
      y[j] = static_cast<float>(x0) * d;
      y[j + 16] = static_cast<float>(x1) * d;
    }
  }
}

// Q5_1 {f16 d; f16 m; u8 qh[4]; u8 qs[16]}: q * d + m.
void deq_q5_1(const std::uint8_t* b, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, b += 24, y += 32) {
    const float d = half_at(b), m = half_at(b + 2);
    std::uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const std::uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
      const unsigned x0 = (qs[j] & 0x0Fu) | (((qh >> j) & 1u) << 4);
      const unsigned x1 = (qs[j] >> 4u) | (((qh >> (j + 16)) & 1u) << 4);
      y[j] = static_cast<float>(x0) * d + m;
      y[j + 16] = static_cast<float>(x1) * d + m;
    }
  }
}

// Q8_0 {f16 d; i8 qs[32]}: q * d.
void deq_q8_0(const std::uint8_t* b, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, b += 34, y += 32) {
    const float d = half_at(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
  }
}

// MXFP4 {u8 e; u8 qs[16]}: nibbles as Q4_0, values from ggml's doubled e2m1 table times 2^(e-128).
void deq_mxfp4(const std::uint8_t* b, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, b += 17, y += 32) {
    const float d = e8m0_half(b[0]);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(kMxfp4Values[b[1 + j] & 0x0F]) * d;
      y[j + 16] = static_cast<float>(kMxfp4Values[b[1 + j] >> 4]) * d;
    }
  }
}

// The k-quants and IQ4_NL decode in the kernels layer (kernels/ggml_quants.cpp), beside their quantizers.
template <kern::GgmlQuant T, int Block = kQK>
void deq_k(const std::uint8_t* b, float* y, std::int64_t nb) {
  kern::ggml_quant_dequantize(T, b, y, nb * Block);
}

// Q8_K {f32 d; i8 qs[256]; i16 bsums[16]}: q * d (bsums are a dot-product helper, not needed to decode).
void deq_q8_k(const std::uint8_t* b, float* y, std::int64_t nb) {
  for (std::int64_t i = 0; i < nb; ++i, b += 292, y += kQK) {
    float d;
    std::memcpy(&d, b, 4);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(static_cast<std::int8_t>(b[4 + j]));
  }
}

// ggml's type_traits: block sizes and bytes from ggml-common.h (QK_K = 256).
const TypeTraits kTypes[] = {
    {GgmlType::F32, "F32", 1, 4, deq_f32},
    {GgmlType::F16, "F16", 1, 2, deq_f16},
    {GgmlType::Q4_0, "Q4_0", 32, 18, deq_q4_0},
    {GgmlType::Q4_1, "Q4_1", 32, 20, deq_q4_1},
    {GgmlType::Q5_0, "Q5_0", 32, 22, deq_q5_0},
    {GgmlType::Q5_1, "Q5_1", 32, 24, deq_q5_1},
    {GgmlType::Q8_0, "Q8_0", 32, 34, deq_q8_0},
    {GgmlType::Q8_1, "Q8_1", 32, 36, nullptr},
    {GgmlType::Q2_K, "Q2_K", kQK, 84, deq_k<kern::GgmlQuant::Q2_K>},
    {GgmlType::Q3_K, "Q3_K", kQK, 110, deq_k<kern::GgmlQuant::Q3_K>},
    {GgmlType::Q4_K, "Q4_K", kQK, 144, deq_k<kern::GgmlQuant::Q4_K>},
    {GgmlType::Q5_K, "Q5_K", kQK, 176, deq_k<kern::GgmlQuant::Q5_K>},
    {GgmlType::Q6_K, "Q6_K", kQK, 210, deq_k<kern::GgmlQuant::Q6_K>},
    {GgmlType::Q8_K, "Q8_K", kQK, 292, deq_q8_k},
    {GgmlType::IQ2_XXS, "IQ2_XXS", kQK, 66, nullptr},
    {GgmlType::IQ2_XS, "IQ2_XS", kQK, 74, nullptr},
    {GgmlType::IQ3_XXS, "IQ3_XXS", kQK, 98, nullptr},
    {GgmlType::IQ1_S, "IQ1_S", kQK, 50, nullptr},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 18, deq_k<kern::GgmlQuant::IQ4_NL, 32>},
    {GgmlType::IQ3_S, "IQ3_S", kQK, 110, nullptr},
    {GgmlType::IQ2_S, "IQ2_S", kQK, 82, nullptr},
    {GgmlType::IQ4_XS, "IQ4_XS", kQK, 136, nullptr},
    {GgmlType::I8, "I8", 1, 1, nullptr},
    {GgmlType::I16, "I16", 1, 2, nullptr},
    {GgmlType::I32, "I32", 1, 4, nullptr},
    {GgmlType::I64, "I64", 1, 8, nullptr},
    {GgmlType::F64, "F64", 1, 8, nullptr},
    {GgmlType::IQ1_M, "IQ1_M", kQK, 56, nullptr},
    {GgmlType::BF16, "BF16", 1, 2, deq_bf16},
    {GgmlType::TQ1_0, "TQ1_0", kQK, 54, nullptr},
    {GgmlType::TQ2_0, "TQ2_0", kQK, 66, nullptr},
    {GgmlType::MXFP4, "MXFP4", 32, 17, deq_mxfp4},
    {GgmlType::NVFP4, "NVFP4", 64, 36, deq_k<kern::GgmlQuant::NVFP4, 64>},
    {GgmlType::Q1_0, "Q1_0", 128, 18, nullptr},
};

}  // namespace

const TypeTraits* find_type(std::uint32_t id) {
  for (const auto& t : kTypes)
    if (static_cast<std::uint32_t>(t.type) == id) return &t;
  return nullptr;
}

const TypeTraits& traits(GgmlType t) {
  const TypeTraits* p = find_type(static_cast<std::uint32_t>(t));
  if (!p) throw Error("unknown ggml type " + std::to_string(static_cast<std::uint32_t>(t)));
  return *p;
}

std::string type_name(GgmlType t) {
  const TypeTraits* p = find_type(static_cast<std::uint32_t>(t));
  return p ? std::string(p->name) : "type " + std::to_string(static_cast<std::uint32_t>(t));
}

void dequantize_row(GgmlType t, const std::uint8_t* data, float* out, std::int64_t n) {
  const TypeTraits& tt = traits(t);
  if (!tt.dequantize)
    throw Error(std::string("ggml type ") + tt.name +
                " is not supported by qcast (it decodes F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, Q8_K, IQ4_NL, MXFP4, NVFP4)");
  if (n % tt.block) throw Error(std::string("ggml ") + tt.name + ": " + std::to_string(n) + " elements are not whole blocks");
  if (n == 0) return;  // an empty tensor (a zero dimension): out may be null
  tt.dequantize(data, out, tt.block == 1 ? n : n / tt.block);
}

}  // namespace qcast::gguf
