// libFuzzer target: the GGUF reader and the dequantizers must reject malformed input with qcast::Error,
// never crash or allocate without bound; the sniffer must never throw.
#include <cstdint>

#include "qcast/error.hpp"
#include "qcast/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto r = qcast::gguf::Reader::parse(data, size, nullptr, "fuzz.gguf");
    for (const auto& t : r.tensors())
      if (t.numel() <= (1u << 20)) (void)r.dequantize(t);
    (void)r.get_uint("general.alignment");
  } catch (const qcast::Error&) {
  }
  return 0;
}
