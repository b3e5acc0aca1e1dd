// Direct convolution for small kernels (conv_direct.cpp): the fast path op_conv takes for LeNet-sized
// layers instead of im2col + sgemm.
#pragma once
#include <cstdint>

namespace qcast::kern {

/// One sample, one group: x [C, H, W], w [M, C, kh, kw], y [M, P, Q]; stride 1, no padding, no dilation.
struct ConvDirectShape {
  std::int64_t C = 0, H = 0, W = 0, M = 0, kh = 0, kw = 0, P = 0, Q = 0;
};

/// Whether conv_direct handles this shape (small reduction C*kh*kw, narrow output rows, valid padding).
bool conv_direct_applies(const ConvDirectShape& s);
/// y = conv(x, w) + bias (bias may be null).
void conv_direct(const ConvDirectShape& s, const float* x, const float* w, const float* bias, float* y);

}  // namespace qcast::kern
