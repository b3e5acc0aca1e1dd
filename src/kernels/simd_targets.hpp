// Which Highway targets the SIMD translation units compile. Include first, before any Highway header.
#pragma once
#ifndef HWY_COMPILE_ALL_ATTAINABLE
#define HWY_COMPILE_ALL_ATTAINABLE  // EMU128 (generic) + SSE4 + AVX2 + AVX-512
#endif
#ifndef HWY_DISABLED_TARGETS
// GCC says so with __SANITIZE_ADDRESS__, clang (14) only through __has_feature.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QCAST_SIMD_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(QCAST_SIMD_UNDER_ASAN)
// Sanitizer builds compile the kernels for the generic (EMU128/SCALAR) target only: even AVX2 alone took
// over 15 minutes to compile with instrumentation on the 2-core CI machine. The sanitizer run checks the
// kernels' memory safety on that target; release builds and their tests cover AVX-512, AVX2 and SSE4.
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4 | HWY_AVX2 | HWY_AVX3 | HWY_AVX3_DL)
#else
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_AVX3_DL)
#endif
#endif
