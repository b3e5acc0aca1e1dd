#include "qcast/kernels/thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace qcast::kern {

namespace {

thread_local bool t_in_pool_task = false;

class Pool {
 public:
  static Pool& get() {
    static Pool p;
    return p;
  }

  // Runs task(i) for i in [0, count) with task 0 on the caller and the rest on workers.
  void run(int count, const std::function<void(int)>& task) {
    std::unique_lock<std::mutex> call_lock(call_mu_);  // one parallel region at a time
    ensure_workers(count - 1);
    std::exception_ptr first_error;
    {
      std::lock_guard<std::mutex> lk(mu_);
      task_ = &task;
      pending_ = count - 1;
      next_ = 1;
      count_ = count;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    try {
      t_in_pool_task = true;
      task(0);
      t_in_pool_task = false;
    } catch (...) {
      t_in_pool_task = false;
      first_error = std::current_exception();
    }
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    task_ = nullptr;
    if (!first_error) first_error = error_;
    lk.unlock();
    if (first_error) std::rethrow_exception(first_error);
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) workers_.emplace_back([this] { loop(); });
  }

  void loop() {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stop_ || (generation_ != seen && next_ < count_); });
      if (stop_) return;
      seen = generation_;
      while (next_ < count_) {
        const int i = next_++;
        const std::function<void(int)>* task = task_;
        lk.unlock();
        std::exception_ptr err;
        try {
          t_in_pool_task = true;
          (*task)(i);
        } catch (...) {
          err = std::current_exception();
        }
        t_in_pool_task = false;
        lk.lock();
        if (err && !error_) error_ = err;
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  std::mutex call_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* task_ = nullptr;
  std::exception_ptr error_;
  std::uint64_t generation_ = 0;
  int pending_ = 0, next_ = 0, count_ = 0;
  bool stop_ = false;
};

}  // namespace

int hardware_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

void parallel_for(std::int64_t n, int threads, const std::function<void(std::int64_t, std::int64_t)>& fn,
                  std::int64_t min_items) {
  if (n <= 0) return;
  min_items = std::max<std::int64_t>(1, min_items);
  std::int64_t parts = std::min<std::int64_t>(std::max(1, threads), std::max<std::int64_t>(1, n / min_items));
  parts = std::min<std::int64_t>(parts, 1024);
  if (parts <= 1 || t_in_pool_task) {
    fn(0, n);
    return;
  }
  const int p = static_cast<int>(parts);
  Pool::get().run(p, [&](int i) {
    const std::int64_t b = n * i / p, e = n * (i + 1) / p;
    if (b < e) fn(b, e);
  });
}

void parallel_items(std::int64_t n, int threads, const std::function<void(std::int64_t)>& fn) {
  if (n <= 0) return;
  const int p = static_cast<int>(std::min<std::int64_t>({std::max(1, threads), n, 1024}));
  if (p <= 1 || t_in_pool_task) {
    for (std::int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<std::int64_t> next{0};
  Pool::get().run(p, [&](int) {
    for (std::int64_t i; (i = next.fetch_add(1)) < n;) fn(i);
  });
}

}  // namespace qcast::kern
