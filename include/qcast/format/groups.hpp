// Scale-group geometry: how a tensor of a given shape splits into the groups that share one scale under a
// format (per tensor, per channel, blocks along an axis, 2-D tiles). The one place this index math lives:
// the reference and SIMD kernels, PTQ and the packed-file reader all enumerate groups through it.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/tensor.hpp"

namespace qcast {

/// How a tensor splits into scale groups. Groups are numbered in the order of enumerate().
struct GroupLayout {
  ScaleKind kind = ScaleKind::None;
  std::int64_t numel = 0;
  std::int64_t outer = 1, len = 1, inner = 1;  // Block / Channel: shape viewed as [outer, len, inner] around `axis`
  int axis = -1;                               // resolved, non-negative (Block/Channel), else -1
  std::int64_t block = 0, nblocks = 0;         // Block
  std::int64_t rows = 1, cols = 1, tr = 1, tc = 1, ntr = 1, ntc = 1;  // Tile over the last two axes
  std::int64_t num_groups = 0;

  static GroupLayout make(const Format& f, const Shape& shape, int axis_option);
  /// Calls fn(group_id, offsets) for groups [g0, g1), offsets being flat element indices in the group.
  void enumerate(std::int64_t g0, std::int64_t g1, const std::function<void(std::int64_t, const std::vector<std::int64_t>&)>& fn) const;
};

}  // namespace qcast
