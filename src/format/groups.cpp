#include "qcast/format/groups.hpp"

#include <algorithm>

#include "qcast/error.hpp"

namespace qcast {

namespace {

int resolve_axis(int axis, std::size_t ndim, const Shape& shape, const Format& f) {
  const int nd = static_cast<int>(ndim);
  const int a = axis < 0 ? axis + nd : axis;
  if (a < 0 || a >= nd)
    throw Error("axis " + std::to_string(axis) + " is out of range for shape " + shape_str(shape) + " (format " + f.name() + ")");
  return a;
}

}  // namespace

GroupLayout GroupLayout::make(const Format& f, const Shape& shape, int axis_option) {
  GroupLayout g;
  g.kind = f.scaling().kind;
  g.numel = shape_numel(shape);
  const auto& s = f.scaling();
  switch (s.kind) {
    case ScaleKind::None:
      g.num_groups = 0;
      break;
    case ScaleKind::Tensor:
      g.num_groups = 1;
      g.len = g.numel;
      break;
    case ScaleKind::Block:
    case ScaleKind::Channel: {
      if (shape.empty()) throw Error("format " + f.name() + " needs a tensor with at least one axis, got a scalar");
      const int axis = s.axis_explicit ? s.axis : (s.kind == ScaleKind::Channel ? 0 : axis_option);
      g.axis = resolve_axis(axis, shape.size(), shape, f);
      for (int i = 0; i < g.axis; ++i) g.outer *= shape[i];
      g.len = shape[g.axis];
      for (std::size_t i = g.axis + 1; i < shape.size(); ++i) g.inner *= shape[i];
      if (s.kind == ScaleKind::Block) {
        if (s.block <= 0) throw Error("block size must be positive (format " + f.name() + ")");
        g.block = s.block;
        g.nblocks = (g.len + g.block - 1) / g.block;
        g.num_groups = g.outer * g.nblocks * g.inner;
      } else {
        g.num_groups = g.len;
      }
      break;
    }
    case ScaleKind::Tile: {
      if (s.tile_rows <= 0 || s.tile_cols <= 0) throw Error("tile sizes must be positive (format " + f.name() + ")");
      g.cols = shape.empty() ? 1 : shape.back();
      g.rows = shape.size() >= 2 ? shape[shape.size() - 2] : 1;
      g.outer = (g.rows * g.cols != 0) ? g.numel / (g.rows * g.cols) : 0;
      g.tr = s.tile_rows;
      g.tc = s.tile_cols;
      g.ntr = (g.rows + g.tr - 1) / g.tr;
      g.ntc = (g.cols + g.tc - 1) / g.tc;
      g.num_groups = g.outer * g.ntr * g.ntc;
      break;
    }
  }
  if (g.numel == 0) g.num_groups = 0;
  return g;
}

void GroupLayout::enumerate(std::int64_t g0, std::int64_t g1,
                            const std::function<void(std::int64_t, const std::vector<std::int64_t>&)>& fn) const {
  std::vector<std::int64_t> off;
  for (std::int64_t gid = g0; gid < g1; ++gid) {
    off.clear();
    switch (kind) {
      case ScaleKind::None:
        return;
      case ScaleKind::Tensor:
        off.resize(static_cast<std::size_t>(numel));
        for (std::int64_t i = 0; i < numel; ++i) off[static_cast<std::size_t>(i)] = i;
        break;
      case ScaleKind::Block: {
        const std::int64_t i = gid % inner, b = (gid / inner) % nblocks, o = gid / (inner * nblocks);
        for (std::int64_t l = b * block; l < std::min(len, (b + 1) * block); ++l) off.push_back((o * len + l) * inner + i);
        break;
      }
      case ScaleKind::Channel:
        for (std::int64_t o = 0; o < outer; ++o)
          for (std::int64_t i = 0; i < inner; ++i) off.push_back((o * len + gid) * inner + i);
        break;
      case ScaleKind::Tile: {
        const std::int64_t c = gid % ntc, r = (gid / ntc) % ntr, o = gid / (ntc * ntr);
        for (std::int64_t y = r * tr; y < std::min(rows, (r + 1) * tr); ++y)
          for (std::int64_t x = c * tc; x < std::min(cols, (c + 1) * tc); ++x) off.push_back((o * rows + y) * cols + x);
        break;
      }
    }
    fn(gid, off);
  }
}

}  // namespace qcast
