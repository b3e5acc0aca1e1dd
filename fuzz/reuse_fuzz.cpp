// libFuzzer target: the `qcast reuse` loop-nest text (`for j<N; for i<M: B[j][i] += A[i]`) and its
// transformations. Input: the nest on the first line; later lines are commands, one per line:
// `N=8` (a parameter), `x i,j` (interchange), `t i:4` (tile). The parser and the transformations must
// refuse bad text with qcast::Error; a nest that parses is traced (capped at 2^16 accesses, as the
// command caps at 2^24) and its re-use profile computed.
// Seeds: fuzz/seeds/reuse (hand-written nests in the docs' style); dictionary fuzz/dicts/reuse.dict.
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/reuse.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qcast::hw;
  if (size > 4096) return 0;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string nest, line;
  std::getline(in, nest);
  std::map<std::string, std::int64_t> params;
  std::vector<std::string> cmds;
  while (std::getline(in, line)) {
    if (const auto eq = line.find('='); eq != std::string::npos && line.rfind("x ", 0) != 0 && line.rfind("t ", 0) != 0) {
      try {
        params[line.substr(0, eq)] = std::stoll(line.substr(eq + 1));
      } catch (...) {
      }
    } else {
      cmds.push_back(line);
    }
  }
  try {
    LoopNest n = LoopNest::parse(nest, params);
    for (const auto& c : cmds) {
      if (c.size() < 2) continue;
      const std::string arg = c.substr(2);
      if (c[0] == 'x') {
        const auto comma = arg.find(',');
        if (comma != std::string::npos) n = n.interchange(arg.substr(0, comma), arg.substr(comma + 1));
      } else if (c[0] == 't') {
        const auto colon = arg.find(':');
        if (colon == std::string::npos) continue;
        std::int64_t t = 0;
        try {
          t = std::stoll(arg.substr(colon + 1));
        } catch (...) {
          continue;
        }
        n = n.tile(arg.substr(0, colon), t);
      }
    }
    (void)n.to_string();
    (void)n.accesses();
    std::vector<std::uint64_t> trace;
    n.trace([&](int, std::uint64_t addr) { trace.push_back(addr); }, std::int64_t(1) << 16);
    const ReuseProfile p = profile(reuse_distances(trace));
    (void)p.miss_ratio_curve();
    (void)p.log2_bins();
    for (const auto& a : n.arrays()) (void)n.address(a, std::vector<std::int64_t>(1, 0));
  } catch (const qcast::Error&) {
  }
  return 0;
}
