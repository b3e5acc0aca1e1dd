// libFuzzer target: the ONNX importer (protobuf parse, initializers, structural checks, constant folding,
// shape inference) must reject any malformed model with qcast::Error, never crash; so must the skip-connection
// analysis of `qcast cost --skips` on whatever graph it accepts.
#include <cstdint>

#include "qcast/error.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/skips.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  qcast::nn::set_max_tensor_elements(1 << 20);
  try {
    qcast::nn::Graph g = qcast::nn::parse_onnx(data, size, "fuzz.onnx");
    (void)qcast::nn::layer_info(g, 1);
    for (auto mode : {qcast::hw::SkipMode::Keep, qcast::hw::SkipMode::Shorten, qcast::hw::SkipMode::Remove})
      (void)qcast::hw::find_skips(g, 1, mode);
  } catch (const qcast::Error&) {
  }
  return 0;
}
