// libFuzzer target: the safetensors parser must reject any malformed input with qcast::Error.
#include <cstdint>

#include "qcast/error.hpp"
#include "qcast/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto f = qcast::parse_safetensors(data, size, nullptr, "fuzz.safetensors");
    volatile std::uint8_t sink = 0;
    for (auto& t : f.tensors) {
      const auto* p = static_cast<const std::uint8_t*>(t.tensor.data);
      for (std::size_t i = 0; i < t.tensor.nbytes(); ++i) sink ^= p[i];
    }
  } catch (const qcast::Error&) {
  }
  return 0;
}
