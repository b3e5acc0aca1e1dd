// IEEE binary16 and bfloat16 <-> float32 conversions, bit exact, round to nearest even.
#pragma once
#include <cstdint>
#include <cstring>

namespace qcast {

inline std::uint32_t f32_bits(float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bits_f32(std::uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

/// float -> bfloat16 bits, round to nearest even; NaN stays (quiet) NaN with its sign.
inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
inline float bf16_to_f32(std::uint16_t h) { return bits_f32(static_cast<std::uint32_t>(h) << 16); }

/// float -> IEEE half bits, round to nearest even, overflow to inf, NaN quiet.
inline std::uint16_t f32_to_f16(float f) {
  std::uint32_t u = f32_bits(f);
  std::uint32_t sign = (u >> 16) & 0x8000u;
  std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (a < 0x38800000u) {  // result is subnormal or zero: value = a * 2^24 rounded
    if (a < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < 2^-25: rounds to 0
    std::uint32_t e = a >> 23;
    std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
    std::uint32_t shift = 126 - e;  // 14 + (127-15) - e + 1 ... position so that unit = 2^-24
    std::uint32_t q = m >> shift;
    std::uint32_t rem = m & ((1u << shift) - 1);
    std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return static_cast<std::uint16_t>(sign | q);
  }
  std::uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);
  r -= (127u - 15u) << 23;
  return static_cast<std::uint16_t>(sign | (r >> 13));
}
inline float f16_to_f32(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return bits_f32(sign);
    float v = static_cast<float>(m) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

}  // namespace qcast
