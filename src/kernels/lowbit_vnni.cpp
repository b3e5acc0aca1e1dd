// The tiled low-bit kernel for x86 CPUs with AVX-512 VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later):
// 16 weight rows at a time, one row per 32-bit lane, as LowbitMatrix::tiles lays them out (lowbit.hpp).
// Each vpdpbusd multiplies 4 unsigned weight codes by 4 signed activation codes broadcast to every lane
// and adds the 4 products to the lane's running sum: 64 exact multiply-adds per instruction, and the
// block's integer sum ends in the row's own lane, so no lanes are ever summed across. The codes carry an
// offset (Q8_0 +128, Q4_0 +8) that comes back out exactly as -offset * the activation block's code sum.
// Per block, each lane then does what the scalar reference does, in the same order and roundings
// (float(isum) * d_w * d_x added to the row's sum; Q4_MIN's - c_w * d_x * float(xsum) inside the same
// term), so the kernel equals lowbit_gemm_reference bit for bit for every tile, batch and thread count.
// The Q8_S16 types keep the two half blocks' sums apart (each has its own scale) and add their terms in
// turn, as the reference does.
//
// Highway 1.0.3 (Debian 12) cannot express this: its AVX3_DL target's attribute string names avxvnni but
// not avx512vnni, so the intrinsic does not compile inside it. The functions here name their own target
// and lowbit_tiles_supported() checks the CPU once.
#include <cstdint>
#include <cstring>

#include "kernels/lowbit_simd.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define QCAST_LOWBIT_VNNI 1
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns inside its own conversion intrinsics (_mm512_cvtepi32_ps and _mm512_cvtph_ps pass
// _mm512_undefined_ps() as the source of masked-off lanes, and no lane is masked off here): a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace qcast::kern {

#ifdef QCAST_LOWBIT_VNNI
namespace {

#define QCAST_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))

// Four activation codes in every lane (a lambda would not inherit the target attribute).
QCAST_VNNI_TARGET inline __m512i Broadcast4(const std::int8_t* q) {
  std::int32_t v;
  std::memcpy(&v, q, 4);
  return _mm512_set1_epi32(v);
}

template <LowbitType kType>
constexpr bool kS16 = kType == LowbitType::Q8_S16 || kType == LowbitType::Q8_S16_MIN;
template <LowbitType kType>
constexpr std::size_t kCodeBytes = kType == LowbitType::Q8_0 || kS16<kType> ? 512 : 256;

// Rows 16 g .. 16 g + 15 against activation rows t .. t + C - 1.
template <LowbitType kType, int C>
QCAST_VNNI_TARGET void Tile(const LowbitMatrix& w, const Q8Activations& x, std::int64_t g, std::int64_t t, float* y) {
  const std::int64_t nb = w.cols / kLowbitBlock;
  const std::size_t chunk = lowbit_tile_bytes(kType);
  const std::uint8_t* p = w.tiles.data() + static_cast<std::size_t>(g * nb) * chunk;
  const std::int8_t* xq[C];
  const float* xd[C];
  const std::int32_t* xs[C];
  const std::int32_t* xs16[C];
  for (int c = 0; c < C; ++c) {
    xq[c] = x.q.data() + (t + c) * w.cols;
    xd[c] = x.d.data() + (t + c) * nb;
    xs[c] = x.sum.data() + (t + c) * nb;
    xs16[c] = x.sum16.data() + (t + c) * nb;
  }
  constexpr std::int32_t kOffset = kType == LowbitType::Q8_0 || kS16<kType> ? 128 : kType == LowbitType::Q4_0 ? 8 : 0;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (std::int64_t b = 0; b < nb; ++b, p += chunk) {
    _mm_prefetch(reinterpret_cast<const char*>(p + 4 * chunk), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + 4 * chunk + 256), _MM_HINT_T0);
    // Two running sums per token, so that consecutive vpdpbusd do not wait on each other. They are integer
    // sums, so splitting them cannot change a bit, except for the Q8_S16 types, whose halves (s0: elements
    // 0 .. 15, s1: 16 .. 31) each have their own scale.
    __m512i s0[C], s1[C];
    if constexpr (kS16<kType>) {
      for (int c = 0; c < C; ++c) {
        s0[c] = _mm512_set1_epi32(-kOffset * xs16[c][b]);
        s1[c] = _mm512_set1_epi32(-kOffset * (xs[c][b] - xs16[c][b]));
      }
      for (int j = 0; j < 4; ++j) {
        const __m512i v0 = _mm512_loadu_si512(p + 64 * j), v1 = _mm512_loadu_si512(p + 64 * (j + 4));
        for (int c = 0; c < C; ++c) {
          s0[c] = _mm512_dpbusd_epi32(s0[c], v0, Broadcast4(xq[c] + b * kLowbitBlock + 4 * j));
          s1[c] = _mm512_dpbusd_epi32(s1[c], v1, Broadcast4(xq[c] + b * kLowbitBlock + 16 + 4 * j));
        }
      }
    } else {
      for (int c = 0; c < C; ++c) {
        s0[c] = _mm512_set1_epi32(-kOffset * xs[c][b]);
        s1[c] = _mm512_setzero_si512();
      }
      if constexpr (kType == LowbitType::Q8_0) {
        for (int j = 0; j < 8; j += 2) {
          const __m512i v0 = _mm512_loadu_si512(p + 64 * j), v1 = _mm512_loadu_si512(p + 64 * (j + 1));
          for (int c = 0; c < C; ++c) {
            s0[c] = _mm512_dpbusd_epi32(s0[c], v0, Broadcast4(xq[c] + b * kLowbitBlock + 4 * j));
            s1[c] = _mm512_dpbusd_epi32(s1[c], v1, Broadcast4(xq[c] + b * kLowbitBlock + 4 * j + 4));
          }
        }
      } else {
        for (int j = 0; j < 4; ++j) {
          const __m512i v = _mm512_loadu_si512(p + 64 * j);
          const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
          for (int c = 0; c < C; ++c) {
            s0[c] = _mm512_dpbusd_epi32(s0[c], lo, Broadcast4(xq[c] + b * kLowbitBlock + 4 * j));
            s1[c] = _mm512_dpbusd_epi32(s1[c], hi, Broadcast4(xq[c] + b * kLowbitBlock + 16 + 4 * j));
          }
        }
      }
    }
    const std::uint8_t* sp = p + kCodeBytes<kType>;
    if constexpr (kS16<kType>) {
      const __m512 d0 = _mm512_loadu_ps(sp), d1 = _mm512_loadu_ps(sp + 64);
      for (int c = 0; c < C; ++c) {
        const __m512 dx = _mm512_set1_ps(xd[c][b]);
        __m512 t0 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s0[c]), d0), dx);
        __m512 t1 = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1[c]), d1), dx);
        if constexpr (kType == LowbitType::Q8_S16_MIN) {
          const __m512 c0 = _mm512_loadu_ps(sp + 128), c1 = _mm512_loadu_ps(sp + 192);
          t0 = _mm512_sub_ps(t0, _mm512_mul_ps(_mm512_mul_ps(c0, dx), _mm512_set1_ps(static_cast<float>(xs16[c][b]))));
          t1 = _mm512_sub_ps(t1, _mm512_mul_ps(_mm512_mul_ps(c1, dx), _mm512_set1_ps(static_cast<float>(xs[c][b] - xs16[c][b]))));
        }
        acc[c] = _mm512_add_ps(_mm512_add_ps(acc[c], t0), t1);
      }
    } else if constexpr (kType == LowbitType::Q4_MIN) {
      const __m512 dw = _mm512_loadu_ps(sp), cw = _mm512_loadu_ps(sp + 64);
      for (int c = 0; c < C; ++c) {
        const __m512 dx = _mm512_set1_ps(xd[c][b]);
        const __m512 prod = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0[c], s1[c])), dw), dx);
        const __m512 cterm = _mm512_mul_ps(_mm512_mul_ps(cw, dx), _mm512_set1_ps(static_cast<float>(xs[c][b])));
        acc[c] = _mm512_add_ps(acc[c], _mm512_sub_ps(prod, cterm));
      }
    } else {
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sp)));
      for (int c = 0; c < C; ++c) {
        const __m512 term = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0[c], s1[c])), dw);
        acc[c] = _mm512_add_ps(acc[c], _mm512_mul_ps(term, _mm512_set1_ps(xd[c][b])));
      }
    }
  }
  const std::int64_t valid = w.rows - 16 * g;  // the last group may be padded
  const __mmask16 keep = valid >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << valid) - 1u);
  for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(y + (t + c) * w.rows + 16 * g, keep, acc[c]);
}

