// qcast::hw re-use distance: exact LRU stack distances of address traces, histograms and miss-ratio
// curves, and small textual loop nests (`for j<N; for i<M: B[j][i] += A[i]`) with interchange and
// tiling, whose address traces feed the analysis.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace qcast::hw {

/// Marks a first access (infinite re-use distance).
constexpr std::int64_t kInfiniteDistance = -1;

/// The most accesses a loop nest may trace (2^24, ~16.8 M): the exact analysis keeps the whole trace
/// and about 40 bytes per access; LoopNest::trace refuses longer nests with a qcast::Error.
constexpr std::int64_t kMaxTraceAccesses = std::int64_t(1) << 24;

/// Exact LRU stack distances: out[t] = number of distinct addresses touched strictly between the
/// previous access to trace[t] and t, or kInfiniteDistance for a first access. O(N log N) time
/// (a Fenwick tree over access times), O(N) memory.
std::vector<std::int64_t> reuse_distances(const std::vector<std::uint64_t>& trace);

/// A histogram of re-use distances and the miss-ratio curve of a fully associative LRU cache.
struct ReuseProfile {
  std::map<std::int64_t, std::int64_t> counts;  ///< finite distance -> accesses
  std::int64_t cold = 0;                        ///< first accesses (infinite distance)
  std::int64_t total = 0;
  /// Fraction of accesses that miss in a fully associative LRU cache of `lines` elements
  /// (distance >= lines, plus cold misses).
  double miss_ratio(std::int64_t lines) const;
  /// (cache size, miss ratio) for sizes 1, 2, 4, ... up to past the largest distance.
  std::vector<std::pair<std::int64_t, double>> miss_ratio_curve() const;
  /// Counts grouped in power-of-two bins: "0", "1", "2-3", "4-7", ..., "inf".
  std::vector<std::pair<std::string, std::int64_t>> log2_bins() const;
};
ReuseProfile profile(const std::vector<std::int64_t>& distances);

/// An affine index expression: constant + sum coef[v] * loop variable v.
struct AffineExpr {
  std::map<std::string, std::int64_t> coef;
  std::int64_t constant = 0;
  std::string to_string() const;
};

struct ArrayAccess {
  std::string array;
  std::vector<AffineExpr> index;
  bool write = false;
};

struct NestLoop {
  std::string var;
  std::int64_t extent = 1;  ///< var runs over [0, extent)
};

/// A perfectly nested loop with a body of array accesses, e.g. parsed from
/// `for j<N; for i<M: B[j][i] += A[i]` (loops separated by ';', the body after ':'; bounds are
/// integers or names given in `params`). Per iteration the body's accesses happen in order: for each
/// statement, the right-hand side's array reads left to right, then (for `+=`-like operators) the
/// read of the left-hand side, then its write.
struct LoopNest {
  std::vector<NestLoop> loops;  ///< outermost first
  std::vector<ArrayAccess> body;

  static LoopNest parse(const std::string& text, const std::map<std::string, std::int64_t>& params = {});
  /// Swaps the positions of loops `a` and `b`.
  LoopNest interchange(const std::string& a, const std::string& b) const;
  /// Strip-mines loop `var` by `tile` (which must divide its extent) into `var`<tile, placed where
  /// `var` was, and a tile loop `var`_t placed outermost (strip-mine + interchange = tiling).
  LoopNest tile(const std::string& var, std::int64_t tile) const;
  /// Indented text form, outermost loop first.
  std::string to_string() const;
  /// Accesses the nest makes (iterations x body accesses), saturated at INT64_MAX.
  std::int64_t accesses() const;
  /// Calls fn(access index in body, element address) for every access in execution order. Each
  /// array's elements get addresses in a separate range (row-major over the index ranges). Throws
  /// qcast::Error when the nest makes more than `max_accesses` accesses or an array's index range
  /// does not fit in 48 bits.
  void trace(const std::function<void(int, std::uint64_t)>& fn, std::int64_t max_accesses = kMaxTraceAccesses) const;
  /// Linear element number of array `array` at the given index values (row-major) in this nest's
  /// address map, e.g. element({0}) of A is A[0].
  std::uint64_t address(const std::string& array, const std::vector<std::int64_t>& index) const;
  /// Arrays in order of first appearance.
  std::vector<std::string> arrays() const;
};

}  // namespace qcast::hw
