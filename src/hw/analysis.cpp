// The nest analysis: per level and data space reads, fills, updates; cycles; energy.
//
// The mapping is flattened into one loop nest, outermost first: for each storage level from the
// outermost down, its temporal loops (outer) then its spatial loops. The tile an instance of level i
// holds is the box of data touched by all loops of level i and below. Each time a temporal loop
// above i advances (the loops between it and level i wrapping around), the tile moves; the new data
// (tile minus its overlap with the previous tile) is filled. This is Timeloop's delta rule, computed
// in closed form from box extents and shifts, so an evaluation costs microseconds. Like Timeloop, a
// partial overlap (sliding window) is only kept when the advancing loop is the innermost temporal
// loop above the tile; when inner loops restart with it, only a tile that did not move is kept.
//
// Counting conventions (Timeloop's, checked against its stats.txt):
//  - the innermost level keeping an operand is read once per MAC (multicast across spatial loops of
//    dimensions the operand does not depend on);
//  - a level is read by its child keeper once per element the child fills;
//  - outputs: every incoming partial sum is an update, after spatial reduction of partial sums of the
//    same element; reads = updates - distinct elements (the first access of an element needs no
//    read; the others are read to accumulate or sent back down to the child that continues them);
//    the outermost level has no fills.
#include <algorithm>
#include <cmath>

#include "qcast/error.hpp"
#include "qcast/hw.hpp"

