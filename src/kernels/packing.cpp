// Bit packing of element codes into the LSB-first bitstream of Encoded::codes (docs/packed-layout.md).
#include <algorithm>
#include <atomic>
#include <cstring>

#include "kernels/simd.hpp"

namespace qcast::kern {

namespace {
inline void or_byte(std::uint8_t* p, std::uint8_t v) {
  if (v) std::atomic_ref<std::uint8_t>(*p).fetch_or(v, std::memory_order_relaxed);
}
}  // namespace

void pack_codes(std::uint8_t* bytes, std::int64_t start, std::int64_t n, int bits, const std::uint16_t* codes) {
  if (n <= 0) return;
  if (bits == 8) {
    std::uint8_t* o = bytes + start;
    for (std::int64_t i = 0; i < n; ++i) o[i] = static_cast<std::uint8_t>(codes[i]);
    return;
  }
  if (bits == 16) {
    std::uint8_t* o = bytes + 2 * start;
    for (std::int64_t i = 0; i < n; ++i) {
      o[2 * i] = static_cast<std::uint8_t>(codes[i]);
      o[2 * i + 1] = static_cast<std::uint8_t>(codes[i] >> 8);
    }
    return;
  }
  if (bits == 4) {
    std::int64_t i = 0, pos = start;
    if (pos & 1) {
      or_byte(bytes + pos / 2, static_cast<std::uint8_t>(codes[0] << 4));
      i = 1;
      ++pos;
    }
    std::uint8_t* o = bytes + pos / 2;
    const std::int64_t pairs = (n - i) / 2;
    for (std::int64_t k = 0; k < pairs; ++k)
      o[k] = static_cast<std::uint8_t>(codes[i + 2 * k] | (codes[i + 2 * k + 1] << 4));
    i += 2 * pairs;
    if (i < n) or_byte(o + pairs, static_cast<std::uint8_t>(codes[i]));
    return;
  }
  if (bits == 6 && start % 4 == 0) {  // 4 codes -> 3 bytes
    std::uint8_t* o = bytes + start / 4 * 3;
    std::int64_t i = 0;
    for (; i + 4 <= n; i += 4, o += 3) {
      const std::uint32_t w = (codes[i] & 63u) | ((codes[i + 1] & 63u) << 6) | ((codes[i + 2] & 63u) << 12) | ((codes[i + 3] & 63u) << 18);
      o[0] = static_cast<std::uint8_t>(w);
      o[1] = static_cast<std::uint8_t>(w >> 8);
      o[2] = static_cast<std::uint8_t>(w >> 16);
    }
    if (i == n) return;
    start += i;
    n -= i;
    codes += i;
  }
  // General widths: a 64-bit accumulator; the first and last byte may be shared with neighbours.
  const std::uint64_t bitpos = static_cast<std::uint64_t>(start) * static_cast<std::uint64_t>(bits);
  std::uint8_t* o = bytes + bitpos / 8;
  const int off = static_cast<int>(bitpos % 8);
  const std::uint64_t mask = (1ull << bits) - 1;
  std::uint64_t acc = 0;
  int nacc = off;
  bool first = off != 0;
  for (std::int64_t i = 0; i < n; ++i) {
    acc |= (codes[i] & mask) << nacc;
    nacc += bits;
    while (nacc >= 8) {
      const auto v = static_cast<std::uint8_t>(acc);
      if (first) {
        or_byte(o, v);
        first = false;
      } else {
        *o = v;
      }
      ++o;
      acc >>= 8;
      nacc -= 8;
    }
  }
  if (nacc > 0) or_byte(o, static_cast<std::uint8_t>(acc & ((1u << nacc) - 1)));
}

void unpack_codes(const std::uint8_t* bytes, std::int64_t start, std::int64_t n, int bits, std::uint16_t* codes) {
  if (n <= 0) return;
  if (bits == 8) {
    const std::uint8_t* p = bytes + start;
    for (std::int64_t i = 0; i < n; ++i) codes[i] = p[i];
    return;
  }
  if (bits == 16) {
    const std::uint8_t* p = bytes + 2 * start;
    for (std::int64_t i = 0; i < n; ++i) codes[i] = static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
    return;
  }
  if (bits == 4) {
    std::int64_t i = 0, pos = start;
    if (pos & 1) {
      codes[0] = bytes[pos / 2] >> 4;
      i = 1;
      ++pos;
    }
    const std::uint8_t* p = bytes + pos / 2;
    const std::int64_t pairs = (n - i) / 2;
    for (std::int64_t k = 0; k < pairs; ++k) {
      codes[i + 2 * k] = p[k] & 15;
      codes[i + 2 * k + 1] = p[k] >> 4;
    }
    i += 2 * pairs;
    if (i < n) codes[i] = p[pairs] & 15;
    return;
  }
  const std::uint64_t bitpos = static_cast<std::uint64_t>(start) * static_cast<std::uint64_t>(bits);
  const std::uint8_t* p = bytes + bitpos / 8;
  const std::uint64_t mask = (1ull << bits) - 1;
  std::uint64_t raw = 0;  // buffered bits, LSB first
  int nraw = 0;
  int skip = static_cast<int>(bitpos % 8);  // leading bits of the first byte that belong to earlier codes
  for (std::int64_t i = 0; i < n; ++i) {
    while (nraw < bits + skip) {
      raw |= static_cast<std::uint64_t>(*p++) << nraw;
      nraw += 8;
    }
    if (skip) {
      raw >>= skip;
      nraw -= skip;
      skip = 0;
    }
    codes[i] = static_cast<std::uint16_t>(raw & mask);
    raw >>= bits;
    nraw -= bits;
  }
}

}  // namespace qcast::kern
