// qcast's one thread pool: every layer's parallel loops run on it (kernels, operators, PTQ, the mapper).
//
// Work is always split into contiguous, whole ranges of items (groups or rows) with a static
// partition, and every item is computed independently, so results never depend on the thread count.
// Workers are std::threads created on first use and parked on a condition variable between calls
// (a parallel_for costs a few microseconds, not a thread spawn per call).
#pragma once
#include <cstdint>
#include <functional>

namespace qcast::kern {

/// Runs fn(begin, end) over [0, n) split into at most `threads` contiguous ranges of at least
/// `min_items` items each; the calling thread takes the first range. Exceptions thrown by fn are
/// rethrown on the caller (the first one wins). Nested calls run serially on the calling thread.
void parallel_for(std::int64_t n, int threads, const std::function<void(std::int64_t, std::int64_t)>& fn,
                  std::int64_t min_items = 1);

/// Runs fn(i) for every i in [0, n) on at most `threads` workers that take the next item from a shared
/// counter (for items of uneven cost: stories, calibration batches, mapper chunks). Results must not
/// depend on which worker ran an item. Exceptions are rethrown on the caller (the first one wins).
/// Nested calls run serially on the calling thread.
void parallel_items(std::int64_t n, int threads, const std::function<void(std::int64_t)>& fn);

/// Number of hardware threads (at least 1).
int hardware_threads();

}  // namespace qcast::kern
