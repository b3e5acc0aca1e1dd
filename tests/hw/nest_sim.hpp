// A brute-force simulator of a mapped loop nest (test utility): replays every iteration, keeps the
// exact set of data-space points each storage instance holds per time step, and counts fills as set
// differences between consecutive tiles, parent reads as the union of what the children receive at
// the same step (multicast), partition sizes as the union over time. It shares only the counting
// conventions with src/hw/analysis.cpp (reads per MAC, outputs' first read skipped), none of the
// closed-form box arithmetic, so agreement checks the latter.
#pragma once
#include <map>
#include <set>
#include <vector>

#include "qcast/hw.hpp"

namespace qcast::hw::sim {

struct Counts {
  std::int64_t reads = 0, fills = 0, updates = 0, capacity = 0;
};

struct Result {
  // [level][data space], per instance (checked identical across instances)
  std::vector<std::vector<Counts>> c;
  bool uniform = true;  // all instances of a level saw the same counts
  std::int64_t cycles = 0;
};

inline Result simulate(const Problem& p, const Architecture& a, const Mapping& m) {
  const int L = static_cast<int>(a.levels.size()), D = static_cast<int>(p.dims.size()),
            S = static_cast<int>(p.data_spaces.size());
  struct Lp {
    int dim;
    std::int64_t f;
    int level;
    bool spatial;
  };
  std::vector<Lp> loops;  // outermost first
  for (int i = L - 1; i >= 0; --i) {
    const auto& lm = m.levels[i];
    for (int k = static_cast<int>(lm.permutation.size()) - 1; k >= 0; --k)
      if (lm.temporal[lm.permutation[k]] > 1) loops.push_back({lm.permutation[k], lm.temporal[lm.permutation[k]], i, false});
    for (int d = 0; d < D; ++d)
      if (lm.spatial[d] > 1) loops.push_back({d, lm.spatial[d], i, true});
  }
  const int N = static_cast<int>(loops.size());
  using Point = std::vector<std::int64_t>;
  using Key = std::vector<std::int64_t>;
  auto point_of = [&](const std::vector<std::int64_t>& idx) {
    // dimension value: mixed radix, outer loops are the high digits
    std::vector<std::int64_t> v(D, 0);
    for (int k = 0; k < N; ++k) v[loops[k].dim] = v[loops[k].dim] * loops[k].f + idx[k];
    return v;
  };
  auto ds_point = [&](int s, const std::vector<std::int64_t>& v) {
    Point q;
    for (auto& axis : p.data_spaces[s].projection) {
      std::int64_t x = 0;
      for (auto& t : axis) x += t.coef * v[t.dim];
      q.push_back(x);
    }
    return q;
  };
  // Which loops are spatial above level i (instance key) / temporal above i (time key).
  auto key_of = [&](const std::vector<std::int64_t>& idx, int above, bool spatial) {
    Key k;
    for (int j = 0; j < N; ++j)
      if (loops[j].level > above && loops[j].spatial == spatial) k.push_back(idx[j]);
    return k;
  };
  // tiles[i][s][instance][time] = set of points
  using Tiles = std::map<Key, std::map<Key, std::set<Point>>>;
  std::vector<std::vector<Tiles>> tiles(L, std::vector<Tiles>(S));
  // compute-level: per innermost keeper instance and full time step, operand points needed
  std::vector<std::int64_t> idx(N, 0);
  std::int64_t T = 1;
  for (auto& l : loops)
    if (!l.spatial) T *= l.f;
  std::vector<int> keeper0(S, -1);
  for (int s = 0; s < S; ++s)
    for (int i = 0; i < L; ++i)
      if (m.levels[i].keep[s]) {
        keeper0[s] = i;
        break;
      }
  std::vector<std::map<Key, std::map<Key, std::set<Point>>>> macreads(S);
  for (;;) {
    auto v = point_of(idx);
    for (int s = 0; s < S; ++s) {
      auto q = ds_point(s, v);
      for (int i = 0; i < L; ++i)
        if (m.levels[i].keep[s]) tiles[i][s][key_of(idx, i, true)][key_of(idx, i, false)].insert(q);
      int k0 = keeper0[s];
      macreads[s][key_of(idx, k0, true)][key_of(idx, -1, false)].insert(q);
    }
    int k = N - 1;
    while (k >= 0 && ++idx[k] == loops[k].f) idx[k--] = 0;
    if (k < 0) break;
  }
  Result r;
  r.cycles = T;
  r.c.assign(L, std::vector<Counts>(S));
  // Per level & instance: delta fills, partition, capacity; and per time step the deltas.
  struct Inst {
    std::int64_t dfill = 0, part = 0, cap = 0;
    std::map<Key, std::set<Point>> delta;  // per time step
  };
  std::vector<std::vector<std::map<Key, Inst>>> inst(L, std::vector<std::map<Key, Inst>>(S));
  for (int i = 0; i < L; ++i)
    for (int s = 0; s < S; ++s)
      for (auto& [ik, steps] : tiles[i][s]) {
        Inst& in = inst[i][s][ik];
        std::set<Point> prev, all;
        const Key* prev_key = nullptr;
        for (auto& [tk, pts] : steps) {  // std::map orders time keys lexicographically = execution order
          std::set<Point> d;
          for (auto& q : pts)
            if (!prev.count(q)) d.insert(q);
          // Timeloop's rule: across a step where inner loops restart (the keys differ before their
          // last position), a tile that moved at all is filled whole (no sliding-window overlap).
          if (prev_key && !d.empty() && !std::equal(tk.begin(), tk.end() - 1, prev_key->begin())) d = pts;
          prev_key = &tk;
          in.dfill += static_cast<std::int64_t>(d.size());
          in.delta[tk] = d;
          in.cap = std::max<std::int64_t>(in.cap, static_cast<std::int64_t>(pts.size()));
          all.insert(pts.begin(), pts.end());
          prev = pts;
        }
        in.part = static_cast<std::int64_t>(all.size());
      }
  auto prefix = [&](const Key& child_inst, int child, int parent) {
    // the parent's instance key: spatial loops at levels > parent (a prefix of the child's key)
    size_t n = 0;
    for (int j = 0; j < N; ++j)
      if (loops[j].spatial && loops[j].level > parent) ++n;
    (void)child;
    return Key(child_inst.begin(), child_inst.begin() + static_cast<long>(n));
  };
  for (int s = 0; s < S; ++s) {
    const bool rw = p.data_spaces[s].read_write;
    int child = -1;
    for (int i = 0; i < L; ++i) {
      if (!m.levels[i].keep[s]) continue;
      const bool top = i == L - 1;
      std::map<Key, Counts> per;
      for (auto& [ik, in] : inst[i][s]) {
        Counts& c = per[ik];
        c.capacity = in.cap;
        if (!rw) c.fills = top ? 0 : in.dfill;
        else c.fills = top ? 0 : in.dfill - in.part;
      }
      // Operands: what the MACs (or children) need at each step, multicast (a union per step).
      // Outputs: what they drain at each step, spatially reduced (the same union per step); every
      // update but an element's first needs a read.
      if (child < 0) {
        for (auto& [ik, steps] : macreads[s]) {
          std::int64_t n = 0;
          for (auto& [tk, pts] : steps) n += static_cast<std::int64_t>(pts.size());
          if (!rw)
            per[ik].reads = n;
          else {
            per[ik].updates = n;
            per[ik].reads = n - inst[i][s][ik].part;
          }
        }
      } else {
        // union over children of the same parent instance of what they receive at each step
        std::map<Key, std::map<Key, std::set<Point>>> recv;
        for (auto& [ck, cin] : inst[child][s]) {
          Key pk = prefix(ck, child, i);
          for (auto& [tk, d] : cin.delta) recv[pk][tk].insert(d.begin(), d.end());
        }
        for (auto& [pk, steps] : recv) {
          std::int64_t n = 0;
          for (auto& [tk, d] : steps) n += static_cast<std::int64_t>(d.size());
          if (!rw) {
            per[pk].reads = n;
          } else {
            per[pk].updates = n;
            per[pk].reads = n - inst[i][s][pk].part;
          }
        }
      }
      bool first = true;
      for (auto& [k, c] : per) {
        if (first) r.c[i][s] = c;
        else if (c.reads != r.c[i][s].reads || c.fills != r.c[i][s].fills || c.updates != r.c[i][s].updates ||
                 c.capacity != r.c[i][s].capacity)
          r.uniform = false;
        first = false;
      }
      child = i;
    }
  }
  return r;
}

}  // namespace qcast::hw::sim
