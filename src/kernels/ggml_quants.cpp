// llama.cpp's quantizers that search (k-quants, IQ4_NL) or round their own way (MXFP4, NVFP4), with and without
// importance weights, and their decoders (see qcast/kernels/ggml_quants.hpp). Every float
// expression keeps ggml's operand order and types (an int level times a float is a float product; sums run
// in element order), and this file is compiled with -ffp-contract=off: one fused multiply-add would change
// a search's winner and with it the block's bytes.
#include "qcast/kernels/ggml_quants.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/half.hpp"
#include "qcast/kernels/thread_pool.hpp"
#include "qcast/quantize.hpp"

namespace qcast::kern {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: a group below it is all zero

const GgmlQuantLayout kLayouts[] = {
    {"Q2_K", 256, 2, 84, 16, 64, 16, 0, true},    // {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}
    {"Q3_K", 256, 3, 110, 0, 96, 16, 4, false},   // {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}
    {"Q4_K", 256, 4, 144, 16, 128, 32, 0, true},  // {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}
    {"Q5_K", 256, 5, 176, 16, 160, 32, 0, true},  // {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
    {"Q6_K", 256, 6, 210, 0, 192, 16, 32, false}, // {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}
    {"IQ4_NL", 32, 4, 18, 2, 16, 32, 0, false},   // {f16 d; u8 qs[16]}: codebook indices
    {"MXFP4", 32, 4, 17, 1, 16, 32, 0, false},    // {u8 e (E8M0); u8 qs[16]}: e2m1 codes
    {"NVFP4", 64, 4, 36, 4, 32, 16, 0, false},    // {u8 d[4] (UE4M3 per 16); u8 qs[32]}: e2m1 codes
};


// GGML_E8M0_TO_FP32_HALF: 2^(e - 128), subnormal for e < 2.
inline float e8m0_half(std::uint8_t e) {
  const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ggml's best_index_int8: the index of the codebook value nearest x (val sorted, n a power of two); x takes
// level i once it reaches the midpoint of val[i-1] and val[i] (compared doubled, exactly).
inline int best_index_int8(int n, const std::int8_t* val, float x) {
  const float x2 = x + x;
  int idx = 0;
  for (int step = n >> 1; step > 0; step >>= 1) {
    const int j = idx + step;
    idx = (x2 >= static_cast<float>(val[j - 1] + val[j])) ? j : idx;
  }
  return idx;
}

// ggml's nearest_int: round to nearest, ties to even, through the float adder (exact for |v| < 2^22).
inline int nearest_int(float v) {
  const float t = v + 12582912.0f;
  std::int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

inline float half_at(const std::uint8_t* p) {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
inline void put_half(std::uint8_t* p, float v) {
  const std::uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

// A scale and minimum for n values with levels 0..nmax: the weighted least-squares fit over a sweep of
// candidate inverse scales (ggml's make_qkx2_quants, and with clamp_first its make_qkx3_quants). Returns the scale; *neg_min = -minimum (>= 0).
// `clamp_first` is make_qkx3_quants' sweep (the importance-matrix quantizers'): the scaled value is clamped
// to [0, nmax] before it is rounded, where make_qkx2_quants rounds first, since the best fit so far can put
// the minimum at or near the maximum and the scaled value can be inf, NaN or beyond nearest_int's range.
float fit_scale_min(int n, int nmax, const float* x, const float* w, std::uint8_t* L, float* neg_min, float rmin, float rdelta,
                    int nstep, bool use_mad, bool clamp_first = false) {
  std::uint8_t Laux[32];
  float mn = x[0], mx = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -mn;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (mx - mn);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - mn));
    L[i] = static_cast<std::uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + mn - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += w[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const float v = iscale * (x[i] - mn);
      const int l = clamp_first ? (v > 0 ? nearest_int(std::min(v, static_cast<float>(nmax))) : 0)
                                : std::max(0, std::min(nmax, nearest_int(v)));
      Laux[i] = static_cast<std::uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += w[i] * diff;
      }
      if (cur_error < best_error) {
        std::memcpy(L, Laux, static_cast<std::size_t>(n));
        best_error = cur_error;
        scale = this_scale;
        mn = this_min;
      }
    }
  }
  *neg_min = -mn;
  return scale;
}

// The value of largest magnitude (the first one, as ggml keeps it), or false, with every level 0, when the
// whole block is below GROUP_MAX_EPS: the opening of make_qx_quants and make_q3_quants.
bool signed_max_or_zero(int n, const float* x, std::int8_t* L, float& mx) {
  float amax = 0;
  mx = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      mx = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return false;
  }
  return true;
}

// A symmetric scale for n values with signed levels -nmax..nmax-1 (stored + nmax), weighted by `qw` or, without
// it, by x^2: ggml's make_qx_quants with rmse_type 1 (Q6_K, Q3_K's importance path), a sweep of 18 scales.
float fit_scale_sym_sweep(int n, int nmax, const float* x, std::int8_t* L, const float* qw = nullptr) {
  float mx;
  if (!signed_max_or_zero(n, x, L, mx)) return 0.0f;
  const float fn = static_cast<float>(nmax);
  auto level = [&](float iscale, float v) { return std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * v))); };
  float iscale = static_cast<float>(-nmax) / mx;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = level(iscale, x[i]);
    L[i] = static_cast<std::int8_t>(l + nmax);
    const float w = qw ? qw[i] : x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(fn + 0.1f * static_cast<float>(is)) / mx;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = level(iscale, x[i]);
      const float w = qw ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(nmax + level(iscale, x[i]));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// A symmetric scale for n values with levels -nmax..nmax-1, refined one level at a time (ggml's
