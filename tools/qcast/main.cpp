// qcast: entry point. Subcommands live one per file beside this one.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <cstdint>
#include <iostream>
#include <thread>

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

int main(int argc, char** argv) {
  qcast::install_temp_file_signal_handlers();  // an interrupted command leaves no temporary file behind
  CLI::App app{"qcast: hardware-aware quantization of neural networks (formats, models, PTQ, hardware cost)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("qcast ") + QCAST_VERSION_STRING);
  auto& reg = qcast::cli::registry();
  std::sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [name, setup] : reg) setup(app);
  // Every command takes --quiet: no progress bars (they are drawn only on a terminal anyway).
  for (CLI::App* sub : app.get_subcommands({}))
    if (!sub->get_option_no_throw("--quiet"))
      sub->add_flag_callback("--quiet,-q", [] { qcast::Progress::set_enabled(false); }, "no progress bars");
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
    std::cerr << "qcast: error: out of memory\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "qcast: internal error: " << qcast::cli::printable(e.what()) << "\n";
    return 3;
  }
  return 0;
}
