// Dequantization of ggml block types against blocks built by hand from the block layouts of ggml-common.h.
// The expected values are computed here per element from the layout (which byte and bit holds element e),
// independently of the decoder's loop structure; scales of the K-quants are packed with the packing code
// of ggml's quantizers (quantize_row_q3_K / q4_K), not unpacked with the decoder's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "qcast/error.hpp"
#include "qcast/gguf.hpp"
#include "qcast/half.hpp"

using namespace qcast;
namespace gg = qcast::gguf;

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

void put_half(std::uint8_t* p, float v) {
  const std::uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
float get_half(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Runs the decoder on `nblocks` blocks of `t` and compares every element with expect(block, e) bit for bit.
template <class F>
void check(gg::GgmlType t, const std::vector<std::uint8_t>& data, int nblocks, F expect) {
  const auto& tr = gg::traits(t);
  ASSERT_EQ(data.size(), static_cast<std::size_t>(nblocks) * tr.bytes) << tr.name;
  std::vector<float> out(static_cast<std::size_t>(nblocks) * tr.block);
  gg::dequantize_row(t, data.data(), out.data(), static_cast<std::int64_t>(out.size()));
  for (int b = 0; b < nblocks; ++b)
    for (std::uint32_t e = 0; e < tr.block; ++e) {
      const float want = expect(data.data() + b * tr.bytes, static_cast<int>(e));
      const float got = out[b * tr.block + e];
      ASSERT_EQ(f32_bits(got), f32_bits(want)) << tr.name << " block " << b << " element " << e << ": " << got << " vs " << want;
    }
}

// The nibble of element e (0..31) in a 16-byte Q4_0-style array: low nibbles hold elements 0..15.
int nib32(const std::uint8_t* qs, int e) { return e < 16 ? (qs[e] & 15) : (qs[e - 16] >> 4); }

}  // namespace

TEST(GgufDequant, TypeTableMatchesGgmlCommon) {
  struct Row { gg::GgmlType t; const char* name; std::uint32_t block, bytes; };
  // sizeof(block_*) from ggml-common.h's static_asserts; QK_K = 256.
  for (const Row& r : {Row{gg::GgmlType::F32, "F32", 1, 4}, Row{gg::GgmlType::F16, "F16", 1, 2}, Row{gg::GgmlType::BF16, "BF16", 1, 2},
                       Row{gg::GgmlType::Q4_0, "Q4_0", 32, 2 + 16}, Row{gg::GgmlType::Q4_1, "Q4_1", 32, 4 + 16},
                       Row{gg::GgmlType::Q5_0, "Q5_0", 32, 2 + 4 + 16}, Row{gg::GgmlType::Q5_1, "Q5_1", 32, 4 + 4 + 16},
                       Row{gg::GgmlType::Q8_0, "Q8_0", 32, 2 + 32}, Row{gg::GgmlType::Q2_K, "Q2_K", 256, 4 + 16 + 64},
                       Row{gg::GgmlType::Q3_K, "Q3_K", 256, 2 + 64 + 32 + 12}, Row{gg::GgmlType::Q4_K, "Q4_K", 256, 4 + 12 + 128},
                       Row{gg::GgmlType::Q5_K, "Q5_K", 256, 4 + 12 + 128 + 32}, Row{gg::GgmlType::Q6_K, "Q6_K", 256, 2 + 16 + 192},
                       Row{gg::GgmlType::Q8_K, "Q8_K", 256, 4 + 256 + 32}, Row{gg::GgmlType::MXFP4, "MXFP4", 32, 1 + 16},
                       Row{gg::GgmlType::IQ4_XS, "IQ4_XS", 256, 2 + 2 + 4 + 128}, Row{gg::GgmlType::TQ2_0, "TQ2_0", 256, 2 + 64}}) {
    const gg::TypeTraits* t = gg::find_type(static_cast<std::uint32_t>(r.t));
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_STREQ(t->name, r.name);
    EXPECT_EQ(t->block, r.block) << r.name;
    EXPECT_EQ(t->bytes, r.bytes) << r.name;
  }
  EXPECT_EQ(gg::find_type(4), nullptr);  // Q4_2, removed from ggml
  EXPECT_EQ(gg::find_type(1000), nullptr);
  EXPECT_EQ(gg::type_name(static_cast<gg::GgmlType>(1000)), "type 1000");
}

TEST(GgufDequant, FloatTypes) {
  std::vector<std::uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0x00, 0x00, 0x01, 0x00};  // 1, -2, 0, smallest subnormal
  check(gg::GgmlType::F16, f16, 4, [](const std::uint8_t* p, int) {
    const std::uint16_t h = static_cast<std::uint16_t>(p[0] | (p[1] << 8));
    return h == 0x3C00 ? 1.0f : h == 0xC000 ? -2.0f : h == 0x0001 ? std::ldexp(1.0f, -24) : 0.0f;
  });
  std::vector<std::uint8_t> bf16 = {0x80, 0x3F, 0x40, 0xC0};  // 1, -3
  check(gg::GgmlType::BF16, bf16, 2, [](const std::uint8_t* p, int) { return p[0] == 0x80 ? 1.0f : -3.0f; });
}

