// Test helper: a packed file whose metadata or streams were changed after encoding.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/packed.hpp"
#include "qcast/quantize.hpp"

namespace qcast::test {

// A packed file of one [4, 64] tensor encoded as `format`, with its metadata then rewritten by `edit`.
inline void write_packed_edited(const std::string& path, const std::string& format,
                         const std::function<void(qcast::PackedFile&)>& edit) {
  std::vector<float> x(256);
  for (int k = 0; k < 256; ++k) x[k] = static_cast<float>(k % 13) - 6.0f;
  qcast::PackedFile pf;
  pf.quantized.emplace_back("w", qcast::encode(qcast::Format::parse(format), x.data(), {4, 64}));
  edit(pf);
  qcast::write_packed(path, pf);
}

}  // namespace qcast::test
