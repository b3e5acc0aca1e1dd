// The thread pool's contract (every item once, contiguous ranges, exceptions on the caller, nested calls
// serial) on qcast's own workers and on an installed region runner: a plain std::thread one here, and
// libgomp's, which the oneDNN loader installs.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "qcast/kernels/dnnl.hpp"
#include "qcast/kernels/thread_pool.hpp"

using namespace qcast::kern;

namespace {

// Gives `count` threads at most 2 (a runner may give fewer than asked), the caller one of them.
std::atomic<int> g_regions{0};
void two_thread_runner(unsigned count, void (*body)(void*), void* ctx) {
  ++g_regions;
  std::thread other;
  if (count > 1) other = std::thread([&] { body(ctx); });
  body(ctx);
  if (other.joinable()) other.join();
}

struct RunnerGuard {
  explicit RunnerGuard(RegionRunner r) { set_region_runner(r); }
  ~RunnerGuard() { set_region_runner(nullptr); }
};

void check_contract(const char* where) {
  for (int threads : {1, 2, 3, 8}) {
    const std::int64_t n = 1000;
    std::vector<std::atomic<int>> hits(n);
    parallel_for(n, threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << where << " threads " << threads << " item " << i;

    std::vector<std::atomic<int>> items(37);
    parallel_items(37, threads, [&](std::int64_t i) { items[i]++; });
    for (auto& h : items) ASSERT_EQ(h.load(), 1) << where << " parallel_items, threads " << threads;

    EXPECT_THROW(parallel_for(n, threads, [&](std::int64_t b, std::int64_t) {
                   if (b > 0 || threads == 1) throw std::runtime_error("item failed");
                 }),
                 std::runtime_error)
        << where;
    EXPECT_THROW(parallel_items(5, threads, [&](std::int64_t i) {
                   if (i == 3) throw std::runtime_error("item failed");
                 }),
                 std::runtime_error)
        << where;

    // A nested call runs on the calling thread: all of its items, none lost.
    std::atomic<std::int64_t> inner{0};
    parallel_for(4, threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) parallel_for(100, threads, [&](std::int64_t ib, std::int64_t ie) { inner += ie - ib; });
    });
    EXPECT_EQ(inner.load(), 400) << where << " threads " << threads;
  }
}

}  // namespace

TEST(ThreadPool, OwnWorkers) { check_contract("pool"); }

TEST(ThreadPool, InstalledRegionRunner) {
  RunnerGuard guard(two_thread_runner);
  g_regions = 0;
  check_contract("runner");
  EXPECT_GT(g_regions.load(), 0) << "parallel regions did not go through the installed runner";
}

TEST(ThreadPool, OpenMpRegionsAfterOneDnnLoads) {
  if (!dnnl::available()) GTEST_SKIP() << "libdnnl.so.2 not loadable (or QCAST_DNNL=0): no OpenMP runner to test";
  check_contract("libgomp");
  set_region_runner(nullptr);
}