TEST(GgufDequant, LegacyBlockTypes) {
  const int nb = 3;
  {  // Q4_0 {f16 d; qs[16]}: (q - 8) * d
    auto d = random_bytes(nb * 18, 1);
    for (int b = 0; b < nb; ++b) put_half(&d[b * 18], 0.03125f * (b + 1));
    check(gg::GgmlType::Q4_0, d, nb, [](const std::uint8_t* p, int e) { return static_cast<float>(nib32(p + 2, e) - 8) * get_half(p); });
  }
  {  // Q4_1 {f16 d; f16 m; qs[16]}: q * d + m
    auto d = random_bytes(nb * 20, 2);
    for (int b = 0; b < nb; ++b) put_half(&d[b * 20], 0.1f * (b + 1)), put_half(&d[b * 20 + 2], -0.7f + b);
    check(gg::GgmlType::Q4_1, d, nb, [](const std::uint8_t* p, int e) {
      return static_cast<float>(nib32(p + 4, e)) * get_half(p) + get_half(p + 2);
    });
  }
  {  // Q5_0 {f16 d; u32 qh; qs[16]}: bit e of qh is bit 4 of element e; (q - 16) * d
    auto d = random_bytes(nb * 22, 3);
    for (int b = 0; b < nb; ++b) put_half(&d[b * 22], -0.25f * (b + 1));
    check(gg::GgmlType::Q5_0, d, nb, [](const std::uint8_t* p, int e) {
      std::uint32_t qh;
      std::memcpy(&qh, p + 2, 4);
      const int q = nib32(p + 6, e) | static_cast<int>(((qh >> e) & 1u) << 4);
      return static_cast<float>(q - 16) * get_half(p);
    });
  }
  {  // Q5_1 {f16 d; f16 m; u32 qh; qs[16]}: q * d + m
    auto d = random_bytes(nb * 24, 4);
    for (int b = 0; b < nb; ++b) put_half(&d[b * 24], 0.5f + b), put_half(&d[b * 24 + 2], 3.0f - b);
    check(gg::GgmlType::Q5_1, d, nb, [](const std::uint8_t* p, int e) {
      std::uint32_t qh;
      std::memcpy(&qh, p + 4, 4);
      const int q = nib32(p + 8, e) | static_cast<int>(((qh >> e) & 1u) << 4);
      return static_cast<float>(q) * get_half(p) + get_half(p + 2);
    });
  }
  {  // Q8_0 {f16 d; i8 qs[32]}: q * d
    auto d = random_bytes(nb * 34, 5);
    for (int b = 0; b < nb; ++b) put_half(&d[b * 34], 0.0078125f * (b + 2));
    check(gg::GgmlType::Q8_0, d, nb, [](const std::uint8_t* p, int e) {
      return static_cast<float>(static_cast<std::int8_t>(p[2 + e])) * get_half(p);
    });
  }
  {  // MXFP4 {u8 e8m0; qs[16]}: e2m1(q) * 2^(e - 127), e2m1 = {0, .5, 1, 1.5, 2, 3, 4, 6} with a sign bit
    auto d = random_bytes(nb * 17, 6);
    d[0] = 127, d[17] = 1, d[34] = 200;  // 2^0, 2^-126, 2^73
    check(gg::GgmlType::MXFP4, d, nb, [](const std::uint8_t* p, int e) {
      const float e2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
      const int q = nib32(p + 1, e);
      // ggml's value table is int8 (the e2m1 values doubled): code 8 (-0) decodes to +0.
      const float v = (q & 7) == 0 ? 0.0f : (q & 8 ? -1.0f : 1.0f) * e2m1[q & 7];
      return static_cast<float>(std::ldexp(static_cast<double>(v), p[0] - 127));
    });
  }
}

