// Re-use distance (Fenwick tree over access times) and textual loop nests.
#include "qcast/reuse.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <sstream>
#include <unordered_map>

#include "qcast/error.hpp"

namespace qcast::hw {

std::vector<std::int64_t> reuse_distances(const std::vector<std::uint64_t>& trace) {
  const size_t n = trace.size();
  std::vector<std::int64_t> out(n), tree(n + 1, 0);
  auto add = [&](size_t i, std::int64_t v) {
    for (; i <= n; i += i & (~i + 1)) tree[i] += v;
  };
  auto sum = [&](size_t i) {
    std::int64_t s = 0;
    for (; i > 0; i -= i & (~i + 1)) s += tree[i];
    return s;
  };
  // tree marks, at each time, whether that access is the latest one to its address.
  std::unordered_map<std::uint64_t, size_t> last;
  last.reserve(n);
  for (size_t t = 1; t <= n; ++t) {
    auto it = last.find(trace[t - 1]);
    if (it == last.end()) {
      out[t - 1] = kInfiniteDistance;
      last.emplace(trace[t - 1], t);
    } else {
      out[t - 1] = sum(t - 1) - sum(it->second);
      add(it->second, -1);
      it->second = t;
    }
    add(t, 1);
  }
  return out;
}

ReuseProfile profile(const std::vector<std::int64_t>& distances) {
  ReuseProfile p;
  for (auto d : distances) {
    ++p.total;
    if (d == kInfiniteDistance)
      ++p.cold;
    else
      ++p.counts[d];
  }
  return p;
}

double ReuseProfile::miss_ratio(std::int64_t lines) const {
  if (total == 0) return 0;
  std::int64_t miss = cold;
  for (auto it = counts.lower_bound(lines); it != counts.end(); ++it) miss += it->second;
  return static_cast<double>(miss) / static_cast<double>(total);
}

std::vector<std::pair<std::int64_t, double>> ReuseProfile::miss_ratio_curve() const {
  std::vector<std::pair<std::int64_t, double>> c;
  std::int64_t maxd = counts.empty() ? 0 : counts.rbegin()->first;
  for (std::int64_t s = 1;; s *= 2) {
    c.emplace_back(s, miss_ratio(s));
    if (s > maxd) break;
  }
  return c;
}

std::vector<std::pair<std::string, std::int64_t>> ReuseProfile::log2_bins() const {
  std::vector<std::pair<std::string, std::int64_t>> b;
  std::int64_t maxd = counts.empty() ? -1 : counts.rbegin()->first;
  for (std::int64_t lo = 0; lo <= maxd; lo = lo == 0 ? 1 : lo * 2) {
    std::int64_t hi = lo == 0 ? 0 : 2 * lo - 1;
    std::int64_t n = 0;
    for (auto it = counts.lower_bound(lo); it != counts.end() && it->first <= hi; ++it) n += it->second;
    b.emplace_back(lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi), n);
  }
  b.emplace_back("inf", cold);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Loop nests
// ---------------------------------------------------------------------------------------------

std::string AffineExpr::to_string() const {
  std::string s;
  for (auto& [v, c] : coef) {
    if (c == 0) continue;
    if (!s.empty()) s += c < 0 ? " - " : " + ";
    else if (c < 0) s += "-";
    std::int64_t a = c < 0 ? -c : c;
    s += (a == 1 ? "" : std::to_string(a) + "*") + v;
  }
  if (constant != 0 || s.empty()) {
    if (s.empty())
      s = std::to_string(constant);
    else
      s += (constant < 0 ? " - " : " + ") + std::to_string(constant < 0 ? -constant : constant);
  }
  return s;
}

namespace {

struct Lexer {
  std::string s;
  size_t i = 0;
  std::string src;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eof() {
    ws();
    return i >= s.size();
  }
  char peek() {
    ws();
    return i < s.size() ? s[i] : '\0';
  }
  [[noreturn]] void fail(const std::string& what) {
    throw Error("loop nest: " + what + " at column " + std::to_string(i + 1) + " of '" + s + "'");
  }
  bool accept(const std::string& t) {
    ws();
    if (s.compare(i, t.size(), t) == 0) {
      i += t.size();
      return true;
    }
    return false;
  }
  void expect(const std::string& t) {
    if (!accept(t)) fail("expected '" + t + "'");
  }
  bool is_ident_start() {
    char c = peek();
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
  }
  std::string ident() {
    ws();
    size_t b = i;
    if (!is_ident_start()) fail("expected a name");
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
    return s.substr(b, i - b);
  }
  bool is_digit() { return std::isdigit(static_cast<unsigned char>(peek())); }
  std::int64_t integer() {
    ws();
    size_t b = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (b == i) fail("expected an integer");
    if (i - b > 18) fail("integer out of range");
    return std::stoll(s.substr(b, i - b));
  }
};

AffineExpr parse_affine(Lexer& lx, const std::map<std::string, std::int64_t>& params) {
  AffineExpr e;
  int sign = 1;
  if (lx.accept("-")) sign = -1;
  else lx.accept("+");
  for (;;) {
    std::int64_t c = 1;
    std::string var;
    if (lx.is_digit()) {
      c = lx.integer();
      if (lx.accept("*")) var = lx.ident();
    } else {
      var = lx.ident();
      if (lx.accept("*")) c = lx.integer();
    }
    if (!var.empty() && params.count(var)) {
      if (__builtin_mul_overflow(c, params.at(var), &c)) lx.fail("coefficient overflows 64 bits");
      var.clear();
    }
    // Index arithmetic is bounded far below 2^62 so that address ranges never wrap.
    constexpr std::int64_t kLim = std::int64_t(1) << 40;
    if (c > kLim) lx.fail("coefficient or constant above 2^40");
    std::int64_t& dst = var.empty() ? e.constant : e.coef[var];
    dst += sign * c;
    if (dst > kLim || dst < -kLim) lx.fail("coefficient or constant above 2^40");
    if (lx.accept("+")) sign = 1;
    else if (lx.accept("-")) sign = -1;
    else break;
  }
  return e;
}

ArrayAccess parse_ref(Lexer& lx, const std::string& name, const std::map<std::string, std::int64_t>& params) {
  ArrayAccess a;
  a.array = name;
  while (lx.accept("[")) {
    a.index.push_back(parse_affine(lx, params));
    lx.expect("]");
  }
  return a;
}

}  // namespace

LoopNest LoopNest::parse(const std::string& text, const std::map<std::string, std::int64_t>& params) {
  Lexer lx{text, 0, "loop nest"};
  LoopNest n;
  // Loops: for VAR < BOUND, separated by ';' or newlines, until ':'.
  for (;;) {
    if (!lx.accept("for")) lx.fail("expected 'for'");
    NestLoop l;
    l.var = lx.ident();
    lx.expect("<");
    if (lx.is_digit()) {
      l.extent = lx.integer();
    } else {
      std::string p = lx.ident();
      auto it = params.find(p);
      if (it == params.end()) throw Error("loop nest: bound '" + p + "' of loop " + l.var + " has no value (use --set " + p + "=...)");
      l.extent = it->second;
    }
    if (l.extent < 1) throw Error("loop nest: loop " + l.var + " has extent " + std::to_string(l.extent) + " < 1");
    if (l.extent > (std::int64_t(1) << 40)) throw Error("loop nest: loop " + l.var + " has extent " + std::to_string(l.extent) + " > 2^40");
    for (auto& o : n.loops)
      if (o.var == l.var) throw Error("loop nest: loop variable '" + l.var + "' used twice");
    n.loops.push_back(l);
    if (lx.accept(":")) break;
    if (!lx.accept(";") && !lx.accept(",")) {
      if (lx.peek() != 'f') lx.fail("expected ';' or ':' after a loop");
    }
  }
  // Statements: REF OP EXPR, separated by ';'.
  while (!lx.eof()) {
    std::string name = lx.ident();
    ArrayAccess lhs = parse_ref(lx, name, params);
    lhs.write = true;
    bool compound;
    if (lx.accept("+=") || lx.accept("-=") || lx.accept("*=") || lx.accept("/="))
      compound = true;
    else if (lx.accept("="))
      compound = false;
    else
      lx.fail("expected '=', '+=', '-=' or '*='");
    // Right-hand side: any arithmetic over array references, scalars and integers.
    std::vector<ArrayAccess> reads;
    int depth = 0;
    while (!lx.eof()) {
      char c = lx.peek();
      if (c == ';' && depth == 0) break;
      if (lx.is_ident_start()) {
        std::string id = lx.ident();
        if (lx.peek() == '[') {
          reads.push_back(parse_ref(lx, id, params));
        }
        continue;
      }
      if (c == '(') ++depth;
      if (c == ')') --depth;
      if (lx.is_digit()) {
        lx.integer();
        continue;
      }
      if (std::string("+-*/().").find(c) == std::string::npos) lx.fail(std::string("unexpected '") + c + "'");
      ++lx.i;
    }
    for (auto& r : reads) n.body.push_back(r);
    if (compound) {
      ArrayAccess rd = lhs;
      rd.write = false;
      n.body.push_back(rd);
    }
    n.body.push_back(lhs);
    lx.accept(";");
  }
  if (n.body.empty()) throw Error("loop nest: the body has no array access");
  for (auto& a : n.body)
    for (auto& e : a.index)
      for (auto& [v, c] : e.coef) {
        bool found = false;
        for (auto& l : n.loops) found |= l.var == v;
        if (!found) throw Error("loop nest: '" + v + "' in " + a.array + "[...] is neither a loop variable nor a --set parameter");
      }
  return n;
}

LoopNest LoopNest::interchange(const std::string& a, const std::string& b) const {
  LoopNest n = *this;
  int ia = -1, ib = -1;
  for (size_t k = 0; k < loops.size(); ++k) {
    if (loops[k].var == a) ia = static_cast<int>(k);
    if (loops[k].var == b) ib = static_cast<int>(k);
  }
  if (ia < 0 || ib < 0) throw Error("interchange: no loop '" + (ia < 0 ? a : b) + "' in the nest");
  std::swap(n.loops[ia], n.loops[ib]);
  return n;
}

LoopNest LoopNest::tile(const std::string& var, std::int64_t t) const {
  LoopNest n = *this;
  int k = -1;
  for (size_t i = 0; i < loops.size(); ++i)
    if (loops[i].var == var) k = static_cast<int>(i);
  if (k < 0) throw Error("tile: no loop '" + var + "' in the nest");
  if (t < 1 || loops[k].extent % t) throw Error("tile: " + std::to_string(t) + " does not divide the extent " +
                                                std::to_string(loops[k].extent) + " of loop " + var);
  std::string tv = var + "_t";
  for (auto& l : loops)
    if (l.var == tv) throw Error("tile: loop " + var + " is already tiled");
  n.loops[k].extent = t;
  n.loops.insert(n.loops.begin(), NestLoop{tv, loops[k].extent / t});
  for (auto& a : n.body)
    for (auto& e : a.index) {
      auto it = e.coef.find(var);
      if (it == e.coef.end()) continue;
      std::int64_t add;
      if (__builtin_mul_overflow(it->second, t, &add) || add > (std::int64_t(1) << 40) || add < -(std::int64_t(1) << 40))
        throw Error("tile: the tile loop's coefficient for " + var + " exceeds 2^40");
      e.coef[tv] += add;  // var -> t*var_t + var
    }
  return n;
}

std::string LoopNest::to_string() const {
  std::ostringstream o;
  for (size_t k = 0; k < loops.size(); ++k) o << std::string(2 * k, ' ') << "for " << loops[k].var << " < " << loops[k].extent << "\n";
  o << std::string(2 * loops.size(), ' ');
  bool first = true;
  for (auto& a : body) {
    if (!first) o << ", ";
    first = false;
    o << (a.write ? "W " : "R ") << a.array;
    for (auto& e : a.index) o << "[" << e.to_string() << "]";
  }
  o << "\n";
  return o.str();
}

std::vector<std::string> LoopNest::arrays() const {
  std::vector<std::string> out;
  for (auto& a : body)
    if (std::find(out.begin(), out.end(), a.array) == out.end()) out.push_back(a.array);
  return out;
}

namespace {
struct AddrMap {
  // per array: per index dimension, min value and extent
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> dims;
  std::map<std::string, std::uint64_t> id;
};

AddrMap address_map(const LoopNest& n) {
  AddrMap m;
  std::map<std::string, std::int64_t> ext;
  for (auto& l : n.loops) ext[l.var] = l.extent;
  auto arrays = n.arrays();
  for (size_t k = 0; k < arrays.size(); ++k) m.id[arrays[k]] = k;
  for (auto& a : n.body) {
    // A scalar access (rank 0) leaves d empty, so "seen before" is the map's, not d's emptiness.
    const bool first = !m.dims.count(a.array);
    auto& d = m.dims[a.array];
    std::vector<std::pair<std::int64_t, std::int64_t>> lohi;
    for (auto& e : a.index) {
      // |coef|, |constant| <= 2^40 and extents <= 2^40: use 128 bits, then require 48-bit ranges.
      __int128 lo = e.constant, hi = e.constant;
      for (auto& [v, c] : e.coef) {
        __int128 x = static_cast<__int128>(c) * (ext[v] - 1);
        lo += x < 0 ? x : 0;
        hi += x > 0 ? x : 0;
      }
      if (hi - lo >= (static_cast<__int128>(1) << 47) || lo < -(static_cast<__int128>(1) << 62) || hi > (static_cast<__int128>(1) << 62))
        throw Error("loop nest: the index range of " + a.array + "[...] exceeds 2^47 elements");
      lohi.emplace_back(static_cast<std::int64_t>(lo), static_cast<std::int64_t>(hi));
    }
    if (first) {
      for (auto& [lo, hi] : lohi) d.emplace_back(lo, hi);
    } else {
      if (d.size() != lohi.size()) throw Error("loop nest: array " + a.array + " is indexed with different ranks");
      for (size_t i = 0; i < d.size(); ++i) {
        d[i].first = std::min(d[i].first, lohi[i].first);
        d[i].second = std::max(d[i].second, lohi[i].second);
      }
    }
  }
  for (auto& [arr, d] : m.dims) {
    __int128 n = 1;
    for (auto& [lo, hi] : d) {
      n *= static_cast<__int128>(hi - lo + 1);
      if (n >= (static_cast<__int128>(1) << 48)) throw Error("loop nest: array " + arr + " spans more than 2^48 elements");
    }
  }
  if (m.id.size() >= (std::size_t(1) << 16)) throw Error("loop nest: more than 65535 arrays");
  return m;
}

std::uint64_t linear(const AddrMap& m, const std::string& array, const std::vector<std::int64_t>& idx) {
  auto& d = m.dims.at(array);
  std::uint64_t a = 0;
  for (size_t i = 0; i < d.size(); ++i) a = a * static_cast<std::uint64_t>(d[i].second - d[i].first + 1) +
                                           static_cast<std::uint64_t>(idx[i] - d[i].first);
  return (m.id.at(array) << 48) | a;
}
}  // namespace

std::uint64_t LoopNest::address(const std::string& array, const std::vector<std::int64_t>& index) const {
  AddrMap m = address_map(*this);
  if (!m.dims.count(array)) throw Error("no array '" + array + "' in the loop nest");
  if (m.dims[array].size() != index.size()) throw Error("array '" + array + "' has rank " + std::to_string(m.dims[array].size()));
  return linear(m, array, index);
}

std::int64_t LoopNest::accesses() const {
  std::int64_t n = static_cast<std::int64_t>(body.size());
  for (auto& l : loops)
    if (__builtin_mul_overflow(n, l.extent, &n)) return INT64_MAX;
  return n;
}

void LoopNest::trace(const std::function<void(int, std::uint64_t)>& fn, std::int64_t max_accesses) const {
  const std::int64_t n = accesses();
  if (n > max_accesses)
    throw Error("loop nest: " + (n == INT64_MAX ? std::string("more than 2^63") : std::to_string(n)) +
                " accesses, more than the " + std::to_string(max_accesses) +
                " an exact re-use analysis may trace here (it keeps the whole trace); shrink the bounds");
  AddrMap m = address_map(*this);
  const size_t L = loops.size();
  std::vector<std::int64_t> iv(L, 0);
  // Pre-resolve coefficients per access and index dimension into loop positions.
  struct Lin {
    std::vector<std::int64_t> c;
    std::int64_t k;
  };
  std::vector<std::vector<Lin>> lin(body.size());
  for (size_t b = 0; b < body.size(); ++b)
    for (auto& e : body[b].index) {
      Lin l{std::vector<std::int64_t>(L, 0), e.constant};
      for (size_t k = 0; k < L; ++k) {
        auto it = e.coef.find(loops[k].var);
        if (it != e.coef.end()) l.c[k] = it->second;
      }
      lin[b].push_back(l);
    }
  std::vector<std::int64_t> idx;
  for (;;) {
    for (size_t b = 0; b < body.size(); ++b) {
      idx.clear();
      for (auto& l : lin[b]) {
        std::int64_t v = l.k;
        for (size_t k = 0; k < L; ++k) v += l.c[k] * iv[k];
        idx.push_back(v);
      }
      fn(static_cast<int>(b), linear(m, body[b].array, idx));
    }
    size_t k = L;
    while (k > 0) {
      --k;
      if (++iv[k] < loops[k].extent) break;
      iv[k] = 0;
      if (k == 0) return;
    }
    if (L == 0) return;
  }
}

}  // namespace qcast::hw
