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
/// qcast::Error for LLaMA models and for activation formats check_qdq_recipe refuses.
std::vector<nn::QdqWeight> qdq_weights(const Model& m, const QuantizeResult& r, std::vector<std::string>& notes);

/// Refuses (qcast::Error naming the layer) every activation format of `r` that QuantizeLinear cannot compute
/// exactly as qcast does: dynamic scales, block / channel scales, non-integer elements, more than 8 bits.
/// Static per-tensor integer formats (int8, int4, .../asym, with any observer) pass. Run before calibration.
void check_qdq_recipe(const Model& m, const nn::Recipe& r);

/// One QdqAct per layer with a static activation format, from the calibrated ranges in `r.act_ranges`: the
/// scale and zero point that qcast's fake_quant_static picks for that range (so ONNX Runtime computes the
/// same codes). qcast::Error for a layer without a calibrated range or with an all-zero one.
std::vector<nn::QdqAct> qdq_acts(const Model& m, const nn::Recipe& r);

}  // namespace qcast::ptq
