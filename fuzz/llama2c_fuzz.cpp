// libFuzzer target: the llama2.c checkpoint and tokenizer parsers must reject malformed input with
// qcast::Error, never crash. The first byte picks the parser.
#include <cstdint>

#include "qcast/error.hpp"
#include "qcast/nn/llama.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  try {
    if (data[0] & 1) {
      auto tok = qcast::nn::Tokenizer::parse(data + 1, size - 1, 64, "fuzz-tok.bin");
      auto ids = tok.encode("Once upon a time \xe2\x98\x83", true, true);
      for (std::size_t i = 1; i < ids.size(); ++i) (void)tok.decode(ids[i - 1], ids[i]);
    } else {
      auto m = qcast::nn::parse_llama2c(data + 1, size - 1, "fuzz.bin");
      if (m.cfg.seq_len <= 64 && m.cfg.dim <= 256) {
        auto s = m.new_state();
        (void)m.forward(s, 1 % m.cfg.vocab_size, 0);
      }
    }
  } catch (const qcast::Error&) {
  }
  return 0;
}
