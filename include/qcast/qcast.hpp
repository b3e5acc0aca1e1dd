// qcast's core header tier: what a program needs to quantize tensors with qcast's number formats.
//   Error            qcast/error.hpp      the one exception type (message names the file / tensor / format)
//   Tensor, Shape    qcast/tensor.hpp     plain host tensors
//   Format           qcast/format.hpp     a number format as an immutable value; the named-format table
//   GroupLayout      qcast/format/groups.hpp  how a shape splits into scale groups under a format
//   fake_quant, encode, decode  qcast/quantize.hpp  the bit-exact kernels (SIMD where the table says so)
// The layers above (io, nn, hw, ptq) have their own headers: qcast/io.hpp, qcast/nn/*.hpp, qcast/hw.hpp,
// qcast/ptq/*.hpp.
#pragma once
#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/format/groups.hpp"
#include "qcast/quantize.hpp"
#include "qcast/tensor.hpp"
