// fp32 convolutions through oneDNN (Debian's libdnnl, the library PyTorch uses), in its blocked layouts.
//
// Like OpenBLAS (blas.hpp), the library is loaded on first use (dlopen), not linked: libdnnl.so and its
// OpenCL / OpenMP dependencies cost ~12 ms of every command's start-up otherwise. Without it, or with
// QCAST_DNNL=0 in the environment, available() is false and callers keep their own kernels.
//
// Activations stay in the layout the convolution chose (nChw16c and friends) from one convolution to
// the next; only operators that need plain NCHW data get a copy (Act::to_nchw).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace qcast::kern::dnnl {

/// True if libdnnl.so.2 loads and QCAST_DNNL is not "0". Looked up once.
bool available();

/// A 4-D fp32 activation [N, C, H, W] in oneDNN memory, in whatever layout its producer chose. Shared,
/// immutable once produced (a Conv with a sum may take over a buffer nobody else holds).
class Act {
 public:
  struct Impl;
  Act() = default;
  explicit Act(std::shared_ptr<Impl> p) : p_(std::move(p)) {}
  explicit operator bool() const { return static_cast<bool>(p_); }
  /// Wraps a plain NCHW buffer, without a copy: it must outlive the Act and every Act made from it.
  static Act wrap_nchw(const float* x, const std::array<std::int64_t, 4>& dims);
  const std::array<std::int64_t, 4>& dims() const;
  /// Writes the tensor to `out` in NCHW order (N*C*H*W floats).
  void to_nchw(float* out, int threads) const;
  /// The data when the layout is plain NHWC ([N, H, W, C] row-major, what oneDNN's brgconv picks on
  /// AVX-512), else nullptr.
  float* nhwc_data() const;
  /// A new, unwritten tensor with the same dims and layout.
  Act empty_like() const;
  const std::shared_ptr<Impl>& impl() const { return p_; }

 private:
  std::shared_ptr<Impl> p_;
};

/// One 2-D convolution with its epilogue: dst = [relu](conv(src, w) + bias [+ sum]).
struct ConvSpec {
  std::int64_t N = 1, C = 1, H = 1, W = 1;  // input
  std::int64_t M = 1, G = 1, kh = 1, kw = 1;  // output channels, groups, kernel
  std::int64_t sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
  std::int64_t P = 1, Q = 1;  // output size
  bool sum = false;   // adds a tensor of the output's shape (a residual Add)
  bool relu = false;  // then max(x, 0)
  bool operator==(const ConvSpec&) const = default;
};

/// A 2-D max or average pooling window (the fields as in ConvSpec; output channels = C). `pb` / `pr`
/// may exceed the input's padding so that a ceil_mode output size fits: windows reaching there see
/// nothing (max) or are not counted (AvgExclude).
struct PoolSpec {
  enum class Kind { Max, AvgInclude, AvgExclude };
  Kind kind = Kind::Max;
  std::int64_t N = 1, C = 1, H = 1, W = 1, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0, P = 1, Q = 1;
};
/// Pools `src` in its own layout (the output has the layout oneDNN picks for it, the input's). The
/// primitive is made once per input layout, window and thread count. qcast::Error if oneDNN refuses it.
Act pool(const PoolSpec& spec, const Act& src, int threads);

/// A prepared convolution: the primitive oneDNN picked for the shape, and the weights reordered into
/// its layout once. Thread-safe to run from several threads.
class Conv {
 public:
  struct Impl;
  /// weights [M, C/G, kh, kw], bias [M] or nullptr; both are copied. qcast::Error if oneDNN has no
  /// implementation for the shape or fails.
  Conv(const ConvSpec& spec, const float* weights, const float* bias, int threads);
  const ConvSpec& spec() const;
  /// Runs on `threads` OpenMP threads. `sum` (spec.sum only): the addend, taken over as the output buffer
  /// when it is the only reference and has the output's layout, otherwise copied.
  Act run(const Act& src, Act sum, int threads) const;
  /// oneDNN's name of the implementation (e.g. "brgconv:avx512_core").
  std::string implementation() const;

 private:
  std::shared_ptr<Impl> p_;
};

}  // namespace qcast::kern::dnnl
