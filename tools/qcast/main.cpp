// qcast: entry point. Subcommands live one per file beside this one.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#include "command.hpp"
#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/progress.hpp"

namespace qcast::cli {

std::vector<std::pair<std::string, Setup>>& registry() {
  static std::vector<std::pair<std::string, Setup>> r;
  return r;
}

Registrar::Registrar(std::string name, Setup setup) { registry().emplace_back(std::move(name), std::move(setup)); }

CLI::Option* add_input_shape_option(CLI::App* sub, std::vector<std::string>& texts) {
  return sub->add_option("--input-shape", texts,
                         "ONNX: the full shape of each graph input, in order (repeatable), e.g. 1x3x960x960, for models whose "
                         "height / width / length are symbolic (default: every symbolic dimension is the batch)");
}

std::vector<std::vector<std::int64_t>> parse_input_shapes(const std::vector<std::string>& texts) {
  std::vector<std::vector<std::int64_t>> out;
  for (const auto& t : texts) {
    std::vector<std::int64_t> dims;
    std::size_t p = 0;
    while (p <= t.size()) {
      const std::size_t x = std::min(t.find('x', p), t.size());
      const std::string d = t.substr(p, x - p);
      std::int64_t v = 0;
      const bool digits = !d.empty() && d.size() <= 9 && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits) v = std::stoll(d);
      if (!digits || v < 1) throw Error("--input-shape '" + printable(t) + "': expected dimensions from 1 to 999999999 joined by 'x', e.g. 1x3x960x960");
      dims.push_back(v);
      p = x + 1;
    }
    if (dims.size() > 8) throw Error("--input-shape '" + printable(t) + "': more than 8 dimensions");
    out.push_back(std::move(dims));
  }
  return out;
}

CLI::Validator finite_range(double lo, double hi) {
  std::ostringstream desc;
  desc << "FLOAT in [" << lo << ", " << hi << "]";
  return CLI::Validator(
      [lo, hi](std::string& in) -> std::string {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(in.c_str(), &end);
        if (in.empty() || end != in.c_str() + in.size()) return "'" + in + "' is not a number";
        if (!std::isfinite(v)) return "'" + in + "' is not a finite number";
        if (v < lo || v > hi) {
          std::ostringstream o;
          o << in << " is outside [" << lo << ", " << hi << "]";
          return o.str();
        }
        return {};
      },
      desc.str());
}

CLI::Validator seed_check() {
  return CLI::Validator(
      [](std::string& in) -> std::string {
        const bool digits = !in.empty() && std::all_of(in.begin(), in.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) return "seed '" + in + "' is not a non-negative decimal integer";
        errno = 0;
        (void)std::strtoull(in.c_str(), nullptr, 10);
        if (errno == ERANGE) return "seed " + in + " does not fit in 64 bits (at most 18446744073709551615)";
        return {};
      },
      "UINT64");
}

CLI::Option* add_seed_option(CLI::App* sub, std::uint64_t& seed, const std::string& description) {
  return sub->add_option("--seed", seed, description)->check(seed_check());
}

std::string printable(const std::string& s) {
  std::string r;
  r.reserve(s.size());
  auto hex = [&](unsigned char c) {
    static const char* d = "0123456789abcdef";
    r += "\\x";
    r += d[c >> 4];
    r += d[c & 15];
  };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 && c != '\n' && c != '\t') hex(c);
      else if (c == 0x7f) hex(c);
      else r += static_cast<char>(c);
      ++i;
      continue;
    }
    // Length and lowest code point of a multi-byte sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
    const int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    bool ok = len > 0 && i + static_cast<std::size_t>(len) <= s.size();
    std::uint32_t cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      ok = (b & 0xC0) == 0x80;
      cp = cp << 6 | (b & 0x3F);
    }
    ok = ok && !(len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) && !(len == 4 && (cp < 0x10000 || cp > 0x10FFFF));
    if (!ok) {
      hex(c);
      ++i;
      continue;
    }
    r.append(s, i, static_cast<std::size_t>(len));
    i += static_cast<std::size_t>(len);
  }
  return r;
}

void add_threads_flag(CLI::App* sub, int& threads) {
  threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  sub->add_option("--threads", threads, "worker threads (default: all cores); results do not depend on it")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
}

}  // namespace qcast::cli

// Start-up: libhwy's static initializer measures the resolution of its benchmark timer
// (hwy::platform::TimerResolution, a calibration loop) every time the library loads: ~4 ms of every
// qcast command on the 2-core dev VM, a tenth of a 64 MiB `qcast cast`. The value only serves Highway's
// nanobenchmark, which qcast never runs (bench/ uses Google Benchmark), and Highway's target dispatch does
// not depend on it. Defined here in the executable, this definition is the one the library's call binds
// to (ELF symbol interposition: the executable comes first in the global lookup scope); the library and
// its tests are untouched.
namespace hwy::platform {
std::uint64_t TimerResolution() { return 1; }
}  // namespace hwy::platform

