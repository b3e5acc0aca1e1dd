// The mapper: exhaustive enumeration of small spaces, seeded random sampling + local search otherwise.
#include "qcast/mapper.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <tuple>

#include "hw/yaml_util.hpp"
#include "qcast/error.hpp"

namespace qcast::hw {

Objective parse_objective(const std::string& s) {
  if (s == "energy") return Objective::Energy;
  if (s == "delay" || s == "cycles" || s == "latency") return Objective::Delay;
  if (s == "edp") return Objective::EDP;
  throw Error("unknown search objective '" + s + "' (energy|delay|edp)");
}

double objective_value(const Evaluation& e, Objective o) {
  if (!e.valid) return std::numeric_limits<double>::infinity();
  switch (o) {
    case Objective::Energy: return e.energy_pj;
    case Objective::Delay: return static_cast<double>(e.cycles);
    case Objective::EDP: return e.edp();
  }
  return e.energy_pj;
}

MapperSettings read_mapper_yaml_file(const std::string& path) {
  return read_mapper_yaml_text(detail::read_text(path, "mapper"), path);
}

MapperSettings read_mapper_yaml_text(const std::string& text, const std::string& source) try {
  YAML::Node root = detail::load(text, source);
  YAML::Node m = root.IsMap() && root["mapper"] ? root["mapper"] : root;
  if (!m.IsMap()) throw Error(source + ": expected 'mapper: {optimization_metrics: [...], ...}' (Timeloop mapper settings)");
  MapperSettings s;
  for (auto it : m) {
    const std::string k = it.first.as<std::string>();
    if (k == "optimization_metrics" || k == "optimization-metrics" || k == "optimization_metric") {
      std::vector<std::string> ms;
      if (it.second.IsSequence())
        for (auto x : it.second) ms.push_back(detail::as_str(x, source, k));
      else
        ms.push_back(detail::as_str(it.second, source, k));
      if (ms.empty()) throw Error(source + ": optimization_metrics is empty");
      try {
        s.objective = parse_objective(ms[0]);
      } catch (const Error&) {
        throw Error(source + ": optimization metric '" + ms[0] + "' is not supported (energy|delay|edp)");
      }
      s.has_objective = true;
      if (ms.size() > 1) s.notes.push_back(source + ": only the first optimization metric (" + ms[0] + ") is used; ties are broken by cycles (or energy for delay)");
    } else if (k != "version") {
      s.notes.push_back(source + ": mapper setting '" + k + "' ignored (qcast's mapper budget: --samples, --refine, --time-limit)");
    }
  }
  return s;
} catch (const YAML::Exception& e) {
  throw detail::yaml_error(source, e, "mapper settings");
}

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::int64_t> primes_of(std::int64_t n) {
  std::vector<std::int64_t> f;
  for (std::int64_t p = 2; p <= n / p; ++p)
    while (n % p == 0) f.push_back(p), n /= p;
  if (n > 1) f.push_back(n);
  return f;
}

// Every divisor of n, ascending (from its prime factors: no loop up to n).
std::vector<std::int64_t> divisors_of(std::int64_t n) {
  std::vector<std::int64_t> out{1};
  auto pr = primes_of(n);
  for (size_t i = 0; i < pr.size();) {
    size_t j = i;
    while (j < pr.size() && pr[j] == pr[i]) ++j;
    const size_t base = out.size();
    std::int64_t mult = 1;
    for (size_t e = i; e < j; ++e) {
      mult *= pr[i];
      for (size_t b = 0; b < base; ++b) out.push_back(out[b] * mult);
    }
    i = j;
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Secondary key so that equal energies prefer fewer cycles (and vice versa).
std::pair<double, double> key(const Evaluation& e, Objective o) {
  double a = objective_value(e, o);
  double b = !e.valid ? std::numeric_limits<double>::infinity()
             : o == Objective::Delay ? e.energy_pj
                                     : static_cast<double>(e.cycles);
  return {a, b};
}

std::mt19937_64 make_rng(std::uint64_t seed, std::uint64_t stream) {
  std::seed_seq seq{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                    static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32), 0x9e3779b9u};
  return std::mt19937_64(seq);
}

struct Candidate {
  Mapping m;
  Evaluation e;
  std::pair<double, double> k;
  std::uint64_t order;  // deterministic tie-break
};

bool better(const Candidate& a, const Candidate& b) {
  if (a.k != b.k) return a.k < b.k;
  return a.order < b.order;
}

// Runs fn(chunk) for chunk in [0, n) on `threads` workers.
void parallel_chunks(int threads, std::int64_t n, const std::function<void(std::int64_t)>& fn) {
  std::atomic<std::int64_t> next{0};
  auto work = [&] {
    for (std::int64_t c; (c = next.fetch_add(1)) < n;) fn(c);
  };
  int t = static_cast<int>(std::min<std::int64_t>(std::max(1, threads), std::max<std::int64_t>(1, n)));
  std::vector<std::thread> pool;
  for (int i = 1; i < t; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

// Slots a prime factor can go to: (level, spatial?). Spatial only where the level has a fanout.
struct Slot {
  int level;
  bool spatial;
};

std::vector<Slot> slots_of(const Architecture& a) {
  std::vector<Slot> s;
  for (int i = 0; i < static_cast<int>(a.levels.size()); ++i) {
    s.push_back({i, false});
    if (a.fanout(i) > 1) s.push_back({i, true});
  }
  return s;
}

// The architecture's mapspace constraints resolved against a problem: fixed keep / bypass, factors
// fixed to 1, and loop orders that must be innermost.
struct Rules {
  std::vector<std::vector<int>> keep;  // [level][data space]: -1 free, 0 bypass, 1 keep
  std::vector<std::vector<std::int64_t>> t_fix, s_fix;  // [level][dim]: 0 free, else the fixed factor
  std::vector<std::vector<int>> inner;  // [level]: dims that must be innermost, in this order
  std::vector<std::vector<int>> axis;   // [level][dim]: -1 free, 0 meshX, 1 meshY (a constraint's split)
  std::vector<std::int64_t> free_part;  // [dim]: the bound divided by the fixed factors

  std::int64_t fixed(const Slot& s, int d) const { return (s.spatial ? s_fix : t_fix)[s.level][d]; }
  bool allowed(const Slot& s, int d) const { return fixed(s, d) == 0; }
};

std::vector<int> resolve_dims(const Problem& p, const std::vector<std::string>& names) {
  std::vector<int> out;
  auto add = [&](int d) {
    if (d >= 0 && std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  };
  for (auto& n : names) {
    int d = p.dim_index(n);
    if (d >= 0) {
      add(d);
      continue;
    }
    // "PQRS": one letter per dimension (names that are not dimensions of this problem are skipped,
    // as Timeloop skips them for problems that lack them).
    for (char c : n) add(p.dim_index(std::string(1, c)));
  }
  return out;
}

Rules rules_of(const Problem& p, const Architecture& a) {
  const int L = static_cast<int>(a.levels.size()), D = static_cast<int>(p.dims.size());
  const int S = static_cast<int>(p.data_spaces.size());
  Rules r;
  r.keep.assign(L, std::vector<int>(S, -1));
  r.t_fix.assign(L, std::vector<std::int64_t>(D, 0));
  r.s_fix = r.t_fix;
  r.inner.resize(L);
  r.axis.resize(L);
  for (int i = 0; i < L; ++i) {
    const auto& c = a.levels[i].constraints;
    for (auto& n : c.keep)
      if (int ds = p.data_space_index(n); ds >= 0) r.keep[i][ds] = 1;
    for (auto& n : c.bypass)
      if (int ds = p.data_space_index(n); ds >= 0) r.keep[i][ds] = 0;
    if (a.levels[i].implied) std::fill(r.keep[i].begin(), r.keep[i].end(), 0);
    if (i == L - 1) std::fill(r.keep[i].begin(), r.keep[i].end(), 1);
    // Factor 0 means "whatever remains" in Timeloop's constraints: left free here.
    for (auto& [n, f] : c.temporal_factors)
      if (int d = p.dim_index(n); d >= 0 && f >= 1) r.t_fix[i][d] = std::min(f, p.bounds[d]);
    for (auto& [n, f] : c.spatial_factors)
      if (int d = p.dim_index(n); d >= 0 && f >= 1) r.s_fix[i][d] = std::min(f, p.bounds[d]);
    r.inner[i] = resolve_dims(p, c.temporal_permutation);
    // A spatial permutation with a split places dimensions: the first `split` on meshX, the rest on meshY.
    r.axis[i].assign(D, -1);
    if (c.split >= 0) {
      const auto perm = resolve_dims(p, c.spatial_permutation);
      for (size_t k = 0; k < perm.size(); ++k) r.axis[i][perm[k]] = static_cast<int>(k) >= c.split ? 1 : 0;
    }
  }
  // Timeloop clamps a fixed factor to the bound (R=3 on a problem with R=1 is 1).
  r.free_part = p.bounds;
  for (int d = 0; d < D; ++d) {
    bool any_free = false;
    for (int i = 0; i < L; ++i)
      for (auto* fx : {&r.t_fix, &r.s_fix}) {
        std::int64_t f = (*fx)[i][d];
        if (f == 0) {
          any_free |= fx == &r.t_fix || a.fanout(i) > 1;
          continue;
        }
        if (r.free_part[d] % f)
          throw Error("the constraints fix factors of dimension " + p.dims[d] + " that do not divide its bound " +
                      std::to_string(p.bounds[d]));
        r.free_part[d] /= f;
      }
    if (r.free_part[d] > 1 && !any_free)
      throw Error("the constraints fix every factor of dimension " + p.dims[d] + " and they do not multiply to its bound " +
                  std::to_string(p.bounds[d]));
  }
  return r;
}

// Makes the keep choices and loop orders of `m` obey the rules; false when a factor breaks one.
bool enforce(Mapping& m, const Rules& r) {
  for (size_t i = 0; i < m.levels.size(); ++i) {
    auto& lm = m.levels[i];
    for (size_t s = 0; s < lm.keep.size(); ++s)
      if (r.keep[i][s] >= 0) lm.keep[s] = r.keep[i][s] == 1;
    for (size_t d = 0; d < lm.temporal.size(); ++d)
      if ((r.t_fix[i][d] && lm.temporal[d] != r.t_fix[i][d]) || (r.s_fix[i][d] && lm.spatial[d] != r.s_fix[i][d])) return false;
    if (!r.inner[i].empty()) {
      std::vector<int> perm = r.inner[i];
      for (int d : lm.permutation)
        if (std::find(perm.begin(), perm.end(), d) == perm.end()) perm.push_back(d);
      lm.permutation = perm;
    }
  }
  return true;
}

// Places each spatial loop of level `i` on meshX or meshY so that each axis holds at most its fanout,
// keeping the current placement when it fits and honouring the constraints' split (rules.axis). False when
// no placement fits (the factors are then not a legal spatial mapping of this level).
bool assign_axes(LevelMapping& lm, const Architecture& a, int i, const Rules& rules) {
  const std::int64_t fx = a.fanout_x(i), fy = a.fanout_y(i);
  const std::vector<int>& forced = rules.axis[i];
  auto fits = [&](const std::vector<bool>& y) {
    std::int64_t sx = 1, sy = 1;
    for (size_t d = 0; d < lm.spatial.size(); ++d) {
      if (lm.spatial[d] == 1) continue;
      if (forced[d] >= 0 && (forced[d] == 1) != y[d]) return false;
      (y[d] ? sy : sx) *= lm.spatial[d];
      if (sx > fx || sy > fy) return false;
    }
    return true;
  };
  if (fits(lm.spatial_y)) return true;
  std::vector<int> free;
  std::vector<bool> y = lm.spatial_y;
  for (size_t d = 0; d < lm.spatial.size(); ++d) {
    if (lm.spatial[d] == 1) continue;
    if (forced[d] >= 0) y[d] = forced[d] == 1;
    else free.push_back(static_cast<int>(d));
  }
  if (free.size() > 16) return false;
  for (std::uint32_t mask = 0; mask < (1u << free.size()); ++mask) {
    for (size_t k = 0; k < free.size(); ++k) y[free[k]] = (mask >> k) & 1u;
    if (fits(y)) {
      lm.spatial_y = y;
      return true;
    }
  }
  return false;
}

// Local-search neighbour: one random change; returns false when the move was impossible.
bool mutate(Mapping& m, const Problem& p, const Architecture& a, const std::vector<Slot>& slots, const Rules& rules,
            std::mt19937_64& rng, bool bypass) {
  const int L = static_cast<int>(a.levels.size());
  const int D = static_cast<int>(p.dims.size());
  int kind = static_cast<int>(rng() % (bypass && L > 1 ? 4 : 3));
  if (kind <= 1) {  // move a prime factor of one dimension to another slot
    int d = static_cast<int>(rng() % D);
    std::vector<int> from;
    for (int s = 0; s < static_cast<int>(slots.size()); ++s) {
      auto& lm = m.levels[slots[s].level];
      if ((slots[s].spatial ? lm.spatial[d] : lm.temporal[d]) > 1 && rules.allowed(slots[s], d)) from.push_back(s);
    }
    if (from.empty()) return false;
    const Slot& sf = slots[from[rng() % from.size()]];
    auto& lf = m.levels[sf.level];
    std::int64_t& vf = sf.spatial ? lf.spatial[d] : lf.temporal[d];
    auto pr = primes_of(vf);
    std::int64_t q = pr[rng() % pr.size()];
    const Slot& st = slots[rng() % slots.size()];
    if (st.level == sf.level && st.spatial == sf.spatial) return false;
    if (!rules.allowed(st, d)) return false;
    auto& lt = m.levels[st.level];
    if (st.spatial) {  // it must fit one mesh axis (and so the fanout)
      LevelMapping trial = lt;
      trial.spatial[d] *= q;
      if (!assign_axes(trial, a, st.level, rules)) return false;
      lt = trial;
    } else {
      lt.temporal[d] *= q;
    }
    vf /= q;
    return true;
  }
  if (kind == 2) {  // swap two loops of one level (loops with a factor above 1: others change nothing)
    std::vector<int> levels;
    for (int i = 0; i < L; ++i) {
      int n = 0;
      for (int d = 0; d < D; ++d) n += m.levels[i].temporal[d] > 1;
      if (n >= 2) levels.push_back(i);
    }
    if (levels.empty()) return false;
    auto& lm = m.levels[levels[rng() % levels.size()]];
    std::vector<int> pos;
    for (int k = 0; k < D; ++k)
      if (lm.temporal[lm.permutation[k]] > 1) pos.push_back(k);
    int x = pos[rng() % pos.size()], y = pos[rng() % pos.size()];
    if (x == y) return false;
    std::swap(lm.permutation[x], lm.permutation[y]);
    return enforce(m, rules);
  }
  // toggle a bypass at an inner level
  int i = static_cast<int>(rng() % (L - 1));
  int s = static_cast<int>(rng() % p.data_spaces.size());
  if (rules.keep[i][s] >= 0) return false;
  m.levels[i].keep[s] = !m.levels[i].keep[s];
  return true;
}

// Enumerates every (tiling, loop order of non-unit loops, bypass) when there are at most `limit`;
// returns false (and nothing) when the space is larger.
bool enumerate_all(const Problem& p, const Architecture& a, const Rules& rules, bool bypass, std::int64_t limit,
                   std::vector<Mapping>& out) {
  const int L = static_cast<int>(a.levels.size());
  const int D = static_cast<int>(p.dims.size());
  const int S = static_cast<int>(p.data_spaces.size());
  auto slots = slots_of(a);
  const int K = static_cast<int>(slots.size());
  // Per dimension: every ordered factorisation of its bound over the K slots.
  std::vector<std::vector<std::vector<std::int64_t>>> per_dim(D);
  double tilings = 1;
  for (int d = 0; d < D; ++d) {
    std::vector<std::int64_t> cur(K, 1);
    std::function<void(int, std::int64_t)> rec = [&](int k, std::int64_t rest) {
      if (per_dim[d].size() > static_cast<size_t>(limit)) return;
      if (k == K - 1) {
        if (rules.fixed(slots[k], d) ? rest != rules.fixed(slots[k], d) : false) return;
        cur[k] = rest;
        per_dim[d].push_back(cur);
        return;
      }
      for (std::int64_t f : divisors_of(rest))
        if (rules.allowed(slots[k], d) || f == rules.fixed(slots[k], d)) {
          cur[k] = f;
          rec(k + 1, rest / f);
        }
    };
    rec(0, p.bounds[d]);
    tilings *= static_cast<double>(per_dim[d].size());
    if (tilings > static_cast<double>(limit)) return false;
  }
  // Free keep / bypass choices (inner levels, not fixed by a constraint).
  std::vector<std::pair<int, int>> free_keep;
  if (bypass)
    for (int i = 0; i + 1 < L; ++i)
      for (int s = 0; s < S; ++s)
        if (rules.keep[i][s] < 0) free_keep.emplace_back(i, s);
  const int nbyp = static_cast<int>(free_keep.size());
  if (nbyp > 20) return false;
  const std::int64_t byp_count = std::int64_t(1) << nbyp;
  // Count first.
  std::vector<int> idx(D, 0);
  double total = 0;
  std::vector<Mapping> tiles;
  for (;;) {
    Mapping m = Mapping::trivial(p, a);
    bool ok = true;
    for (int d = 0; d < D && ok; ++d)
      for (int k = 0; k < K; ++k) {
        auto& lm = m.levels[slots[k].level];
        (slots[k].spatial ? lm.spatial[d] : lm.temporal[d]) = per_dim[d][idx[d]][k];
      }
    for (int i = 0; i < L && ok; ++i)
      if (!assign_axes(m.levels[i], a, i, rules)) ok = false;  // each mesh axis, and so the fanout
    if (ok) {
      double perms = 1;
      for (int i = 0; i < L; ++i) {
        int n = 0;
        for (int d = 0; d < D; ++d) n += m.levels[i].temporal[d] > 1;
        for (int x = 2; x <= n; ++x) perms *= x;
      }
      total += perms * static_cast<double>(byp_count);
      if (total > static_cast<double>(limit)) return false;
      tiles.push_back(m);
    }
    int d = 0;
    while (d < D && ++idx[d] == static_cast<int>(per_dim[d].size())) idx[d++] = 0;
    if (d == D) break;
  }
  for (auto& base : tiles) {
    // Loop orders: permutations of the non-unit loops of every level (unit loops keep their place).
    std::vector<std::vector<int>> nonunit(L);
    for (int i = 0; i < L; ++i)
      for (int d = 0; d < D; ++d)
        if (base.levels[i].temporal[d] > 1) nonunit[i].push_back(d);
    std::function<void(int, Mapping&)> rec = [&](int i, Mapping& m) {
      if (i == L) {
        for (std::int64_t b = 0; b < byp_count; ++b) {
          Mapping mm = m;
          for (int k = 0; k < nbyp; ++k) mm.levels[free_keep[k].first].keep[free_keep[k].second] = !((b >> k) & 1);
          if (enforce(mm, rules)) out.push_back(std::move(mm));
        }
        return;
      }
      std::vector<int> order = nonunit[i];
      std::sort(order.begin(), order.end());
      do {
        std::vector<int> perm = order;
        for (int d = 0; d < D; ++d)
          if (base.levels[i].temporal[d] == 1) perm.push_back(d);
        m.levels[i].permutation = perm;
        rec(i + 1, m);
      } while (std::next_permutation(order.begin(), order.end()));
    };
    Mapping m = base;
    rec(0, m);
  }
  return true;
}

}  // namespace

namespace {
// Capacity-aware sampling: from the innermost level out, while the tiles a level keeps exceed its
// capacity in words, move one prime factor of a dimension those tiles use from this level or below
// (the outermost such slot) to a temporal slot above it. Small register files with many constraints
// (Timeloop's example designs) are otherwise almost never fitted by chance; evaluate() still decides.
void fit_capacities(Mapping& m, const Problem& p, const Architecture& a, const Rules& rules, std::mt19937_64& rng) {
  const int L = static_cast<int>(a.levels.size()), D = static_cast<int>(p.dims.size());
  const int S = static_cast<int>(p.data_spaces.size());
  auto tile_words = [&](int i) {
    std::vector<std::int64_t> E(D, 1);
    for (int l = 0; l <= i; ++l)
      for (int d = 0; d < D; ++d) E[d] *= m.levels[l].temporal[d] * m.levels[l].spatial[d];
    std::int64_t words = 0;
    for (int s = 0; s < S; ++s) {
      if (!m.levels[i].keep[s]) continue;
      std::int64_t n = 1;
      for (auto& axis : p.data_spaces[s].projection) {
        std::int64_t e = 1;
        for (auto& t : axis) e += t.coef * (E[t.dim] - 1);
        n *= e;
      }
      words += n;
    }
    return words;
  };
  for (int i = 0; i + 1 < L; ++i) {
    const std::int64_t cap = a.levels[i].size_words();
    if (cap <= 0) continue;
    for (int guard = 0; guard < 256 && tile_words(i) > cap; ++guard) {
      // Candidate (level, spatial, dim) slots at or below i holding a movable factor of a dimension
      // some kept tile at i uses.
      std::vector<std::tuple<int, bool, int>> from;
      for (int l = i; l >= 0; --l)
        for (int d = 0; d < D; ++d) {
          bool used = false;
          for (int s = 0; s < S; ++s) used |= m.levels[i].keep[s] && p.relevant(s, d);
          if (!used) continue;
          if (m.levels[l].temporal[d] > 1 && rules.t_fix[l][d] == 0) from.emplace_back(l, false, d);
          if (m.levels[l].spatial[d] > 1 && rules.s_fix[l][d] == 0) from.emplace_back(l, true, d);
        }
      if (from.empty()) break;
      auto [l, sp, d] = from[rng() % from.size()];
      std::int64_t& v = sp ? m.levels[l].spatial[d] : m.levels[l].temporal[d];
      const std::int64_t q = primes_of(v).front();
      int to = -1;
      for (int u = i + 1; u < L; ++u)
        if (rules.t_fix[u][d] == 0) {
          to = u + static_cast<int>(rng() % static_cast<std::uint64_t>(L - u));  // a random level above
          while (rules.t_fix[to][d] != 0) --to;
          break;
        }
      if (to < 0) break;
      v /= q;
      m.levels[to].temporal[d] *= q;
    }
  }
}

Mapping random_mapping_r(const Problem& p, const Architecture& a, const Rules& rules, std::mt19937_64& rng, bool bypass) {
  Mapping m = Mapping::trivial(p, a);
  const int L = static_cast<int>(a.levels.size());
  auto slots = slots_of(a);
  for (int d = 0; d < static_cast<int>(p.dims.size()); ++d) {
    std::vector<const Slot*> open;  // where the free part of this dimension may go
    for (auto& s : slots) {
      if (std::int64_t f = rules.fixed(s, d)) (s.spatial ? m.levels[s.level].spatial[d] : m.levels[s.level].temporal[d]) = f;
      else open.push_back(&s);
    }
    const Slot* fallback = nullptr;  // a temporal slot that takes what the spatial ones cannot
    for (auto* s : open)
      if (!s->spatial) fallback = s;
    for (auto q : primes_of(rules.free_part[d])) {
      for (int tries = 0;; ++tries) {
        const Slot& s = *open[rng() % open.size()];
        auto& lm = m.levels[s.level];
        if (s.spatial) {
          LevelMapping trial = lm;
          trial.spatial[d] *= q;
          if (!assign_axes(trial, a, s.level, rules)) {  // over an axis' extent, and so maybe the fanout
            if (tries < 4) continue;
            int l = static_cast<int>(rng() % L);
            if (rules.t_fix[l][d] == 0) m.levels[l].temporal[d] *= q;
            else if (fallback) m.levels[fallback->level].temporal[d] *= q;
            else lm.spatial[d] *= q;  // only spatial slots are open: over the fanout, evaluate() rejects it
            break;
          }
          lm = trial;
        } else {
          lm.temporal[d] *= q;
        }
        break;
      }
    }
  }
  for (int i = 0; i < L; ++i) assign_axes(m.levels[i], a, i, rules);  // fixed factors too; a misfit is refused by evaluate()
  for (auto& lm : m.levels) std::shuffle(lm.permutation.begin(), lm.permutation.end(), rng);
  if (bypass)
    for (int i = 0; i + 1 < L; ++i)
      for (size_t s = 0; s < p.data_spaces.size(); ++s) m.levels[i].keep[s] = (rng() % 4) != 0;
  enforce(m, rules);
  fit_capacities(m, p, a, rules, rng);
  return m;
}
}  // namespace

Mapping random_mapping(const Problem& p, const Architecture& a, std::mt19937_64& rng, bool bypass) {
  return random_mapping_r(p, a, rules_of(p, a), rng, bypass);
}

Evaluation best_of_random(const Problem& p, const Architecture& a, const Precision& prec, std::int64_t n,
                          std::uint64_t seed, Objective o, std::int64_t* found) {
  auto rng = make_rng(seed, 0xba5e);
  const Rules rules = rules_of(p, a);
  Evaluation best;
  std::int64_t got = 0;
  for (std::int64_t tries = 0; got < n && tries < 10000 * n; ++tries) {
    Mapping m = random_mapping_r(p, a, rules, rng, true);
    Evaluation e = evaluate(p, a, m, prec);
    if (!e.valid) continue;
    ++got;
    if (!best.valid || key(e, o) < key(best, o)) best = e;
  }
  if (found) *found = got;
  return best;
}

SearchResult search_mapping(const Problem& p, const Architecture& a, const Precision& prec, const SearchOptions& opt) {
  const auto t0 = Clock::now();
  auto out_of_time = [&] {
    return opt.time_limit_s > 0 &&
           std::chrono::duration<double>(Clock::now() - t0).count() > opt.time_limit_s;
  };
  SearchResult res;
  std::atomic<std::int64_t> evaluated{0}, valid{0};
  std::atomic<bool> timed_out{false};
  const int keep_n = std::max(1, opt.refine_starts);
  // Every objective's search runs on the same samples (its own key, its own refinement), and the
  // answer is the best of everything seen under the requested objective: so an EDP search never
  // returns a worse EDP than the energy or the delay search with the same seed and budget.
  constexpr Objective kObjectives[3] = {Objective::Energy, Objective::Delay, Objective::EDP};
  const std::int64_t budget = std::max<std::int64_t>(1, opt.samples);

  std::vector<Mapping> all;
  std::vector<Candidate> seen;  // the best candidates of every objective
  const Rules rules = rules_of(p, a);
  if (enumerate_all(p, a, rules, opt.search_bypass, opt.exhaustive_limit, all)) {
    // Phase 0: exhaustive when small.
    res.exhaustive = true;
    const std::int64_t chunk = 256, nchunks = (static_cast<std::int64_t>(all.size()) + chunk - 1) / chunk;
    std::vector<Candidate> best(nchunks);
    std::vector<bool> has(nchunks, false);
    parallel_chunks(opt.threads, nchunks, [&](std::int64_t c) {
      if (timed_out) return;
      for (std::int64_t k = c * chunk; k < std::min<std::int64_t>((c + 1) * chunk, all.size()); ++k) {
        if (out_of_time()) {
          timed_out = true;
          return;
        }
        Evaluation e = evaluate(p, a, all[k], prec);
        ++evaluated;
        if (!e.valid) continue;
        ++valid;
        Candidate cand{all[k], e, key(e, opt.objective), static_cast<std::uint64_t>(k)};
        if (!has[c] || better(cand, best[c])) best[c] = cand, has[c] = true;
      }
    });
    for (std::int64_t c = 0; c < nchunks; ++c)
      if (has[c]) seen.push_back(best[c]);
  } else {
    // Phase 1: random sampling in fixed chunks, each with its own stream; the best samples of each
    // objective are kept.
    const std::int64_t chunk = 128, nchunks = (budget + chunk - 1) / chunk;
    std::vector<std::array<std::vector<Candidate>, 3>> tops(nchunks);
    parallel_chunks(opt.threads, nchunks, [&](std::int64_t c) {
      if (timed_out) return;
      auto rng = make_rng(opt.seed, static_cast<std::uint64_t>(c));
      for (std::int64_t k = c * chunk; k < std::min<std::int64_t>((c + 1) * chunk, budget); ++k) {
        if (out_of_time()) {
          timed_out = true;
          return;
        }
        Mapping m = random_mapping_r(p, a, rules, rng, opt.search_bypass);
        Evaluation e = evaluate(p, a, m, prec);
        ++evaluated;
        if (!e.valid) continue;
        ++valid;
        for (int o = 0; o < 3; ++o) {
          auto& top = tops[c][o];
          Candidate cand{m, e, key(e, kObjectives[o]), static_cast<std::uint64_t>(k)};
          if (static_cast<int>(top.size()) == keep_n && !better(cand, top.back())) continue;
          top.push_back(std::move(cand));
          std::sort(top.begin(), top.end(), better);
          if (static_cast<int>(top.size()) > keep_n) top.pop_back();
        }
      }
    });
    for (int o = 0; o < 3; ++o) {
      std::vector<Candidate> pool;
      for (auto& t : tops)
        for (auto& c : t[o]) pool.push_back(c);
      std::sort(pool.begin(), pool.end(), better);
      // Make sure there is at least one start: the all-at-the-top mapping is always within fanout.
      if (pool.empty()) {
        Mapping m = Mapping::trivial(p, a);
        for (size_t d = 0; d < p.dims.size(); ++d) m.levels.back().temporal[d] = p.bounds[d];
        enforce(m, rules);
        Evaluation e = evaluate(p, a, m, prec);
        ++evaluated;
        if (e.valid) pool.push_back({m, e, key(e, kObjectives[o]), 0});
      }
      if (static_cast<int>(pool.size()) > keep_n) pool.resize(keep_n);

      // Phase 2: local search from each start (own stream), first-improvement hill climbing.
      auto slots = slots_of(a);
      std::vector<Candidate> refined(pool.size());
      parallel_chunks(opt.threads, static_cast<std::int64_t>(pool.size()), [&](std::int64_t s) {
        auto rng = make_rng(opt.seed, 0x100000000ull + static_cast<std::uint64_t>(s));
        Candidate cur = pool[s];
        for (int step = 0; step < opt.refine_steps; ++step) {
          if (out_of_time()) {
            timed_out = true;
            break;
          }
          // A step is one evaluated neighbour: impossible moves (a fixed factor, a full fanout) are
          // redrawn, or heavily constrained designs would spend most steps on nothing.
          Mapping m = cur.m;
          bool moved = false;
          for (int tries = 0; tries < 32 && !moved; ++tries) {
            if (tries) m = cur.m;
            moved = mutate(m, p, a, slots, rules, rng, opt.search_bypass);
          }
          if (!moved) continue;
          Evaluation e = evaluate(p, a, m, prec);
          ++evaluated;
          if (!e.valid && e.reason.rfind("tiles at ", 0) == 0) {
            // A move that over-fills a level is repaired (factors moved outward until the tiles fit)
            // rather than dropped: with one-word registers almost every inward move over-fills one.
            fit_capacities(m, p, a, rules, rng);
            e = evaluate(p, a, m, prec);
            ++evaluated;
          }
          if (!e.valid) continue;
          ++valid;
          auto k = key(e, kObjectives[o]);
          if (k < cur.k) cur = {std::move(m), e, k, cur.order};
        }
        refined[s] = std::move(cur);
      });
      for (auto& c : pool) seen.push_back(std::move(c));
      for (auto& c : refined) seen.push_back(std::move(c));
    }
  }
  if (seen.empty()) throw Error("no valid mapping found for '" + p.name + "' (capacities too small for any tiling?)");
  for (auto& c : seen) c.k = key(c.e, opt.objective);
  auto best = std::min_element(seen.begin(), seen.end(), better);
  res.mapping = best->m;
  res.eval = best->e;
  res.evaluated = evaluated;
  res.valid = valid;
  res.timed_out = timed_out;
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

}  // namespace qcast::hw
