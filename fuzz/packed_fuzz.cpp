// libFuzzer target: the packed-model reader (`qcast decode`, `qcast eval OUT.safetensors`): the qcast.*
// metadata of a safetensors file (format names, shapes, group counts, tensor scales, zero points) is
// validated against the stored codes and scales, and every tensor it accepts is decoded.
// Structure-aware: a custom mutator keeps the safetensors framing (u64 header length + JSON header + data)
// intact while it mutates the JSON header or the data, so mutations reach the metadata checks instead of
// the length prefix. Seeds: packed files in several formats, written into the corpus folder by
// LLVMFuzzerInitialize with qcast's own encoder; dictionary fuzz/dicts/packed.dict.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/packed.hpp"
#include "qcast/quantize.hpp"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {
std::string g_dir, g_path;
void cleanup() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

void write_seeds(const std::string& corpus) {
  const qcast::Shape shape = {4, 64};
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * static_cast<float>(1 + i % 5);
  int k = 0;
  for (const char* fmt : {"mxfp4", "int4@fp16/g32", "nvfp4", "int8@fp32/ch0", "mxfp6_e2m3", "int4@fp16/g32/asym", "q4_0", "e4m3@fp32/tensor"}) {
    try {
      qcast::PackedFile pf;
      pf.quantized.push_back({"w", qcast::encode(qcast::Format::parse(fmt), x.data(), shape)});
      pf.metadata["note"] = "seed";
      qcast::write_packed(corpus + "/seed-" + std::to_string(k++) + ".safetensors", pf);
    } catch (const qcast::Error&) {
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  g_dir = (std::filesystem::temp_directory_path() / ("qcast-packed-fuzz-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(g_dir);
  std::atexit(cleanup);
  g_path = g_dir + "/in.safetensors";
  for (int i = 1; i < *argc; ++i) {
    const std::string a = (*argv)[i];
    if (!a.empty() && a[0] != '-' && std::filesystem::is_directory(a)) {
      write_seeds(a);
      break;
    }
  }
  return 0;
}

// Mutates the JSON header or the data section of a well-framed file and rewrites the length prefix;
// anything else gets plain byte mutations.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::uint64_t hlen = 0;
  if (size >= 8) std::memcpy(&hlen, data, 8);
  if (size < 8 || hlen > size - 8 || (seed % 8) == 0) return LLVMFuzzerMutate(data, size, max_size);
  std::vector<std::uint8_t> header(data + 8, data + 8 + hlen), body(data + 8 + hlen, data + size);
  const std::size_t room = max_size - 8;
  if (seed % 3 != 0) {  // the header, most of the time
    const std::size_t cap = room > body.size() ? room - body.size() : 0;
    if (cap == 0 || cap < header.size()) return LLVMFuzzerMutate(data, size, max_size);
    header.resize(std::max(cap, header.size()));
    const std::size_t n = LLVMFuzzerMutate(header.data(), hlen, cap);
    header.resize(n);
  } else {
    const std::size_t cap = room > header.size() ? room - header.size() : 0;
    if (cap == 0 || body.empty() || cap < body.size()) return LLVMFuzzerMutate(data, size, max_size);
    body.resize(std::max(cap, body.size()));
    const std::size_t n = LLVMFuzzerMutate(body.data(), size - 8 - hlen, cap);
    body.resize(n);
  }
  const std::uint64_t nh = header.size();
  if (8 + header.size() + body.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, &nh, 8);
  if (!header.empty()) std::memcpy(data + 8, header.data(), header.size());  // memcpy from an empty vector's null: UB
  if (!body.empty()) std::memcpy(data + 8 + header.size(), body.data(), body.size());
  return 8 + header.size() + body.size();
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  {
    std::ofstream out(g_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const qcast::PackedFile pf = qcast::read_packed(g_path);
    for (const auto& [name, e] : pf.quantized) {
      const std::int64_t n = qcast::shape_numel(e.shape);
      if (n < 0 || n > (std::int64_t(1) << 22)) continue;
      std::vector<float> out(static_cast<std::size_t>(n));
      qcast::decode(e, out.data());
      volatile float sink = 0;
      for (float v : out) sink = sink + v;
    }
  } catch (const qcast::Error&) {
  }
  return 0;
}