namespace {

// --max-memory: the one bound on everything a command allocates that no specific cap covers. It is the
// process's data limit (RLIMIT_DATA: heap and private anonymous mappings; memory-mapped input files do not
// count), so an allocation beyond it fails with std::bad_alloc, which ends the command with exit 2 and a
// message naming the limit. The sanitizers reserve terabytes of shadow memory as such mappings, so sanitizer
// builds do not set it.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizerBuild = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif
#else
constexpr bool kSanitizerBuild = false;
#endif

std::uint64_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
}

std::string bytes_text(std::uint64_t b) {
  char buf[64];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1ull << 30));
  else std::snprintf(buf, sizeof buf, "%.0f MiB", static_cast<double>(b) / (1ull << 20));
  return buf;
}

// "512M", "8G", "1.5G", "0" (no limit), plain bytes; binary units.
std::uint64_t parse_memory_size(const std::string& text) {
  std::size_t pos = 0;
  double v = -1;
  try {
    v = std::stod(text, &pos);
  } catch (...) {
    pos = 0;
  }
  std::string unit = text.substr(pos);
  double mult = 1;
  if (unit == "K" || unit == "k" || unit == "KiB") mult = 1024.0;
  else if (unit == "M" || unit == "m" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "g" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "t" || unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty()) pos = 0;
  if (pos == 0 || !std::isfinite(v) || v < 0 || v * mult > 1.8e19)
    throw qcast::Error("--max-memory '" + text + "': expected a size such as 512M, 8G or 0 (no limit)");
  return static_cast<std::uint64_t>(v * mult);
}

struct MemoryLimit {
  std::string given;         // --max-memory / QCAST_MAX_MEMORY as written ("" = default)
  std::uint64_t bytes = 0;   // the limit in force (0 = none)
  bool by_default = true;
  void apply() {
    by_default = given.empty();
    bytes = by_default ? physical_memory() / 5 * 4 : parse_memory_size(given);
    if (bytes == 0 || kSanitizerBuild) {
      bytes = 0;
      return;
    }
    rlimit r{};
    if (getrlimit(RLIMIT_DATA, &r) != 0) return;
    rlim_t want = static_cast<rlim_t>(bytes);
    if (r.rlim_max != RLIM_INFINITY && want > r.rlim_max) want = r.rlim_max;  // a lower hard limit wins
    if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < want) return;             // so does a lower soft one (ulimit -d)
    r.rlim_cur = want;
    if (setrlimit(RLIMIT_DATA, &r) == 0) bytes = static_cast<std::uint64_t>(want);
  }
  std::string describe() const {
    if (bytes == 0) return "out of memory";
    return "out of memory: the command needed more than the --max-memory limit of " + bytes_text(bytes) +
           (by_default ? " (the default, 80 % of RAM)" : "") +
           "; raise it with --max-memory SIZE or QCAST_MAX_MEMORY (0 = no limit), or give the command less to do";
  }
};

}  // namespace

int main(int argc, char** argv) {
  qcast::install_temp_file_signal_handlers();  // an interrupted command leaves no temporary file behind
  CLI::App app{"qcast: hardware-aware quantization of neural networks (formats, models, PTQ, hardware cost)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("qcast ") + QCAST_VERSION_STRING);
  app.fallthrough();  // the commands inherit it: --max-memory may follow the command name
  auto& reg = qcast::cli::registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [name, setup] : reg) setup(app);
  // Every command takes --quiet: no progress bars (they are drawn only on a terminal anyway).
  for (CLI::App* sub : app.get_subcommands({}))
    if (!sub->get_option_no_throw("--quiet"))
      sub->add_flag_callback("--quiet,-q", [] { qcast::Progress::set_enabled(false); }, "no progress bars");
  MemoryLimit memory;
  app.add_option("--max-memory", memory.given,
                 "the most memory a command may allocate (K, M, G, T; 0 = no limit; default 80 % of RAM); beyond it the "
                 "command stops with exit 2")
      ->envname("QCAST_MAX_MEMORY");
  app.parse_complete_callback([&memory] { memory.apply(); });  // before the command runs
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11's message echoes the arguments: printed escaped, as every message is.
    std::cerr << qcast::cli::printable(e.what()) << "\nRun with --help for more information.\n";
    return 2;  // every usage error is "bad input"
  } catch (const qcast::Error& e) {
    // Messages name files, tensors and layers as the input spells them: escaped, never raw bytes.
    std::cerr << "qcast: error: " << qcast::cli::printable(e.what()) << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "qcast: error: " << memory.describe() << "\n";
    return 2;  // the input asked for more than the limit: bad input, not an internal error
  } catch (const std::exception& e) {
    std::cerr << "qcast: internal error: " << qcast::cli::printable(e.what()) << "\n";
    return 3;
  }
  return 0;
}