// make_q3_quants with do_rmse, Q3_K): up to 5 passes that move single levels while the fit improves.
float fit_scale_sym_refine(int n, int nmax, const float* x, std::int8_t* L) {
  float mx;
  if (!signed_max_or_zero(n, x, L, mx)) return 0.0f;
  const float iscale = static_cast<float>(-nmax) / mx;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = static_cast<std::int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
        const int new_l = std::max(-nmax, std::min(nmax - 1, nearest_int(x[i] * sl2 / slx)));
        if (new_l != L[i]) {
          slx += w * x[i] * static_cast<float>(new_l);
          sl2 += w * static_cast<float>(new_l) * static_cast<float>(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<std::int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ggml's make_qp_quants: a positive scale for n non-negative values (a block's sub-block scales or minimums)
// with levels 0..nmax under weights qw: 8 trial scales around nmax / max, then single-level refinement.
float fit_scale_positive(int n, int nmax, const float* x, std::uint8_t* L, const float* qw) {
  float mx = 0;
  for (int i = 0; i < n; ++i) mx = mx > x[i] ? mx : x[i];
  if (mx < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / mx;
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(L[i]);
    best_mse += qw[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * static_cast<float>(is) + static_cast<float>(nmax)) / mx;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
      const float diff = x[i] - scale_is * static_cast<float>(l);
      mse += qw[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = static_cast<std::uint8_t>(l);
    sumlx += qw[i] * x[i] * static_cast<float>(l);
    suml2 += qw[i] * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = qw[i];
      float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
      float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
      if (slx > 0 && sl2 > 0) {
        const int new_l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (new_l != L[i]) {
          slx += w * x[i] * static_cast<float>(new_l);
          sl2 += w * static_cast<float>(new_l) * static_cast<float>(new_l);
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<std::uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// The 6-bit scale and minimum of sub-block j of Q4_K / Q5_K from their 12 packed bytes (get_scale_min_k4).
inline void scale_min_k4(int j, const std::uint8_t* q, int& sc, int& mn) {
  if (j < 4) {
    sc = q[j] & 63;
    mn = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The signed 6-bit scale of sub-block j of Q3_K (stored + 32, low 4 bits in bytes 0..7, high 2 in 8..11).
inline int scale_q3k(int j, const std::uint8_t* s) {
  int sc = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
  sc |= ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
  return sc - 32;
}

// Q2_K and Q4_K / Q5_K share a shape: per sub-block a (scale, min) fit, then both quantized against
// their maxima into `sbits`-bit integers under fp16 d / dmin, then every level recomputed from the rounded
// scales. Only the packing of the sub-block integers differs (4 + 4 bits per byte, or get_scale_min_k4).
// With an importance vector qw (quantize_row_q2_K_impl): each sub-block's fit weighted by
// qw * sqrt(sigma2 + x^2), and the sixteen scales and minimums themselves fitted (fit_scale_positive) under the
// sub-blocks' total weights instead of scaled to their maximum.
void quantize_q2k_weighted(const float* x, std::uint8_t* y, const float* qw) {
  std::uint8_t L[kSuperBlock], Ls[16], Lm[16];
  float mins[16], scales[16], w[16], sw[16];
  float sumx2 = 0;
  for (int j = 0; j < kSuperBlock; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = sumx2 / kSuperBlock;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) w[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    sw[j] = 0;
    for (int l = 0; l < 16; ++l) sw[j] += w[l];
    scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.9f, 0.05f, 36, false, true);
  }
  put_half(y + 80, fit_scale_positive(16, 15, scales, Ls, sw));
  put_half(y + 82, fit_scale_positive(16, 15, mins, Lm, sw));
  const float dm = half_at(y + 80), mm = half_at(y + 82);
  for (int j = 0; j < 16; ++j) y[j] = static_cast<std::uint8_t>(Ls[j] | (Lm[j] << 4));
  for (int j = 0; j < 16; ++j) {
    const float d = dm * static_cast<float>(y[j] & 0xF);
    if (d == 0) continue;
    const float m = mm * static_cast<float>(y[j] >> 4);
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<std::uint8_t>(std::max(0, std::min(3, nearest_int((x[16 * j + i] + m) / d))));
  }
  ggml_quant_pack_levels(GgmlQuant::Q2_K, L, y);
}

void quantize_q2k(const float* x, std::uint8_t* y, const float* qw) {
  if (qw) return quantize_q2k_weighted(x, y, qw);
  std::uint8_t L[kSuperBlock];
  float mins[16], scales[16], w[16];
  std::uint8_t* sc = y;  // scales[16]
  std::uint8_t* qs = y + 16;
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
    scales[j] = fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float q4scale = 15.f;
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<std::uint8_t>(nearest_int(iscale * scales[j]));
    put_half(y + 80, max_scale / q4scale);
  } else {
    for (int j = 0; j < 16; ++j) sc[j] = 0;
    put_half(y + 80, 0.f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<std::uint8_t>(sc[j] | (nearest_int(iscale * mins[j]) << 4));
    put_half(y + 82, max_min / q4scale);
  } else {
    put_half(y + 82, 0.f);
  }
  const float d_all = half_at(y + 80), dmin_all = half_at(y + 82);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc[j] & 0xF);
    if (d == 0) continue;
    const float dm = dmin_all * static_cast<float>(sc[j] >> 4);
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<std::uint8_t>(std::max(0, std::min(3, nearest_int((x[16 * j + i] + dm) / d))));
  }
  for (int j = 0; j < kSuperBlock; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q3_K's sixteen 6-bit scale codes (0..63, the signed scale + 32): low 4 bits in bytes 0..7 (two per byte),
// high 2 bits in bytes 8..11.
void put_scales_q3k(std::uint8_t* sc, const int* codes) {
  std::memset(sc, 0, 12);
  for (int j = 0; j < 16; ++j) {
    int l = codes[j];
    if (j < 8)
      sc[j] = static_cast<std::uint8_t>(l & 0xF);
    else
      sc[j - 8] = static_cast<std::uint8_t>(sc[j - 8] | ((l & 0xF) << 4));
    l >>= 4;
    sc[j % 4 + 8] = static_cast<std::uint8_t>(sc[j % 4 + 8] | (l << (2 * (j / 4))));
  }
}

// Q3_K's scales as quantize_row_q3_K_ref picks them: each sub-block refined alone (levels into L), the block
// scale from the largest sub-block scale. Returns d.
float q3k_scales_ref(const float* x, std::int8_t* L, std::uint8_t* sc) {
  float scales[16], max_scale = 0, amax = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_scale_sym_refine(16, 4, x + 16 * j, L + 16 * j);
    const float a = std::fabs(scales[j]);
    if (a > amax) {
      amax = a;
      max_scale = scales[j];
    }
  }
  int codes[16] = {};
  if (max_scale == 0) {
    put_scales_q3k(sc, codes);
    return 0.f;
  }
  const float iscale = -32.f / max_scale;
  for (int j = 0; j < 16; ++j) {
    // ggml stores nearest_int's result in an int8 before clamping (|value| <= 32 here, so no wrap).
    const int l = static_cast<std::int8_t>(nearest_int(iscale * scales[j]));
    codes[j] = std::max(-32, std::min(31, l)) + 32;
  }
  put_scales_q3k(sc, codes);
  return 1 / iscale;
}

// quantize_row_q3_K_impl: sub-blocks fitted with weights qw * sqrt(sigma2 + x^2), then their sixteen scales
// fitted as 6-bit signed integers under the sub-blocks' total weights. Returns d.
float q3k_scales_weighted(const float* x, std::int8_t* L, std::uint8_t* sc, const float* qw) {
  float sumx2 = 0, w[16], sw[16], scales[16];
  for (int j = 0; j < kSuperBlock; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = 2 * sumx2 / kSuperBlock;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) w[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 16; ++l) sumw += w[l];
    sw[j] = sumw;
    scales[j] = fit_scale_sym_sweep(16, 4, x + 16 * j, L + 16 * j, w);
  }
  std::int8_t Ls[16];
  const float d_block = fit_scale_sym_sweep(16, 32, scales, Ls, sw);
  int codes[16];
  for (int j = 0; j < 16; ++j) codes[j] = Ls[j];
  put_scales_q3k(sc, codes);
  return d_block;
}

void quantize_q3k(const float* x, std::uint8_t* y, const float* qw) {
  std::int8_t L[kSuperBlock];
  std::uint8_t* sc = y + 96;  // scales[12]
  put_half(y + 108, qw ? q3k_scales_weighted(x, L, sc, qw) : q3k_scales_ref(x, L, sc));
  // Every level again from the stored (fp16, 6-bit) scales; a sub-block whose scale is 0 keeps its fit's levels.
  const float d_all = half_at(y + 108);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(scale_q3k(j, sc));
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<std::int8_t>(std::max(-4, std::min(3, nearest_int(x[16 * j + i] / d))) + 4);
  }
  std::uint8_t levels[kSuperBlock];
  for (int j = 0; j < kSuperBlock; ++j) levels[j] = static_cast<std::uint8_t>(L[j]);
  ggml_quant_pack_levels(GgmlQuant::Q3_K, levels, y);
}

// The packed 6-bit sub-block scale and minimum of Q4_K / Q5_K (get_scale_min_k4's inverse).
void put_scale_min_k4(std::uint8_t* sc, int j, int ls, int lm) {
  if (j < 4) {
    sc[j] = static_cast<std::uint8_t>(ls);
    sc[j + 4] = static_cast<std::uint8_t>(lm);
  } else {
    sc[j + 4] = static_cast<std::uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    sc[j - 4] = static_cast<std::uint8_t>(sc[j - 4] | ((ls >> 4) << 6));
    sc[j] = static_cast<std::uint8_t>(sc[j] | ((lm >> 4) << 6));
  }
}

// Q4_K / Q5_K's scales and minimums as quantize_row_q4_K_ref / q5_K_ref pick them: each sub-block fitted
// alone (weights rms + |x|), the 6-bit codes scaled to the largest scale and minimum. Writes d, dmin.
void q45k_scales_ref(const float* x, std::uint8_t* L, std::uint8_t* y, int nmax, float rmin, int nstep) {
  float mins[8], scales[8], w[32], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    // ggml keeps nearest_int's result in a uint8 (a negative fit wraps, then clamps to 63).
    const int ls = std::min<int>(63, static_cast<std::uint8_t>(nearest_int(inv_scale * scales[j])));
    const int lm = std::min<int>(63, static_cast<std::uint8_t>(nearest_int(inv_min * mins[j])));
    put_scale_min_k4(y + 4, j, ls, lm);
  }
  put_half(y, max_scale / 63.f);
  put_half(y + 2, max_min / 63.f);
}

// quantize_row_q4_K_impl / q5_K_impl: weighted sub-block fits, then the eight scales and minimums fitted as
// 6-bit integers under the sub-blocks' total weights. Writes d, dmin.
void q45k_scales_weighted(const float* x, std::uint8_t* L, std::uint8_t* y, int nmax, const float* qw) {
  float mins[8], scales[8], w[32], sw[8], sum_x2 = 0;
  for (int l = 0; l < kSuperBlock; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2 * sum_x2 / kSuperBlock;
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) w[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += w[l];
    sw[j] = sumw;
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], -0.9f, 0.05f, 36, false, true);
  }
  std::uint8_t Ls[8], Lm[8];
  const float d_block = fit_scale_positive(8, 63, scales, Ls, sw);
  const float m_block = fit_scale_positive(8, 63, mins, Lm, sw);
  for (int j = 0; j < 8; ++j) put_scale_min_k4(y + 4, j, std::min<int>(63, Ls[j]), std::min<int>(63, Lm[j]));
  put_half(y, d_block);
  put_half(y + 2, m_block);
}

// Q4_K (levels 0..15) and Q5_K (0..31): sub-blocks of 32.
void quantize_q45k(const float* x, std::uint8_t* y, GgmlQuant t, const float* qw) {
  const int nmax = t == GgmlQuant::Q4_K ? 15 : 31;
  std::uint8_t L[kSuperBlock];
  const std::uint8_t* sc = y + 4;  // scales[12]
  if (qw)
    q45k_scales_weighted(x, L, y, nmax, qw);
  else
    q45k_scales_ref(x, L, y, nmax, t == GgmlQuant::Q4_K ? -1.f : -0.5f, t == GgmlQuant::Q4_K ? 20 : 15);
  // Every level again from the stored (fp16, 6-bit) scales and minimums.
  const float d_all = half_at(y), dmin_all = half_at(y + 2);
  for (int j = 0; j < 8; ++j) {
    int s, m;
    scale_min_k4(j, sc, s, m);
    const float d = d_all * static_cast<float>(s);
    if (d == 0) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<std::uint8_t>(std::max(0, std::min(nmax, nearest_int((x[32 * j + i] + dm) / d))));
  }
  ggml_quant_pack_levels(t, L, y);
}

// With an importance vector (quantize_row_q6_K_impl), the sub-block fits are weighted by qw itself.
void quantize_q6k(const float* x, std::uint8_t* y, const float* qw) {
  std::int8_t L[kSuperBlock];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = fit_scale_sym_sweep(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
    const float a = std::fabs(scales[ib]);
    if (a > max_abs_scale) {
      max_abs_scale = a;
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(y, 0, 210);
    return;
  }
  std::int8_t* sc = reinterpret_cast<std::int8_t*>(y + 192);
  const float iscale = -128.f / max_scale;
  put_half(y + 208, 1 / iscale);
  for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<std::int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  const float d_all = half_at(y + 208);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc[j]);
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<std::int8_t>(std::max(-32, std::min(31, nearest_int(x[16 * j + i] / d))) + 32);
  }
  std::uint8_t levels[kSuperBlock];
  for (int j = 0; j < kSuperBlock; ++j) levels[j] = static_cast<std::uint8_t>(L[j]);
  ggml_quant_pack_levels(GgmlQuant::Q6_K, levels, y);
}

// IQ4_NL as llama-quantize writes it (quantize_iq4_nl without importance weights: ntry 7): weights x^2, a
// first scale from the largest magnitude, its least-squares refit, then 15 trial inverse scales around
// -127 / max; the levels are re-picked with the final (unrounded) scale.
void quantize_iq4nl(const float* x, std::uint8_t* y, const float* qw) {
  constexpr int ntry = 7;
  const std::int8_t* values = kIq4nlValues;
  float w[32];
  std::uint8_t L[32];
  if (qw) {  // importance: qw * sqrt(sigma2 + x^2), sigma2 twice the block's mean square
    float sigma2 = 0;
    for (int j = 0; j < 32; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / 32;
    for (int j = 0; j < 32; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
  } else {
    for (int j = 0; j < 32; ++j) w[j] = x[j] * x[j];
  }
  float amax = 0, mx = 0;
  for (int j = 0; j < 32; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      mx = x[j];
    }
  }
  float scale = 0;
  if (amax >= kGroupMaxEps) {
    float d = -mx / static_cast<float>(values[0]);
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = static_cast<float>(values[best_index_int8(16, values, id * x[j])]);
      sumqx += w[j] * q * x[j];
      sumq2 += w[j] * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = static_cast<float>(itry + values[0]) / mx;
      sumqx = sumq2 = 0;
      for (int j = 0; j < 32; ++j) {
        const float q = static_cast<float>(values[best_index_int8(16, values, id * x[j])]);
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scale = d;
  }
  put_half(y, scale);
  const float id = scale != 0 ? 1 / scale : 0;
  for (int j = 0; j < 32; ++j) L[j] = static_cast<std::uint8_t>(best_index_int8(16, values, id * x[j]));
  ggml_quant_pack_levels(GgmlQuant::IQ4_NL, L, y);
}

// ggml's UE4M3 (unsigned E4M3, bias 7; 0x7F and 0 decode to 0) halved, to match the doubled e2m1 values.
inline float ue4m3_half(std::uint8_t x) {
  if (x == 0 || x == 0x7F) return 0.0f;
  const int exp = (x >> 3) & 0xF, man = x & 0x7;
  const float raw = exp == 0 ? std::ldexp(static_cast<float>(man), -9) : std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
  return raw * 0.5f;
}

// ggml_fp32_to_ue4m3: clamped to 448, the fourth mantissa bit rounds half up (not to even), subnormals
// round half up from x * 2^9.
inline std::uint8_t ue4m3_of(float x) {
  if (!(x > 0.0f)) return 0;
  if (x > 448.0f) x = 448.0f;
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const int fp32_exp = static_cast<int>((bits >> 23) & 0xFF) - 127;
  const int fp32_man = static_cast<int>((bits >> 20) & 0x7);
  int exp = fp32_exp + 7;
  if (exp <= 0) {
    const int man = std::min(7, static_cast<int>(x * 512.0f + 0.5f));
    return man < 1 ? 0 : static_cast<std::uint8_t>(man);
  }
  if (exp >= 15) return 0x7E;
  int man = fp32_man + static_cast<int>((bits >> 19) & 1);
  if (man > 7) {
    man = 0;
    if (++exp >= 15) return 0x7E;
  }
  return static_cast<std::uint8_t>((exp << 3) | man);
}

// ggml's best_index_mxfp4: the first code of least |value(code) * d - x| (ties toward the lower code).
inline std::uint8_t best_index_mxfp4(float x, float d) {
  int best = 0;
  float best_err = std::fabs(static_cast<float>(kMxfp4Values[0]) * d - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(static_cast<float>(kMxfp4Values[i]) * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return static_cast<std::uint8_t>(best);
}

// NVFP4 as quantize_row_nvfp4_ref: per 16 values, ue = UE4M3(amax / 6), then the nearest codes under it.
void quantize_nvfp4(const float* x, std::uint8_t* y) {
  std::uint8_t L[64];
  for (int s = 0; s < 4; ++s) {
    const float* xb = x + 16 * s;
    float amax = 0;
    for (int j = 0; j < 16; ++j)
      if (amax < std::fabs(xb[j])) amax = std::fabs(xb[j]);
    y[s] = ue4m3_of(amax / 6.0f);
    const float d = ue4m3_half(y[s]);
    for (int j = 0; j < 16; ++j) L[16 * s + j] = best_index_mxfp4(xb[j], d);
  }
  ggml_quant_pack_levels(GgmlQuant::NVFP4, L, y);
}

// MXFP4 as quantize_row_mxfp4_ref: e = floor(log2f(amax)) - 2 + 127 (log2f of the C library, as ggml calls
// it), then per value the first code of least |value(code) * d - x|.
void quantize_mxfp4(const float* x, std::uint8_t* y) {
  float amax = 0;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
  // ggml converts the float to uint8_t; through int, as x86 does, so tiny blocks wrap the same way.
  const std::uint8_t e = amax > 0.0f ? static_cast<std::uint8_t>(static_cast<int>(std::floor(log2f(amax)) - 2 + 127)) : 0;
  const float d = e8m0_half(e);
  std::uint8_t L[32];
  for (int j = 0; j < 32; ++j) L[j] = best_index_mxfp4(x[j], d);
  y[0] = e;
  ggml_quant_pack_levels(GgmlQuant::MXFP4, L, y);
}

// Sub-block s's scale and minimum as ggml's decoder computes them (value = dl * (L - offset) - ml).
struct SubScale {
  float dl, ml;
};
void sub_scales(GgmlQuant t, const std::uint8_t* b, SubScale* out) {
  switch (t) {
    case GgmlQuant::Q2_K: {
      const float d = half_at(b + 80), mn = half_at(b + 82);
      for (int s = 0; s < 16; ++s) out[s] = {d * static_cast<float>(b[s] & 0xF), mn * static_cast<float>(b[s] >> 4)};
      break;
    }
    case GgmlQuant::Q3_K: {
      const float d = half_at(b + 108);
      for (int s = 0; s < 16; ++s) out[s] = {d * static_cast<float>(scale_q3k(s, b + 96)), 0.0f};
      break;
    }
    case GgmlQuant::Q4_K:
    case GgmlQuant::Q5_K: {
      const float d = half_at(b), mn = half_at(b + 2);
      for (int s = 0; s < 8; ++s) {
        int sc, m;
        scale_min_k4(s, b + 4, sc, m);
        out[s] = {d * static_cast<float>(sc), mn * static_cast<float>(m)};
      }
      break;
    }
    case GgmlQuant::Q6_K: {
      const float d = half_at(b + 208);
      for (int s = 0; s < 16; ++s) out[s] = {d * static_cast<float>(static_cast<std::int8_t>(b[192 + s])), 0.0f};
      break;
    }
    case GgmlQuant::IQ4_NL: out[0] = {half_at(b), 0.0f}; break;
    case GgmlQuant::MXFP4: out[0] = {e8m0_half(b[0]), 0.0f}; break;
    case GgmlQuant::NVFP4:
      for (int s = 0; s < 4; ++s) out[s] = {ue4m3_half(b[s]), 0.0f};
      break;
  }
}

// Level L's value in a sub-block (ggml's order of operations).
inline float level_value(GgmlQuant t, const GgmlQuantLayout& lay, const SubScale& ss, int L) {
  if (t == GgmlQuant::IQ4_NL) return ss.dl * static_cast<float>(kIq4nlValues[L]);
  if (t == GgmlQuant::MXFP4 || t == GgmlQuant::NVFP4) return static_cast<float>(kMxfp4Values[L]) * ss.dl;
  const float q = static_cast<float>(L - lay.level_offset);
  return lay.with_min ? ss.dl * q - ss.ml : ss.dl * q;
}

}  // namespace

const std::int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
const std::int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

const GgmlQuantLayout& ggml_quant_layout(GgmlQuant t) { return kLayouts[static_cast<int>(t)]; }

std::optional<GgmlQuant> ggml_quant_of(const Format& f) {
  const Scaling& s = f.scaling();
  if (s.rule != ScaleRule::Ggml || s.kind != ScaleKind::Block) return std::nullopt;
  if (f.elem().kind == Element::Kind::Codebook) return s.block == 32 ? std::optional(GgmlQuant::IQ4_NL) : std::nullopt;
  if (f.elem().kind == Element::Kind::Float) {
    if (s.block == 32 && s.scale_elem.variant == FloatVariant::E8m0) return GgmlQuant::MXFP4;
    if (s.block == 16 && s.scale_elem.variant != FloatVariant::E8m0) return GgmlQuant::NVFP4;  // ue4m3 (Format checks it)
    return std::nullopt;
  }
  if (s.block != kSuperBlock) return std::nullopt;
  switch (f.elem().bits) {  // Format's validation admits exactly these five
    case 2: return GgmlQuant::Q2_K;
    case 3: return GgmlQuant::Q3_K;
    case 4: return GgmlQuant::Q4_K;
    case 5: return GgmlQuant::Q5_K;
    case 6: return GgmlQuant::Q6_K;
    default: return std::nullopt;
  }
}

Format ggml_quant_row_format(const Format& f, std::int64_t row_len) {
  const auto t = ggml_quant_of(f);
  if (!t) return f;
  if (row_len > 0 && row_len % ggml_quant_layout(*t).block == 0) return f;
  if (row_len % 32 != 0 || *t == GgmlQuant::NVFP4) return Format::parse("fp16");
  switch (*t) {
    case GgmlQuant::Q4_K: return Format::parse("q5_0");
    case GgmlQuant::Q5_K: return Format::parse("q5_1");
    case GgmlQuant::Q6_K: return Format::parse("q8_0_ggml");
    case GgmlQuant::Q2_K:
    case GgmlQuant::Q3_K: return Format::parse("iq4_nl");
    case GgmlQuant::IQ4_NL:
    case GgmlQuant::MXFP4:
    case GgmlQuant::NVFP4: break;  // rows of whole blocks returned above
  }
  return Format::parse("fp16");
}

void ggml_quant_levels(GgmlQuant t, const std::uint8_t* b, std::uint8_t* L) {
  switch (t) {
    case GgmlQuant::Q2_K:
    case GgmlQuant::Q3_K: {
      const std::uint8_t* qs = b + (t == GgmlQuant::Q2_K ? 16 : 32);
      for (int j = 0; j < kSuperBlock; j += 128)
        for (int s = 0; s < 4; ++s)
          for (int l = 0; l < 32; ++l) L[j + 32 * s + l] = static_cast<std::uint8_t>((qs[j / 4 + l] >> (2 * s)) & 3);
      if (t == GgmlQuant::Q3_K)  // the high bit of element j is bit j / 32 of hmask[j % 32]
        for (int j = 0; j < kSuperBlock; ++j) L[j] = static_cast<std::uint8_t>(L[j] | (((b[j % 32] >> (j / 32)) & 1) << 2));
      break;
    }
    case GgmlQuant::Q4_K:
    case GgmlQuant::Q5_K: {
      const std::uint8_t* qh = b + 16;
      const std::uint8_t* q = b + (t == GgmlQuant::Q4_K ? 16 : 48);
      for (int j = 0, pair = 0; j < kSuperBlock; j += 64, q += 32, ++pair)
        for (int l = 0; l < 32; ++l) {
          L[j + l] = q[l] & 0x0F;
          L[j + l + 32] = q[l] >> 4;
          if (t == GgmlQuant::Q5_K) {
            L[j + l] = static_cast<std::uint8_t>(L[j + l] | (((qh[l] >> (2 * pair)) & 1) << 4));
            L[j + l + 32] = static_cast<std::uint8_t>(L[j + l + 32] | (((qh[l] >> (2 * pair + 1)) & 1) << 4));
          }
        }
      break;
    }
    case GgmlQuant::IQ4_NL:
    case GgmlQuant::MXFP4: {
      const std::uint8_t* qs = b + ggml_quant_layout(t).quant_at;
      for (int j = 0; j < 16; ++j) {
        L[j] = qs[j] & 0x0F;
        L[j + 16] = qs[j] >> 4;
      }
      break;
    }
    case GgmlQuant::NVFP4:  // per 16: byte j of the sub-block's 8 holds values j (low nibble) and j + 8
      for (int s = 0; s < 4; ++s)
        for (int j = 0; j < 8; ++j) {
          L[16 * s + j] = b[4 + 8 * s + j] & 0x0F;
          L[16 * s + j + 8] = b[4 + 8 * s + j] >> 4;
        }
      break;
    case GgmlQuant::Q6_K: {
      const std::uint8_t* ql = b;
      const std::uint8_t* qh = b + 128;
      for (int j = 0; j < kSuperBlock; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; ++l) {
          L[j + l] = static_cast<std::uint8_t>((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4));
          L[j + l + 32] = static_cast<std::uint8_t>((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4));
          L[j + l + 64] = static_cast<std::uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
          L[j + l + 96] = static_cast<std::uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
      break;
    }
  }
}

void ggml_quant_pack_levels(GgmlQuant t, const std::uint8_t* L, std::uint8_t* b) {
  switch (t) {
    case GgmlQuant::Q2_K:
    case GgmlQuant::Q3_K: {
      std::uint8_t* qs = b + (t == GgmlQuant::Q2_K ? 16 : 32);
      for (int j = 0; j < kSuperBlock; j += 128)
        for (int l = 0; l < 32; ++l)
          qs[j / 4 + l] = static_cast<std::uint8_t>((L[j + l] & 3) | ((L[j + l + 32] & 3) << 2) | ((L[j + l + 64] & 3) << 4) |
                                                    ((L[j + l + 96] & 3) << 6));
      if (t == GgmlQuant::Q3_K) {
        std::memset(b, 0, 32);
        for (int j = 0; j < kSuperBlock; ++j)
          if (L[j] > 3) b[j % 32] = static_cast<std::uint8_t>(b[j % 32] | (1u << (j / 32)));
      }
      break;
    }
    case GgmlQuant::Q4_K:
    case GgmlQuant::Q5_K: {
      std::uint8_t* qh = b + 16;
      std::uint8_t* q = b + (t == GgmlQuant::Q4_K ? 16 : 48);
      if (t == GgmlQuant::Q5_K) std::memset(qh, 0, 32);
      for (int j = 0, pair = 0; j < kSuperBlock; j += 64, q += 32, ++pair)
        for (int l = 0; l < 32; ++l) {
          q[l] = static_cast<std::uint8_t>((L[j + l] & 0x0F) | ((L[j + l + 32] & 0x0F) << 4));
          if (t == GgmlQuant::Q5_K) {
            if (L[j + l] > 15) qh[l] = static_cast<std::uint8_t>(qh[l] | (1u << (2 * pair)));
            if (L[j + l + 32] > 15) qh[l] = static_cast<std::uint8_t>(qh[l] | (2u << (2 * pair)));
          }
        }
      break;
    }
    case GgmlQuant::IQ4_NL:
    case GgmlQuant::MXFP4: {
      std::uint8_t* qs = b + ggml_quant_layout(t).quant_at;
      for (int j = 0; j < 16; ++j) qs[j] = static_cast<std::uint8_t>((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
      break;
    }
    case GgmlQuant::NVFP4:
      for (int s = 0; s < 4; ++s)
        for (int j = 0; j < 8; ++j)
          b[4 + 8 * s + j] = static_cast<std::uint8_t>((L[16 * s + j] & 0x0F) | ((L[16 * s + j + 8] & 0x0F) << 4));
      break;
    case GgmlQuant::Q6_K: {
      std::uint8_t* ql = b;
      std::uint8_t* qh = b + 128;
      for (int j = 0; j < kSuperBlock; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; ++l) {
          ql[l] = static_cast<std::uint8_t>((L[j + l] & 0xF) | ((L[j + l + 64] & 0xF) << 4));
          ql[l + 32] = static_cast<std::uint8_t>((L[j + l + 32] & 0xF) | ((L[j + l + 96] & 0xF) << 4));
          qh[l] = static_cast<std::uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                            ((L[j + l + 96] >> 4) << 6));
        }
      break;
    }
  }
}

void ggml_quant_quantize(GgmlQuant t, const float* x, std::uint8_t* blocks, std::int64_t n, const float* importance) {
  const GgmlQuantLayout& lay = ggml_quant_layout(t);
  if (n % lay.block != 0)
    throw Error(std::string(lay.name) + ": " + std::to_string(n) + " values are not whole blocks of " + std::to_string(lay.block));
  for (std::int64_t b = 0; b < n / lay.block; ++b) {
    const float* xb = x + b * lay.block;
    for (int i = 0; i < lay.block; ++i)
      if (!std::isfinite(xb[i]))
        throw Error(std::string(lay.name) + ": value " + std::to_string(b * lay.block + i) +
                    " is not finite; llama.cpp's quantizers cannot store NaN or infinity");
    std::uint8_t* y = blocks + b * lay.bytes;
    const float* qw = importance ? importance + b * lay.block : nullptr;
    switch (t) {
      case GgmlQuant::Q2_K: quantize_q2k(xb, y, qw); break;
      case GgmlQuant::Q3_K: quantize_q3k(xb, y, qw); break;
      case GgmlQuant::Q4_K:
      case GgmlQuant::Q5_K: quantize_q45k(xb, y, t, qw); break;
      case GgmlQuant::Q6_K: quantize_q6k(xb, y, qw); break;
      case GgmlQuant::IQ4_NL: quantize_iq4nl(xb, y, qw); break;
      case GgmlQuant::MXFP4: quantize_mxfp4(xb, y); break;  // llama.cpp's MXFP4 and NVFP4 have no importance path
      case GgmlQuant::NVFP4: quantize_nvfp4(xb, y); break;
    }
  }
}

void ggml_quant_dequantize(GgmlQuant t, const std::uint8_t* blocks, float* y, std::int64_t n) {
  const GgmlQuantLayout& lay = ggml_quant_layout(t);
  if (n % lay.block != 0)
    throw Error(std::string(lay.name) + ": " + std::to_string(n) + " values are not whole blocks of " + std::to_string(lay.block));
  std::uint8_t L[kSuperBlock];
  SubScale s[16];
  for (std::int64_t b = 0; b < n / lay.block; ++b, y += lay.block) {
    const std::uint8_t* blk = blocks + b * lay.bytes;
    ggml_quant_levels(t, blk, L);
    sub_scales(t, blk, s);
    for (int i = 0; i < lay.block; ++i) y[i] = level_value(t, lay, s[i / lay.sub_block], L[i]);
  }
}

namespace {

// The type of `f` on `shape`, or nullopt where the rows fall back to another format.
// Which of llama.cpp's 32-block types with an importance path (Q4_0, Q4_1, Q5_0, Q5_1) a format is: their
// quantizers without importance are closed-form (kernels/reference.cpp), with it they search.
struct LegacyType {
  int bits;
  bool with_min;
};
std::optional<LegacyType> legacy_weighted_type(const Format& f) {
  const Scaling& s = f.scaling();
  if (s.rule != ScaleRule::Ggml || s.kind != ScaleKind::Block || s.block != 32 || f.elem().kind != Element::Kind::Int) return std::nullopt;
  if (f.elem().bits != 4 && f.elem().bits != 5) return std::nullopt;
  return LegacyType{f.elem().bits, s.asym};
}

std::optional<GgmlQuant> whole_blocks(const Format& f, const Shape& shape) {
  const auto t = ggml_quant_of(f);
  if (!t) throw Error("format " + f.name() + " is not one of llama.cpp's searched block types");
  if (shape.empty()) throw Error("format " + f.name() + " quantizes rows: a scalar has none");
  if (!(ggml_quant_row_format(f, shape.back()) == f)) return std::nullopt;
  return t;
}

}  // namespace

Encoded ggml_legacy_encode_weighted(const Format& f, const float* in, const Shape& shape, int threads, const float* importance) {
  const auto lt = legacy_weighted_type(f);
  if (!lt) throw Error("format " + f.name() + " is not llama.cpp's Q4_0, Q4_1, Q5_0 or Q5_1");
  if (shape.empty() || shape.back() <= 0 || shape.back() % 32 != 0)
    throw Error("format " + f.name() + " with importance weights needs rows of whole 32-blocks, not shape " + shape_str(shape));
  const std::int64_t n = shape_numel(shape), cols = shape.back(), rows = n / cols, nb = n / 32;
  const int nmax = 1 << (lt->bits - 1);  // symmetric: levels -nmax..nmax-1 (stored + nmax); with a minimum: 0..2*nmax-1
  Encoded e;
  e.format = f.name();
  e.shape = shape;
  e.axis = static_cast<int>(shape.size()) - 1;
  e.num_groups = nb;
  std::vector<std::uint32_t> codes(static_cast<std::size_t>(n)), d_codes(static_cast<std::size_t>(nb)), m_codes;
  if (lt->with_min) m_codes.resize(static_cast<std::size_t>(nb));
  parallel_for(rows, threads, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      // quantize_row_q4_0_impl .. q5_1_impl: sigma2 is the whole row's mean square.
      const float* x = in + r * cols;
      float sum_x2 = 0;
      for (std::int64_t j = 0; j < cols; ++j) sum_x2 += x[j] * x[j];
      const float sigma2 = sum_x2 / static_cast<float>(cols);
      for (std::int64_t ib = 0; ib < cols / 32; ++ib) {
        const float* xb = x + 32 * ib;
        const float* qw = importance + 32 * ib;
        float w[32];
        for (int j = 0; j < 32; ++j) w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
        const std::int64_t g = r * (cols / 32) + ib;
        std::uint32_t* c = codes.data() + g * 32;
        if (lt->with_min) {
          std::uint8_t L[32];
          float neg_min;
          const float d = fit_scale_min(32, 2 * nmax - 1, xb, w, L, &neg_min, -0.9f, 0.05f, 36, false, true);
          d_codes[static_cast<std::size_t>(g)] = f32_to_f16(d);
          m_codes[static_cast<std::size_t>(g)] = f32_to_f16(-neg_min);
          for (int j = 0; j < 32; ++j) c[j] = L[j];
        } else {
          std::int8_t L[32];
          const float d = fit_scale_sym_sweep(32, nmax, xb, L, w);
          d_codes[static_cast<std::size_t>(g)] = f32_to_f16(d);
          // the int element's two's-complement code of L - nmax
          for (int j = 0; j < 32; ++j) c[j] = static_cast<std::uint32_t>(L[j] - nmax) & ((1u << lt->bits) - 1);
        }
      }
    }
  });
  e.codes = pack_bits(codes.data(), codes.size(), lt->bits);
  e.scales = pack_bits(d_codes.data(), d_codes.size(), 16);
  if (lt->with_min) e.zeros = pack_bits(m_codes.data(), m_codes.size(), 16);
  return e;
}

bool ggml_legacy_has_importance(const Format& f) { return legacy_weighted_type(f).has_value(); }

Encoded ggml_quant_encode(const Format& f, const float* in, const Shape& shape, int threads, const float* importance) {
  QuantOptions opt;
  opt.threads = threads;
  const auto t = whole_blocks(f, shape);
  if (!t) {
    const Format row = ggml_quant_row_format(f, shape.back());
    if (!importance) return encode(row, in, shape, opt);
    if (ggml_quant_of(row)) return ggml_quant_encode(row, in, shape, threads, importance);
    if (legacy_weighted_type(row)) return ggml_legacy_encode_weighted(row, in, shape, threads, importance);
    return encode(row, in, shape, opt);  // Q8_0 and F16: llama.cpp has no importance path for them
  }
  const GgmlQuantLayout& lay = ggml_quant_layout(*t);
  const std::int64_t n = shape_numel(shape), nb = n / lay.block, per_row = shape.back() / lay.block;
  Encoded e;
  e.format = f.name();
  e.shape = shape;
  e.axis = static_cast<int>(shape.size()) - 1;
  e.num_groups = nb;
  std::vector<std::uint32_t> levels(static_cast<std::size_t>(n));
  e.scales.resize(static_cast<std::size_t>(nb * lay.header_bytes()));
  const std::size_t tail = static_cast<std::size_t>(lay.bytes - lay.quant_at - lay.quant_bytes);
  parallel_for(nb, threads, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<std::uint8_t> blk(static_cast<std::size_t>(lay.bytes));
    std::uint8_t L[kSuperBlock];
    for (std::int64_t b = b0; b < b1; ++b) {
      ggml_quant_quantize(*t, in + b * lay.block, blk.data(), lay.block, importance ? importance + b % per_row * lay.block : nullptr);
      ggml_quant_levels(*t, blk.data(), L);
      for (int i = 0; i < lay.block; ++i) levels[static_cast<std::size_t>(b * lay.block + i)] = L[i];
      std::uint8_t* h = e.scales.data() + b * lay.header_bytes();
      std::memcpy(h, blk.data(), static_cast<std::size_t>(lay.quant_at));
      std::memcpy(h + lay.quant_at, blk.data() + lay.quant_at + lay.quant_bytes, tail);
    }
  });
  e.codes = pack_bits(levels.data(), levels.size(), lay.bits);
  return e;
}

Encoded ggml_quant_encoded(const Format& f, const Shape& shape, const std::uint8_t* blocks) {
  const auto t = whole_blocks(f, shape);
  if (!t) throw Error("format " + f.name() + " on shape " + shape_str(shape) + ": rows are not whole blocks");
  const GgmlQuantLayout& lay = ggml_quant_layout(*t);
  const std::int64_t n = shape_numel(shape), nb = n / lay.block;
  Encoded e;
  e.format = f.name();
  e.shape = shape;
  e.axis = static_cast<int>(shape.size()) - 1;
  e.num_groups = nb;
  std::vector<std::uint32_t> levels(static_cast<std::size_t>(n));
  e.scales.resize(static_cast<std::size_t>(nb * lay.header_bytes()));
  const std::size_t tail = static_cast<std::size_t>(lay.bytes - lay.quant_at - lay.quant_bytes);
  std::uint8_t L[kSuperBlock];
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = blocks + b * lay.bytes;
    ggml_quant_levels(*t, blk, L);
    for (int i = 0; i < lay.block; ++i) levels[static_cast<std::size_t>(b * lay.block + i)] = L[i];
    std::uint8_t* h = e.scales.data() + b * lay.header_bytes();
    std::memcpy(h, blk, static_cast<std::size_t>(lay.quant_at));
    std::memcpy(h + lay.quant_at, blk + lay.quant_at + lay.quant_bytes, tail);
  }
  e.codes = pack_bits(levels.data(), levels.size(), lay.bits);
  return e;
}

std::vector<std::uint8_t> ggml_quant_blocks(const Encoded& e) {
  const Format f = Format::parse(e.format);
  const auto t = whole_blocks(f, e.shape);
  if (!t) throw Error("encoded " + f.name() + " tensor of shape " + shape_str(e.shape) + " is not whole blocks along its rows");
  const GgmlQuantLayout& lay = ggml_quant_layout(*t);
  const std::int64_t n = shape_numel(e.shape), nb = n / lay.block;
  if (e.num_groups != nb || e.scales.size() != static_cast<std::size_t>(nb * lay.header_bytes()) ||
      e.codes.size() != static_cast<std::size_t>((n * lay.bits + 7) / 8))
    throw Error("encoded " + f.name() + " tensor of shape " + shape_str(e.shape) + ": " + std::to_string(e.num_groups) + " blocks, " +
                std::to_string(e.scales.size()) + " header bytes and " + std::to_string(e.codes.size()) + " code bytes; it needs " +
                std::to_string(nb) + ", " + std::to_string(nb * lay.header_bytes()) + " and " + std::to_string((n * lay.bits + 7) / 8));
  std::vector<std::uint32_t> levels(static_cast<std::size_t>(n));
  unpack_bits(e.codes.data(), e.codes.size(), levels.size(), lay.bits, levels.data());
  std::vector<std::uint8_t> blocks(static_cast<std::size_t>(nb * lay.bytes));
  const std::size_t tail = static_cast<std::size_t>(lay.bytes - lay.quant_at - lay.quant_bytes);
  std::uint8_t L[kSuperBlock];
  for (std::int64_t b = 0; b < nb; ++b) {
    std::uint8_t* blk = blocks.data() + b * lay.bytes;
    const std::uint8_t* h = e.scales.data() + b * lay.header_bytes();
    std::memcpy(blk, h, static_cast<std::size_t>(lay.quant_at));
    std::memcpy(blk + lay.quant_at + lay.quant_bytes, h + lay.quant_at, tail);
    for (int i = 0; i < lay.block; ++i) L[i] = static_cast<std::uint8_t>(levels[static_cast<std::size_t>(b * lay.block + i)]);
    ggml_quant_pack_levels(*t, L, blk);
  }
  return blocks;
}

void ggml_quant_decode(const Format& f, const Encoded& e, float* out, int threads) {
  const auto t = whole_blocks(f, e.shape);
  if (!t) throw Error("encoded " + f.name() + " tensor of shape " + shape_str(e.shape) + " is not whole blocks along its rows");
  const std::vector<std::uint8_t> blocks = ggml_quant_blocks(e);
  const GgmlQuantLayout& lay = ggml_quant_layout(*t);
  parallel_for(e.num_groups, threads, [&](std::int64_t b0, std::int64_t b1) {
    ggml_quant_dequantize(*t, blocks.data() + b0 * lay.bytes, out + b0 * lay.block, (b1 - b0) * lay.block);
  });
}

void ggml_quant_sub_scales(GgmlQuant t, const std::uint8_t* block, float* dl, float* ml) {
  SubScale s[16];
  sub_scales(t, block, s);
  const GgmlQuantLayout& lay = ggml_quant_layout(t);
  for (int i = 0; i < lay.block / lay.sub_block; ++i) {
    dl[i] = s[i].dl;
    ml[i] = s[i].ml;
  }
}

void ggml_quant_ranges(GgmlQuant t, const std::uint8_t* block, float* lo, float* hi) {
  const GgmlQuantLayout& lay = ggml_quant_layout(t);
  SubScale s[16];
  sub_scales(t, block, s);
  // Over every level: the scale may be negative (Q3_K, Q6_K, IQ4_NL), MXFP4's codes are sign-magnitude.
  for (int sb = 0; sb < lay.block / lay.sub_block; ++sb) {
    float l = level_value(t, lay, s[sb], 0), h = l;
    for (int q = 1; q < (1 << lay.bits); ++q) {
      const float v = level_value(t, lay, s[sb], q);
      l = std::min(l, v);
      h = std::max(h, v);
    }
    std::fill(lo + sb * lay.sub_block, lo + (sb + 1) * lay.sub_block, l);
    std::fill(hi + sb * lay.sub_block, hi + (sb + 1) * lay.sub_block, h);
  }
}

void ggml_quant_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, int threads, const float* importance) {
  const auto t = ggml_quant_of(f);
  if (!t) throw Error("format " + f.name() + " is not one of llama.cpp's searched block types");
  if (shape.empty()) throw Error("format " + f.name() + " quantizes rows: a scalar has none");
  const std::int64_t n = shape_numel(shape);
  if (n == 0) return;
  const std::int64_t row_len = shape.back(), rows = n / row_len;
  const Format row_format = ggml_quant_row_format(f, row_len);
  if (!(row_format == f)) {
    if (importance) {
      if (ggml_quant_of(row_format)) return ggml_quant_fake_quant(row_format, in, out, shape, threads, importance);
      if (legacy_weighted_type(row_format)) {
        const Encoded e = ggml_legacy_encode_weighted(row_format, in, shape, threads, importance);
        decode(e, out, threads);
        return;
      }
    }
    QuantOptions opt;
    opt.threads = threads;
    fake_quant(row_format, in, out, shape, opt);
    return;
  }
  const GgmlQuantLayout& lay = ggml_quant_layout(*t);
  const std::int64_t nb = row_len / lay.block;
  parallel_for(rows, threads, [&](std::int64_t r0, std::int64_t r1) {
    std::vector<std::uint8_t> blk(static_cast<std::size_t>(lay.bytes));
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t b = 0; b < nb; ++b) {
        const std::int64_t at = r * row_len + b * lay.block;
        bool finite = true;
        for (int i = 0; i < lay.block && finite; ++i) finite = std::isfinite(in[at + i]);
        if (!finite) {  // qcast's rule for any scaled format: a non-finite value makes its block NaN
          std::fill(out + at, out + at + lay.block, std::numeric_limits<float>::quiet_NaN());
          continue;
        }
        ggml_quant_quantize(*t, in + at, blk.data(), lay.block, importance ? importance + b * lay.block : nullptr);
        ggml_quant_dequantize(*t, blk.data(), out + at, lay.block);
      }
  });
}

}  // namespace qcast::kern
