// libFuzzer target: the format-name parser (named formats, aliases, the composition grammar
// ELEM[@SCALE][/b<N>|/g<N>|/ch<A>|/t<R>x<C>|/tensor][/ax<A>][/asym][/RULE]) must refuse any string with
// qcast::Error, never crash; a format it accepts must quantize, encode and decode a small tensor and
// re-parse from its own canonical and expanded names to the same value.
// Seeds: every name of the format table, written into the corpus folder by LLVMFuzzerInitialize;
// fuzz/dicts/format_name.dict holds the grammar's tokens.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // The first argument that is a directory is the corpus libFuzzer writes to: seed it with the table.
  for (int i = 1; i < *argc; ++i) {
    const std::string a = (*argv)[i];
    if (a.empty() || a[0] == '-' || !std::filesystem::is_directory(a)) continue;
    int k = 0;
    for (const auto& row : qcast::format_table()) {
      std::vector<std::string> names = row.aliases;
      names.push_back(row.name);
      names.push_back(row.composition);
      for (const auto& n : names) {
        std::ofstream(a + "/seed-" + std::to_string(k++)) << n;
      }
    }
    for (const char* s : {"int4@fp16/g32", "e2m1@e8m0/b32/floor", "int8@fp32/ch0", "e4m3@fp32/tensor", "int4@bf16/g128/asym/mse",
                          "e3m2@ue8m0/t16x16/rceil", "int3@fp16+fp32/b16/ax1", "e5m2ieee", "e2m3b3@e4m3/b16"})
      std::ofstream(a + "/seed-" + std::to_string(k++)) << s;
    break;
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 256) return 0;
  const std::string name(reinterpret_cast<const char*>(data), size);
  try {
    const qcast::Format f = qcast::Format::parse(name);
    // The canonical and expanded names parse back to the same format.
    if (!(qcast::Format::parse(f.name()) == f)) std::abort();
    if (!(qcast::Format::parse(f.expanded()) == f)) std::abort();
    // And it quantizes: a small tensor whose shape divides every block size up to 64.
    const qcast::Shape shape = {4, 64};
    std::vector<float> in(256), out(256), back(256);
    for (int i = 0; i < 256; ++i) in[i] = std::ldexp(static_cast<float>((i * 37) % 101 - 50), (i % 9) - 4);
    qcast::fake_quant(f, in.data(), out.data(), shape);
    const qcast::Encoded e = qcast::encode(f, in.data(), shape);
    qcast::decode(e, back.data());
    // decode(encode(x)) is fake_quant(x): the same values, NaN where NaN (a code has no sign of zero, so
    // fake_quant's -0 may come back as +0).
    for (int i = 0; i < 256; ++i)
      if (!(std::isnan(out[i]) && std::isnan(back[i])) && !(out[i] == back[i])) {
        std::fprintf(stderr, "format '%s': element %d: fake_quant %a, decode(encode) %a\n", f.name().c_str(), i, out[i], back[i]);
        std::abort();
      }
  } catch (const qcast::Error&) {
  }
  return 0;
}
