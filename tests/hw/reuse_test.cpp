// Re-use distance: the lecture examples, a naive O(N^2) cross-check, and the CLI.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "qcast/error.hpp"
#include "qcast/reuse.hpp"
#include "test_support.hpp"

using namespace qcast::hw;

namespace {
std::vector<std::int64_t> naive(const std::vector<std::uint64_t>& t) {
  std::vector<std::int64_t> out;
  for (size_t i = 0; i < t.size(); ++i) {
    std::set<std::uint64_t> seen;
    std::int64_t d = kInfiniteDistance;
    for (size_t j = i; j-- > 0;) {
      if (t[j] == t[i]) {
        d = static_cast<std::int64_t>(seen.size());
        break;
      }
      seen.insert(t[j]);
    }
    out.push_back(d);
  }
  return out;
}

std::vector<std::int64_t> element_distances(const LoopNest& n, const std::string& array, std::vector<std::int64_t> idx) {
  std::vector<std::uint64_t> t;
  n.trace([&](int b, std::uint64_t a) {
    if (n.body[b].array == array) t.push_back(a);
  });
  auto d = reuse_distances(t);
  std::uint64_t addr = n.address(array, idx);
  std::vector<std::int64_t> out;
  for (size_t k = 0; k < t.size(); ++k)
    if (t[k] == addr) out.push_back(d[k]);
  return out;
}
}  // namespace

TEST(HwReuse, LectureTrace) {
  // A B C A B B A C D B -> inf inf inf 2 2 0 1 2 inf 3
  std::vector<std::uint64_t> t = {0, 1, 2, 0, 1, 1, 0, 2, 3, 1};
  std::vector<std::int64_t> want = {-1, -1, -1, 2, 2, 0, 1, 2, -1, 3};
  EXPECT_EQ(reuse_distances(t), want);
  auto p = profile(reuse_distances(t));
  EXPECT_EQ(p.cold, 4);
  EXPECT_EQ(p.total, 10);
  EXPECT_DOUBLE_EQ(p.miss_ratio(1), 9.0 / 10);  // only the distance-0 access hits
  EXPECT_DOUBLE_EQ(p.miss_ratio(4), 4.0 / 10);  // only cold misses
}

TEST(HwReuse, MatchesNaiveOnRandomTraces) {
  std::mt19937_64 rng(7);
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<std::uint64_t> t(300 + rep * 10);
    for (auto& x : t) x = rng() % (5 + rep * 3);
    EXPECT_EQ(reuse_distances(t), naive(t));
  }
}

TEST(HwReuse, MissRatioCurveIsNonIncreasing) {
  std::mt19937_64 rng(3);
  std::vector<std::uint64_t> t(2000);
  for (auto& x : t) x = rng() % 97;
  auto c = profile(reuse_distances(t)).miss_ratio_curve();
  for (size_t i = 1; i < c.size(); ++i) EXPECT_LE(c[i].second, c[i - 1].second);
}

TEST(HwReuse, LectureLoopNest) {
  // for j<N; for i<M: B[j][i] += A[i]: RD(A[0]) = M-1; interchanged 0; tiled by Ti: Ti-1.
  for (std::int64_t M : {4, 8, 16}) {
    LoopNest n = LoopNest::parse("for j<N; for i<M: B[j][i] += A[i]", {{"N", 8}, {"M", M}});
    auto d = element_distances(n, "A", {0});
    ASSERT_EQ(d.size(), 8u);
    EXPECT_EQ(d[0], kInfiniteDistance);
    for (size_t k = 1; k < d.size(); ++k) EXPECT_EQ(d[k], M - 1);
    auto di = element_distances(n.interchange("i", "j"), "A", {0});
    for (size_t k = 1; k < di.size(); ++k) EXPECT_EQ(di[k], 0);
    for (std::int64_t Ti : {2, 4}) {
      auto dt = element_distances(n.tile("i", Ti), "A", {0});
      ASSERT_EQ(dt.size(), 8u);
      for (size_t k = 1; k < dt.size(); ++k) EXPECT_EQ(dt[k], Ti - 1);
    }
  }
}

TEST(HwReuse, ParserErrors) {
  EXPECT_THROW(LoopNest::parse("for j<N: A[j] += 1"), qcast::Error);           // N unset
  EXPECT_THROW(LoopNest::parse("for j<4 A[j] += 1"), qcast::Error);            // missing ':'
  EXPECT_THROW(LoopNest::parse("for j<4: A[k] += 1"), qcast::Error);           // unknown variable
  EXPECT_THROW(LoopNest::parse("for j<4: A[j] += 1").tile("j", 3), qcast::Error);  // 3 does not divide 4
  EXPECT_THROW(LoopNest::parse("for j<4: A[j] += 1").interchange("j", "x"), qcast::Error);
}

// Found by the reuse fuzz target in CI: a scalar access of an array that is indexed elsewhere read an
// index that did not exist (the rank check took "no dimensions yet" for "not seen yet").
TEST(HwReuse, ScalarAndIndexedUseOfOneArrayIsARankError) {
  for (const char* nest : {"for i<4: A += 1; B[i] += A[i]", "for i<4: B[i] += A[i]; A += 1"}) {
    const LoopNest n = LoopNest::parse(nest);
    EXPECT_THROW(n.trace([](int, std::uint64_t) {}), qcast::Error) << nest;
  }
}

TEST(HwReuse, Cli) {
  auto r = qcast::test::run_cli("reuse --json --trace 'A B C A B B A C D B'");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["distances"].dump(), R"(["inf","inf","inf",2,2,0,1,2,"inf",3])");
  r = qcast::test::run_cli("reuse --json 'for j<N; for i<M: B[j][i] += A[i]' --set N=4,M=16 --tile i:4");
  ASSERT_EQ(r.rc, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["before"]["arrays"]["A"]["elements"]["A[0]"][1], 15);
  EXPECT_EQ(j["after"]["arrays"]["A"]["elements"]["A[0]"][1], 3);
  r = qcast::test::run_cli("reuse 'for j<N; for i<M: B[j][i] += A[i]' --set N=4,M=16 --interchange i,j");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("re-use distances of A[0]: inf 0 0 0"), std::string::npos) << r.out;
  r = qcast::test::run_cli("reuse 'for j<N; for i<M: B[j][i] += A[i]' --set N=4,M=16 --element 'C[0]'");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("no array 'C'"), std::string::npos) << r.err;
  r = qcast::test::run_cli("reuse 'for j<N; for i<M B[j][i] += A[i]' --set N=4,M=16");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("loop nest"), std::string::npos);
}
