// The thread pool's contract: every item once, exceptions on the caller, nested calls serial.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "qcast/kernels/thread_pool.hpp"

using namespace qcast::kern;

namespace {

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

TEST(ThreadPool, EveryItemOnceErrorsOnTheCallerNestedCallsSerial) { check_contract("pool"); }
