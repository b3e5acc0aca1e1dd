// libFuzzer target: the .npy parser must reject any malformed input with qcast::Error, never crash.
#include <cstdint>

#include "qcast/error.hpp"
#include "qcast/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    qcast::Tensor t = qcast::parse_npy(data, size, nullptr, "fuzz.npy");
    // Touch every byte the parser claims is valid.
    volatile std::uint8_t sink = 0;
    const auto* p = static_cast<const std::uint8_t*>(t.data);
    for (std::size_t i = 0; i < t.nbytes(); ++i) sink ^= p[i];
  } catch (const qcast::Error&) {
  }
  return 0;
}