TEST(GgufDequant, KQuants) {
  const int nb = 2;
  {  // Q2_K {scales[16]; qs[64]; f16 d; f16 dmin}
    auto d = random_bytes(nb * 84, 11);
    for (int b = 0; b < nb; ++b) put_half(&d[b * 84 + 80], 0.125f + b), put_half(&d[b * 84 + 82], 0.0625f * (b + 1));
    check(gg::GgmlType::Q2_K, d, nb, [](const std::uint8_t* p, int e) {
      const int half = e / 128, r = e % 128, j = r / 32, l = r % 32;
      const int q = (p[16 + 32 * half + l] >> (2 * j)) & 3;
      const std::uint8_t sc = p[e / 16];
      return get_half(p + 80) * static_cast<float>(sc & 15) * static_cast<float>(q) - get_half(p + 82) * static_cast<float>(sc >> 4);
    });
  }
  {  // Q3_K {hmask[32]; qs[64]; scales[12]; f16 d}: sixteen 6-bit scales - 32, packed as ggml's quantizer does
    auto d = random_bytes(nb * 110, 12);
    std::vector<int> want_scales(nb * 16);
    std::mt19937 rng(13);
    for (int b = 0; b < nb; ++b) {
      std::uint8_t* sc = &d[b * 110 + 96];
      std::memset(sc, 0, 12);
      for (int j = 0; j < 16; ++j) {
        const int l = static_cast<int>(rng() % 64);
        want_scales[b * 16 + j] = l - 32;
        if (j < 8) sc[j] = static_cast<std::uint8_t>(l & 0xF);
        else sc[j - 8] |= static_cast<std::uint8_t>((l & 0xF) << 4);
        sc[j % 4 + 8] |= static_cast<std::uint8_t>((l >> 4) << (2 * (j / 4)));
      }
      put_half(&d[b * 110 + 108], 0.01f * (b + 1));
    }
    int block = 0;
    const std::uint8_t* base = d.data();
    check(gg::GgmlType::Q3_K, d, nb, [&](const std::uint8_t* p, int e) {
      block = static_cast<int>((p - base) / 110);
      const int half = e / 128, r = e % 128, j = r / 32, l = r % 32;
      const int lo = (p[32 + 32 * half + l] >> (2 * j)) & 3;
      const bool hi = (p[l] >> (4 * half + j)) & 1;
      const int q = lo - (hi ? 0 : 4);
      return get_half(p + 108) * static_cast<float>(want_scales[block * 16 + e / 16]) * static_cast<float>(q);
    });
  }
  // Q4_K / Q5_K: eight 6-bit scales and mins packed into 12 bytes as ggml's quantizer does.
  auto pack_k4 = [](std::uint8_t* s, const int* ls, const int* lm) {
    std::memset(s, 0, 12);
    for (int j = 0; j < 8; ++j) {
      if (j < 4) {
        s[j] = static_cast<std::uint8_t>(ls[j]);
        s[j + 4] = static_cast<std::uint8_t>(lm[j]);
      } else {
        s[j + 4] = static_cast<std::uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
        s[j - 4] |= static_cast<std::uint8_t>((ls[j] >> 4) << 6);
        s[j] |= static_cast<std::uint8_t>((lm[j] >> 4) << 6);
      }
    }
  };
  for (const bool five : {false, true}) {
    const std::uint32_t bytes = five ? 176 : 144;
    auto d = random_bytes(nb * bytes, five ? 15 : 14);
    std::mt19937 rng(16);
    std::vector<int> ls(nb * 8), lm(nb * 8);
    for (int b = 0; b < nb; ++b) {
      for (int j = 0; j < 8; ++j) ls[b * 8 + j] = static_cast<int>(rng() % 64), lm[b * 8 + j] = static_cast<int>(rng() % 64);
      pack_k4(&d[b * bytes + 4], &ls[b * 8], &lm[b * 8]);
      put_half(&d[b * bytes], 0.015625f * (b + 1));
      put_half(&d[b * bytes + 2], 0.03f * (b + 1));
    }
    const std::uint8_t* base = d.data();
    check(five ? gg::GgmlType::Q5_K : gg::GgmlType::Q4_K, d, nb, [&](const std::uint8_t* p, int e) {
      const int block = static_cast<int>((p - base) / bytes), s = e / 32, c = e / 64, r = e % 64;
      const std::uint8_t* qs = p + (five ? 48 : 16);
      int q = r < 32 ? (qs[32 * c + r] & 15) : (qs[32 * c + r - 32] >> 4);
      if (five && ((p[16 + e % 32] >> s) & 1)) q += 16;
      return get_half(p) * static_cast<float>(ls[block * 8 + s]) * static_cast<float>(q) -
             get_half(p + 2) * static_cast<float>(lm[block * 8 + s]);
    });
  }
  {  // Q6_K {ql[128]; qh[64]; i8 scales[16]; f16 d}
    auto d = random_bytes(nb * 210, 17);
    for (int b = 0; b < nb; ++b) put_half(&d[b * 210 + 208], -0.005f * (b + 1));
    check(gg::GgmlType::Q6_K, d, nb, [](const std::uint8_t* p, int e) {
      const int half = e / 128, r = e % 128, k = r / 32, l = r % 32;
      const std::uint8_t qlb = p[64 * half + l + 32 * (k % 2)];
      const int lo = k < 2 ? (qlb & 15) : (qlb >> 4);
      const int hi = (p[128 + 32 * half + l] >> (2 * k)) & 3;
      const int sc = static_cast<std::int8_t>(p[192 + 8 * half + l / 16 + 2 * k]);
      return get_half(p + 208) * static_cast<float>(sc) * static_cast<float>((lo | (hi << 4)) - 32);
    });
  }
  {  // Q8_K {f32 d; i8 qs[256]; i16 bsums[16]}
    auto d = random_bytes(nb * 292, 18);
    for (int b = 0; b < nb; ++b) {
      const float s = 0.001f * (b + 3);
      std::memcpy(&d[b * 292], &s, 4);
    }
    check(gg::GgmlType::Q8_K, d, nb, [](const std::uint8_t* p, int e) {
      float s;
      std::memcpy(&s, p, 4);
      return s * static_cast<float>(static_cast<std::int8_t>(p[4 + e]));
    });
  }
}

TEST(GgufDequant, UnsupportedTypesAreRefusedByName) {
  for (gg::GgmlType t : {gg::GgmlType::IQ2_XXS, gg::GgmlType::IQ4_XS, gg::GgmlType::TQ1_0, gg::GgmlType::TQ2_0,
                         gg::GgmlType::Q8_1}) {
    const auto& tr = gg::traits(t);
    std::vector<std::uint8_t> blk(tr.bytes, 0);
    std::vector<float> out(tr.block);
    try {
      gg::dequantize_row(t, blk.data(), out.data(), tr.block);
      ADD_FAILURE() << tr.name << " was decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(tr.name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos) << e.what();
    }
  }
}
