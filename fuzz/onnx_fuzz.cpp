// libFuzzer target: the ONNX importer (protobuf parse, initializers, structural checks, constant folding,
// shape inference) must reject any malformed model with qcast::Error, never crash.
#include <cstdint>

#include "qcast/error.hpp"
#include "qcast/nn/onnx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qcast::nn::set_max_tensor_elements(1 << 20);
  try {
    qcast::nn::Graph g = qcast::nn::parse_onnx(data, size, "fuzz.onnx");
    (void)qcast::nn::layer_info(g, 1);
  } catch (const qcast::Error&) {
  }
  return 0;
}
