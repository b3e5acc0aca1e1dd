#include "qcast/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace qcast {

namespace {
std::atomic<bool> g_enabled{true};

std::string duration_text(double secs) {
  char buf[32];
  if (secs < 60) std::snprintf(buf, sizeof buf, "%.1fs", secs);
  else if (secs < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(secs) / 60, static_cast<int>(secs) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(secs) / 3600, static_cast<int>(secs) / 60 % 60);
  return buf;
}
}  // namespace

void Progress::set_enabled(bool enabled) { g_enabled = enabled; }

Progress::Progress(std::string label, std::int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), active_(enabled && g_enabled && ::isatty(STDERR_FILENO)) {
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

void Progress::set_figure(std::string text) {
  if (!active_) return;
  std::lock_guard<std::mutex> lk(mu_);
  figure_ = std::move(text);
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
  std::string eta;
  if (final) eta = "done in " + duration_text(secs);
  else if (d > 0) eta = duration_text(secs) + ", ETA " + duration_text(secs / frac * (1.0 - frac));
  else eta = duration_text(secs);
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %5.1f%% %s%s%s\033[K", label_.c_str(), bar.c_str(), static_cast<long long>(d),
               static_cast<long long>(total_), 100.0 * frac, eta.c_str(), figure_.empty() ? "" : "  ", figure_.c_str());
  std::fflush(stderr);
}

}  // namespace qcast
