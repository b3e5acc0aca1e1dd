// A progress bar for long work: drawn on stderr only when stderr is a terminal, silent otherwise
// (logs and CI stay clean). Thread-safe: advance() may be called from any worker.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace qcast {

class Progress {
 public:
  Progress(std::string label, std::int64_t total, bool enabled = true);
  ~Progress();
  void advance(std::int64_t n = 1);
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  std::int64_t total_;
  std::atomic<std::int64_t> done_{0};
  bool active_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace qcast
