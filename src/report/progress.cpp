#include "qcast/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace qcast {

Progress::Progress(std::string label, std::int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), active_(enabled && ::isatty(STDERR_FILENO)) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::advance(std::int64_t n) {
  done_ += n;
  if (!active_) return;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lk(mu_);
  if (now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  draw(false);
}

void Progress::finish() {
  if (!active_) return;
  std::lock_guard<std::mutex> lk(mu_);
  draw(true);
  std::fputc('\n', stderr);
  active_ = false;
}

void Progress::draw(bool final) {
  const std::int64_t d = done_.load();
  const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(d) / static_cast<double>(total_)) : 1.0;
  const int width = 30, filled = static_cast<int>(frac * width);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(width - filled), '.');
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %5.1f%% %.1fs%s", label_.c_str(), bar.c_str(), static_cast<long long>(d),
               static_cast<long long>(total_), 100.0 * frac, secs, final ? "" : "   ");
  std::fflush(stderr);
}

}  // namespace qcast
