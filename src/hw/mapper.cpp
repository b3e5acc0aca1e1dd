// The mapper: exhaustive enumeration of small spaces, seeded random sampling + local search otherwise.
#include "qcast/mapper.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>

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

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::int64_t> primes_of(std::int64_t n) {
  std::vector<std::int64_t> f;
  for (std::int64_t p = 2; p * p <= n; ++p)
    while (n % p == 0) f.push_back(p), n /= p;
  if (n > 1) f.push_back(n);
  return f;
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

std::int64_t spatial_product(const LevelMapping& lm) {
  std::int64_t n = 1;
  for (auto f : lm.spatial) n *= f;
  return n;
}

// Local-search neighbour: one random change; returns false when the move was impossible.
bool mutate(Mapping& m, const Problem& p, const Architecture& a, const std::vector<Slot>& slots, std::mt19937_64& rng,
            bool bypass) {
  const int L = static_cast<int>(a.levels.size());
  const int D = static_cast<int>(p.dims.size());
  int kind = static_cast<int>(rng() % (bypass && L > 1 ? 4 : 3));
  if (kind <= 1) {  // move a prime factor of one dimension to another slot
    int d = static_cast<int>(rng() % D);
    std::vector<int> from;
    for (int s = 0; s < static_cast<int>(slots.size()); ++s) {
      auto& lm = m.levels[slots[s].level];
      if ((slots[s].spatial ? lm.spatial[d] : lm.temporal[d]) > 1) from.push_back(s);
    }
    if (from.empty()) return false;
    const Slot& sf = slots[from[rng() % from.size()]];
    auto& lf = m.levels[sf.level];
    std::int64_t& vf = sf.spatial ? lf.spatial[d] : lf.temporal[d];
    auto pr = primes_of(vf);
    std::int64_t q = pr[rng() % pr.size()];
    const Slot& st = slots[rng() % slots.size()];
    if (st.level == sf.level && st.spatial == sf.spatial) return false;
    auto& lt = m.levels[st.level];
    if (st.spatial && spatial_product(lt) * q > a.fanout(st.level)) return false;
    vf /= q;
    (st.spatial ? lt.spatial[d] : lt.temporal[d]) *= q;
    return true;
  }
  if (kind == 2) {  // swap two loops of one level
    auto& lm = m.levels[rng() % L];
    if (D < 2) return false;
    int x = static_cast<int>(rng() % D), y = static_cast<int>(rng() % D);
    if (x == y) return false;
    std::swap(lm.permutation[x], lm.permutation[y]);
    return true;
  }
  // toggle a bypass at an inner level
  int i = static_cast<int>(rng() % (L - 1));
  int s = static_cast<int>(rng() % p.data_spaces.size());
  m.levels[i].keep[s] = !m.levels[i].keep[s];
  return true;
}

// Enumerates every (tiling, loop order of non-unit loops, bypass) when there are at most `limit`;
// returns false (and nothing) when the space is larger.
bool enumerate_all(const Problem& p, const Architecture& a, bool bypass, std::int64_t limit, std::vector<Mapping>& out) {
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
        cur[k] = rest;
        per_dim[d].push_back(cur);
        return;
      }
      for (std::int64_t f = 1; f <= rest; ++f)
        if (rest % f == 0) {
          cur[k] = f;
          rec(k + 1, rest / f);
        }
    };
    rec(0, p.bounds[d]);
    tilings *= static_cast<double>(per_dim[d].size());
    if (tilings > static_cast<double>(limit)) return false;
  }
  const int nbyp = bypass ? (L - 1) * S : 0;
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
      if (spatial_product(m.levels[i]) > a.fanout(i)) ok = false;
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
          for (int k = 0; k < nbyp; ++k) mm.levels[k / S].keep[k % S] = !((b >> k) & 1);
          out.push_back(std::move(mm));
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

