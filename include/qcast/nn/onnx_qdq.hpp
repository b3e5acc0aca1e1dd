// Quantized ONNX out: rewrites an ONNX model so that chosen weights are stored as integer codes behind
// DequantizeLinear (the QDQ form ONNX Runtime and other runtimes load), or as fake-quantized float32 values
// where ONNX has no type for the format. Plain data in, an .onnx file out (atomic: temp file + rename).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qcast::nn {

/// One weight of a Conv / Gemm / MatMul node (its input 1, an initializer), in qcast's [out, in] layout:
/// Conv [M, C*kh*kw]; Gemm [N, K] (transB = 1 as stored, transB = 0 transposed); MatMul [N, K] (transposed).
struct QdqWeight {
  std::string node;                 ///< the node's name as qcast names it (ONNX name, or Op_k for unnamed nodes)
  std::int64_t rows = 0, cols = 0;
  /// Integer codes [rows, cols] with their element type; empty = write `values` as float32 instead.
  std::vector<std::int32_t> codes;
  int bits = 8;
  bool is_signed = true;
  /// Dequantization: value = (code - zero) * scale. Granularity: `axis` -1 = per tensor (1 scale); axis 0 /
  /// 1 with block 0 = per channel along that axis of [rows, cols]; block > 0 = blocks of `block` along `axis`.
  std::vector<float> scales;
  std::vector<std::int32_t> zeros;  ///< same count as scales, or empty (0)
  int axis = -1;
  std::int64_t block = 0;
  std::vector<float> values;        ///< the fake-quantized weights [rows, cols] (used when codes is empty)
};

/// One static (calibrated) activation: the input 0 of a Conv / Gemm / MatMul node, quantized per tensor as qcast
/// computes it: code = clamp(round_half_even(x / scale) + zero, lo_code, hi_code), value = (code - zero) * scale.
/// Written as QuantizeLinear -> DequantizeLinear in front of the node (INT8 / UINT8 codes, INT4 / UINT4 at opset
/// 21), with a Clip to the values of lo_code and hi_code first where the ONNX type's range is wider (symmetric
/// signed formats never use the extra two's-complement code that QuantizeLinear would saturate to; 4-bit codes
/// stored in 8 bits).
struct QdqAct {
  std::string node;
  float scale = 1.0f;
  std::int32_t zero = 0;
  int bits = 8;
  bool is_signed = true;
  std::int32_t lo_code = -127, hi_code = 127;
};

/// Writes `src` with every listed weight replaced and every listed activation quantized. Codes of <= 4 bits are stored as INT4 / UINT4 when the
/// output opset is >= 21, else in INT8 / UINT8. Blocked scales (and INT4) need opset 21: a model with an
/// older default opset (>= 13) is raised to 21 (Reduce* axes attributes become inputs); per-channel needs
/// opset 13. `notes` receives what the caller should tell the user (opset raised, float32 fallbacks).
/// qcast::Error for a node or weight that does not match, or a model whose opset cannot be raised.
void write_onnx_qdq(const std::string& src, const std::string& out, const std::vector<QdqWeight>& weights,
                    const std::vector<QdqAct>& acts, std::vector<std::string>& notes);

}  // namespace qcast::nn
