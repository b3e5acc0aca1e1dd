// A progress bar for long work: done / total, elapsed time, the estimated time left and a running figure
// (accuracy, perplexity so far), drawn on stderr only when stderr is a terminal and progress is not
// switched off (qcast --quiet), silent otherwise (logs and CI stay clean). Thread-safe: advance() and
// set_figure() may be called from any worker.
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
  /// A short running figure shown after the ETA, e.g. "acc 0.9812" or "ppl 12.31".
  void set_figure(std::string text);
  void finish();
  /// Switches every progress bar of the process off (or on again): the CLI's --quiet.
  static void set_enabled(bool enabled);

 private:
  void draw(bool final);
  std::string label_, figure_;
  std::int64_t total_;
  std::atomic<std::int64_t> done_{0};
  bool active_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace qcast