Mapping random_mapping(const Problem& p, const Architecture& a, std::mt19937_64& rng, bool bypass) {
  Mapping m = Mapping::trivial(p, a);
  const int L = static_cast<int>(a.levels.size());
  auto slots = slots_of(a);
  for (int d = 0; d < static_cast<int>(p.dims.size()); ++d) {
    for (auto q : primes_of(p.bounds[d])) {
      for (int tries = 0;; ++tries) {
        const Slot& s = slots[rng() % slots.size()];
        auto& lm = m.levels[s.level];
        if (s.spatial) {
          if (spatial_product(lm) * q > a.fanout(s.level)) {
            if (tries < 4) continue;
            m.levels[rng() % L].temporal[d] *= q;
            break;
          }
          lm.spatial[d] *= q;
        } else {
          lm.temporal[d] *= q;
        }
        break;
      }
    }
  }
  for (auto& lm : m.levels) std::shuffle(lm.permutation.begin(), lm.permutation.end(), rng);
  if (bypass)
    for (int i = 0; i + 1 < L; ++i)
      for (size_t s = 0; s < p.data_spaces.size(); ++s) m.levels[i].keep[s] = (rng() % 4) != 0;
  return m;
}

Evaluation best_of_random(const Problem& p, const Architecture& a, const Precision& prec, std::int64_t n,
                          std::uint64_t seed, Objective o, std::int64_t* found) {
  auto rng = make_rng(seed, 0xba5e);
  Evaluation best;
  std::int64_t got = 0;
  for (std::int64_t tries = 0; got < n && tries < 10000 * n; ++tries) {
    Mapping m = random_mapping(p, a, rng);
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

  // Phase 0: exhaustive when small.
  std::vector<Mapping> all;
  std::vector<Candidate> pool;
  std::mutex mu;
  if (enumerate_all(p, a, opt.search_bypass, opt.exhaustive_limit, all)) {
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
      if (has[c]) pool.push_back(best[c]);
  } else {
    // Phase 1: random sampling in fixed chunks, each with its own stream.
    const std::int64_t chunk = 128, nchunks = (opt.samples + chunk - 1) / chunk;
    std::vector<std::vector<Candidate>> tops(nchunks);
    parallel_chunks(opt.threads, nchunks, [&](std::int64_t c) {
      if (timed_out) return;
      auto rng = make_rng(opt.seed, static_cast<std::uint64_t>(c));
      auto& top = tops[c];
      for (std::int64_t k = c * chunk; k < std::min<std::int64_t>((c + 1) * chunk, opt.samples); ++k) {
        if (out_of_time()) {
          timed_out = true;
          return;
        }
        Mapping m = random_mapping(p, a, rng, opt.search_bypass);
        Evaluation e = evaluate(p, a, m, prec);
        ++evaluated;
        if (!e.valid) continue;
        ++valid;
        top.push_back({std::move(m), e, key(e, opt.objective), static_cast<std::uint64_t>(k)});
        std::sort(top.begin(), top.end(), better);
        if (static_cast<int>(top.size()) > keep_n) top.pop_back();
      }
    });
    for (auto& t : tops)
      for (auto& c : t) pool.push_back(std::move(c));
    std::sort(pool.begin(), pool.end(), better);
    // Make sure there is at least one start: the all-at-the-top mapping is always within fanout.
    if (pool.empty()) {
      Mapping m = Mapping::trivial(p, a);
      for (size_t d = 0; d < p.dims.size(); ++d) m.levels.back().temporal[d] = p.bounds[d];
      Evaluation e = evaluate(p, a, m, prec);
      ++evaluated;
      if (e.valid) pool.push_back({m, e, key(e, opt.objective), 0});
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
        Mapping m = cur.m;
        if (!mutate(m, p, a, slots, rng, opt.search_bypass)) continue;
        Evaluation e = evaluate(p, a, m, prec);
        ++evaluated;
        if (!e.valid) continue;
        ++valid;
        auto k = key(e, opt.objective);
        if (k < cur.k) cur = {std::move(m), e, k, cur.order};
      }
      refined[s] = std::move(cur);
    });
    for (auto& c : refined) pool.push_back(std::move(c));
  }
  if (pool.empty()) throw Error("no valid mapping found for '" + p.name + "' (capacities too small for any tiling?)");
  auto best = std::min_element(pool.begin(), pool.end(), better);
  res.mapping = best->m;
  res.eval = best->e;
  res.evaluated = evaluated;
  res.valid = valid;
  res.timed_out = timed_out;
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

}  // namespace qcast::hw