namespace qcast::hw {

namespace {

struct Loop {
  int dim;
  std::int64_t f;
  int level;
  bool spatial;
  std::int64_t w;  // mixed-radix weight: product of the factors of inner loops on the same dimension
};

std::int64_t box(const DataSpace& ds, const std::vector<std::int64_t>& E) {
  std::int64_t n = 1;
  for (auto& axis : ds.projection) {
    std::int64_t e = 1;
    for (auto& t : axis) e += t.coef * (E[t.dim] - 1);
    n *= e;
  }
  return n;
}

}  // namespace

Evaluation evaluate(const Problem& p, const Architecture& a, const Mapping& m, const Precision& prec) {
  Evaluation ev;
  const int L = static_cast<int>(a.levels.size());
  const int D = static_cast<int>(p.dims.size());
  const int S = static_cast<int>(p.data_spaces.size());
  ev.computes = p.computes();
  if (std::string why = m.check(p, a); !why.empty()) {
    ev.reason = why;
    return ev;
  }

  // Counts can exceed 64 bits only for absurd inputs (huge strides with huge bounds); such an
  // evaluation is reported invalid instead of wrapping.
  bool ovf = false;
  auto mulc = [&](std::int64_t x, std::int64_t y) {
    std::int64_t r;
    if (__builtin_mul_overflow(x, y, &r)) ovf = true, r = 0;
    return r;
  };
  auto addc = [&](std::int64_t x, std::int64_t y) {
    std::int64_t r;
    if (__builtin_add_overflow(x, y, &r)) ovf = true, r = 0;
    return r;
  };

  // Flatten, outermost first.
  std::vector<Loop> loops;
  for (int i = L - 1; i >= 0; --i) {
    const auto& lm = m.levels[i];
    for (int k = static_cast<int>(lm.permutation.size()) - 1; k >= 0; --k) {
      int d = lm.permutation[k];
      if (lm.temporal[d] > 1) loops.push_back({d, lm.temporal[d], i, false, 1});
    }
    for (int d = 0; d < D; ++d)
      if (lm.spatial[d] > 1) loops.push_back({d, lm.spatial[d], i, true, 1});
  }
  // loops[first[i]..] belong to level i and below.
  std::vector<int> first(L, 0);
  {
    int idx = 0;
    for (int i = L - 1; i >= 0; --i) {
      first[i] = idx;
      for (auto& lp : loops)
        if (lp.level == i) ++idx;
    }
  }
  const int NL = static_cast<int>(loops.size());
  {
    std::vector<std::int64_t> inner(D, 1);
    for (int k = NL - 1; k >= 0; --k) {
      loops[k].w = inner[loops[k].dim];
      inner[loops[k].dim] *= loops[k].f;
    }
  }
  std::int64_t T = 1;
  for (auto& lp : loops)
    if (!lp.spatial) T *= lp.f;
  ev.cycles = T;

  // Spatial products over levels lo..hi (inclusive), all dims or only those relevant to ds.
  auto sp_prod = [&](int lo, int hi, int ds) {
    std::int64_t n = 1;
    for (int i = lo; i <= hi; ++i)
      for (int d = 0; d < D; ++d)
        if (m.levels[i].spatial[d] > 1 && (ds < 0 || p.relevant(ds, d))) n *= m.levels[i].spatial[d];
    return n;
  };

  // Per level, per data space: tile size, delta fills, partition size.
  std::vector<std::vector<std::int64_t>> tile(L, std::vector<std::int64_t>(S, 0)), dfill = tile, part = tile;
  std::vector<std::int64_t> E(D), Ep(D), shift(D);
  for (int i = 0; i < L; ++i) {
    std::fill(E.begin(), E.end(), 1);
    for (int k = first[i]; k < NL; ++k) E[loops[k].dim] *= loops[k].f;
    Ep = E;
    for (int k = 0; k < first[i]; ++k)
      if (!loops[k].spatial) Ep[loops[k].dim] *= loops[k].f;
    for (int s = 0; s < S; ++s) {
      if (!m.levels[i].keep[s]) continue;
      const DataSpace& ds = p.data_spaces[s];
      std::int64_t t = box(ds, E);
      tile[i][s] = t;
      part[i][s] = box(ds, Ep);
      std::int64_t fills = t, outer = 1;
      for (int j = 0; j < first[i]; ++j) {
        if (loops[j].spatial) continue;
        std::int64_t adv = (loops[j].f - 1) * outer;
        outer *= loops[j].f;
        std::fill(shift.begin(), shift.end(), 0);
        shift[loops[j].dim] += loops[j].w;
        bool wraps = false;  // an inner temporal loop above the tile restarts when loop j advances
        for (int l = j + 1; l < first[i]; ++l)
          if (!loops[l].spatial) shift[loops[l].dim] -= (loops[l].f - 1) * loops[l].w, wraps = true;
        std::int64_t overlap = 1;
        for (auto& axis : ds.projection) {
          std::int64_t ext = 1, sh = 0;
          for (auto& tm : axis) {
            ext += tm.coef * (E[tm.dim] - 1);
            sh += tm.coef * shift[tm.dim];
          }
          overlap *= std::max<std::int64_t>(0, ext - std::llabs(sh));
        }
        // Timeloop keeps a partly overlapping tile (a sliding window) only across consecutive steps
        // of the innermost loop above it; when inner loops restart, only an unchanged tile is kept
        // (its stats: e.g. the 04 exercise's RegisterFile inputs, simple_output_stationary's buffer).
        if (wraps && overlap < t) overlap = 0;
        fills = addc(fills, mulc(adv, t - overlap));
      }
      dfill[i][s] = fills;
    }
  }

  ev.levels.resize(L);
  for (int i = 0; i < L; ++i) {
    ev.levels[i].name = a.levels[i].name;
    ev.levels[i].ds.resize(S);
    ev.levels[i].utilized_instances = sp_prod(i + 1, L - 1, -1);
  }
  ev.mac_instances_used = sp_prod(0, L - 1, -1);

  for (int s = 0; s < S; ++s) {
    const bool rw = p.data_spaces[s].read_write;
    int child = -1;
    for (int i = 0; i < L; ++i) {
      if (!m.levels[i].keep[s]) continue;
      DataSpaceStats& st = ev.levels[i].ds[s];
      st.utilized_capacity = tile[i][s];
      st.partition_size = part[i][s];
      const bool top = i == L - 1;
      if (!rw) {
        if (child < 0)
          st.reads = mulc(T, sp_prod(0, i, s));
        else
          st.reads = mulc(dfill[child][s], sp_prod(child + 1, i, s));
        st.fills = top ? 0 : dfill[i][s];
      } else {
        // Partial sums of instances that hold the same outputs at the same time (spatial loops over
        // dimensions the outputs do not depend on, e.g. input channels) are reduced on the way up
        // (Timeloop's spatial reduction): only the relevant fanout multiplies the updates.
        std::int64_t content;
        if (child < 0)
          content = mulc(T, sp_prod(0, i, s));
        else
          content = mulc(dfill[child][s], sp_prod(child + 1, i, s));
        st.updates = content;
        // Every update but an element's first needs the element's previous value: read here for the
        // accumulation or sent back down to the child that continues it (the child's fills).
        st.reads = std::max<std::int64_t>(0, content - part[i][s]);
        st.fills = top ? 0 : dfill[i][s] - part[i][s];
      }
      child = i;
    }
  }

  // Capacity, bandwidth, energy.
  std::int64_t cycles = T;
  for (int i = 0; i < L; ++i) {
    const StorageLevel& lv = a.levels[i];
    LevelStats& ls = ev.levels[i];
    double bits_used = 0;
    std::int64_t words_used = 0, rd = 0, wr = 0;
    double e = 0;
    for (int s = 0; s < S; ++s) {
      if (!m.levels[i].keep[s]) continue;
      DataSpaceStats& st = ls.ds[s];
      // With a recipe, outputs move as partial sums (the accumulator's width, or the recipe's
      // partial_sums) everywhere except the final values written to the backing store (the outputs'
      // format): those are the first update of each element there.
      const bool rw = p.data_spaces[s].read_write, top = i == L - 1;
      const double bits = prec.empty() ? static_cast<double>(lv.datawidth)
                          : rw && !top ? prec.psum_bits()
                                       : prec.bits(role_of(p.data_spaces[s]));
      const double pbits = prec.empty() || !rw ? bits : prec.psum_bits();
      const std::int64_t final_updates = rw && top ? std::min(st.updates, st.partition_size) : st.updates;
      const std::int64_t psum_updates = st.updates - final_updates;
      words_used = addc(words_used, st.utilized_capacity);
      bits_used += static_cast<double>(st.utilized_capacity) * bits;
      rd = addc(rd, st.reads);
      wr = addc(wr, addc(st.fills, st.updates));
      st.traffic_bits = static_cast<double>(final_updates) * bits +
                        static_cast<double>(st.reads + st.fills + psum_updates) * pbits;
      auto vec = [&](std::int64_t n, double b) -> double {
        if (n <= 0) return 0.0;
        if (prec.empty()) {
          std::int64_t bs = lv.block_size();
          return static_cast<double>((n + bs - 1) / bs);
        }
        return std::ceil(static_cast<double>(n) * b / static_cast<double>(lv.width) - 1e-9);
      };
      double upd = psum_updates == 0 ? vec(final_updates, bits)
                   : final_updates == 0 ? vec(psum_updates, pbits)
                   : std::ceil((static_cast<double>(final_updates) * bits + static_cast<double>(psum_updates) * pbits) /
                                   static_cast<double>(lv.width) - 1e-9);
      if (prec.empty()) upd = vec(st.updates, bits);
      double es = vec(st.reads, pbits) * lv.energy.read + vec(st.fills, pbits) * lv.energy.write + upd * lv.energy.update;
      // Instances of a cluster share each vector access (Timeloop: utilized clusters = min(utilized
      // instances, instances / cluster size), with the used instances spread over all clusters).
      const std::int64_t clusters =
          std::min(ls.utilized_instances, lv.instances / std::max<std::int64_t>(1, lv.cluster_size));
      st.energy_pj = es * static_cast<double>(clusters);
      e += st.energy_pj;
    }
    ls.capacity_bits = bits_used;
    if (lv.depth > 0) {
      bool over = prec.empty() ? words_used > lv.size_words()
                               : bits_used > static_cast<double>(lv.depth) * static_cast<double>(lv.width) + 1e-9;
      if (over && ev.reason.empty()) {  // the innermost level that overflows, as Timeloop reports it
        ev.reason = "tiles at " + lv.name + " need " +
                    (prec.empty() ? std::to_string(words_used) + " words" : std::to_string(static_cast<std::int64_t>(bits_used)) + " bits") +
                    ", more than its capacity of " +
                    (prec.empty() ? std::to_string(lv.size_words()) + " words" : std::to_string(lv.depth * lv.width) + " bits");
      }
    }
    auto throttle = [&](std::int64_t n, double bw) {
      if (bw <= 0) return;
      double c = std::ceil(static_cast<double>(n) / bw);
      if (!(c < 9.2e18)) ovf = true;
      else cycles = std::max(cycles, static_cast<std::int64_t>(c));
    };
    throttle(rd, lv.read_bandwidth);
    throttle(wr, lv.write_bandwidth);
    ls.energy_pj = e;
  }
  if (ovf) ev.reason = "the access counts of this mapping overflow 64 bits";
  ev.cycles = cycles;
  double mac_e = a.arith.energy.compute;
  if (!prec.empty()) {
    // The format-aware MAC model (src/hw/mac.cpp); an ERT's compute energy is taken as an intN x intN
    // MAC of the arithmetic's datawidth and scaled by the model's ratio. Evaluations of one search
    // share the precision, so the last result is kept per thread.
    thread_local std::string last_key;
    thread_local double last_e = 0, last_ref = 0;
    const std::string key = prec.weights + "|" + prec.activations + "|" + prec.accumulator_format() + "|" +
                            std::to_string(a.arith.datawidth);
    if (key != last_key) {
      last_e = mac_cost(prec.weights, prec.activations, prec.accumulator_format()).total();
      const std::string ref = "int" + std::to_string(a.arith.datawidth ? a.arith.datawidth : 8);
      last_ref = mac_cost(ref, ref).total();
      last_key = key;
    }
    mac_e = a.arith.energy.source == "ERT" ? a.arith.energy.compute * last_e / last_ref : last_e;
  }
  ev.mac_energy_pj = mac_e * static_cast<double>(ev.computes);
  ev.energy_pj = ev.mac_energy_pj;
  for (int i = 0; i < L; ++i) {
    LevelStats& ls = ev.levels[i];
    // Leakage of the utilized instances (Timeloop's "Leakage energy (total)"), also where the level
    // keeps nothing (it is powered all the same).
    ls.leak_pj = a.levels[i].energy.leak * static_cast<double>(cycles) * static_cast<double>(ls.utilized_instances);
    ls.energy_pj += ls.leak_pj;
    ev.energy_pj += ls.energy_pj;
  }
  ev.utilization = static_cast<double>(ev.computes) / (static_cast<double>(cycles) * static_cast<double>(a.arith.instances));
  ev.valid = ev.reason.empty();
  return ev;
}

}  // namespace qcast::hw