template <LowbitType kType>
void Groups(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t g0, std::int64_t g1) {
  // Group-major: a group's blocks (16 rows) stay in the caches while every token passes over them.
  for (std::int64_t g = g0; g < g1; ++g) {
    std::int64_t t = 0;
    for (; t + 8 <= x.rows; t += 8) Tile<kType, 8>(w, x, g, t, y);
    if (t + 4 <= x.rows) Tile<kType, 4>(w, x, g, t, y), t += 4;
    if (t + 2 <= x.rows) Tile<kType, 2>(w, x, g, t, y), t += 2;
    if (t < x.rows) Tile<kType, 1>(w, x, g, t, y);
  }
}

}  // namespace

bool lowbit_tiles_supported() {
  // cpuid and xgetbv by hand: clang 14's __builtin_cpu_supports does not know "avx512vnni".
  static const bool yes = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool fma = (c >> 12) & 1u, osxsave = (c >> 27) & 1u, f16c = (c >> 29) & 1u;
    if (!fma || !osxsave || !f16c) return false;
    unsigned xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 0xE6u) != 0xE6u) return false;  // the OS saves SSE, AVX and all AVX-512 state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool f = (b >> 16) & 1u, bw = (b >> 30) & 1u, vl = (b >> 31) & 1u, vnni = (c >> 11) & 1u;
    return f && bw && vl && vnni;
  }();
  return yes;
}

void lowbit_tiled_groups(const LowbitMatrix& w, const Q8Activations& x, float* y, std::int64_t g0, std::int64_t g1) {
  if (w.type == LowbitType::Q8_0)
    Groups<LowbitType::Q8_0>(w, x, y, g0, g1);
  else if (w.type == LowbitType::Q4_0)
    Groups<LowbitType::Q4_0>(w, x, y, g0, g1);
  else if (w.type == LowbitType::Q4_MIN)
    Groups<LowbitType::Q4_MIN>(w, x, y, g0, g1);
  else if (w.type == LowbitType::Q8_S16)
    Groups<LowbitType::Q8_S16>(w, x, y, g0, g1);
  else
    Groups<LowbitType::Q8_S16_MIN>(w, x, y, g0, g1);
}

#else

bool lowbit_tiles_supported() { return false; }
void lowbit_tiled_groups(const LowbitMatrix&, const Q8Activations&, float*, std::int64_t, std::int64_t) {}

#endif

}  // namespace qcast::kern
