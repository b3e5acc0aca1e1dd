// QDQ export of a quantized ONNX graph (`qcast quantize MODEL.onnx ... --out q.onnx`): turns the layers of a
// QuantizeResult into the weights nn::write_onnx_qdq stores (integer codes + scales + zero points).
#pragma once
#include <string>
#include <vector>

#include "qcast/nn/onnx_qdq.hpp"
#include "qcast/ptq/model.hpp"

namespace qcast::ptq {

/// One QdqWeight per quantized layer. Integer formats (any width up to 8 bits, symmetric or asymmetric,
/// per tensor, per channel or in blocks along one axis, any scale element since scales are stored as
/// float32) become codes + scales that dequantize to exactly the weights qcast computes with (checked
/// element by element); other formats (floats, MX, NVFP4, codebooks, tiles) and layers with a rotation or a
/// low-rank branch become float32 fake-quantized values, each listed in `notes`.
/// qcast::Error for LLaMA models and for recipes with activation quantization (QDQ output carries weights only).
std::vector<nn::QdqWeight> qdq_weights(const Model& m, const QuantizeResult& r, std::vector<std::string>& notes);

}  // namespace qcast::ptq
