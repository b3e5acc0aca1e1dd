// Helpers shared by the unit tests: where ../shared is, running the real CLI, scratch directories.
#pragma once
#include <gtest/gtest.h>

#include <string>

namespace qcast::test {

/// Path of ../shared beside the checkout, or "" when it is absent.
std::string shared_dir();

/// Skips the current test with a message when ../shared (or `sub` inside it) is absent.
#define QCAST_REQUIRE_SHARED(sub)                                                                 \
  do {                                                                                            \
    if (::qcast::test::shared_dir().empty() || !::qcast::test::exists(::qcast::test::shared_dir() + "/" + (sub))) \
      GTEST_SKIP() << "needs ../shared/" << (sub) << " (shared material absent)";                 \
  } while (0)

// AddressSanitizer builds reserve terabytes of address space for their shadow memory, so a test that
// runs the CLI under `ulimit -v` cannot run there; the release run checks it.
#if defined(__SANITIZE_ADDRESS__)
#define QCAST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QCAST_UNDER_ASAN 1
#endif
#endif
#ifdef QCAST_UNDER_ASAN
#define QCAST_SKIP_ADDRESS_LIMIT_TEST() \
  GTEST_SKIP() << "an address-space limit (ulimit -v) cannot hold an ASan binary's shadow memory; the release run checks this"
#else
#define QCAST_SKIP_ADDRESS_LIMIT_TEST() (void)0
#endif

bool exists(const std::string& path);

struct CliResult {
  int rc = -1;
  std::string out, err;
};
/// Runs the qcast binary built with the tests; `args` is appended as-is to a shell command line.
CliResult run_cli(const std::string& args);
/// The same for another executable (e.g. a copy of qcast elsewhere).
CliResult run_binary(const std::string& exe, const std::string& args);

/// A fresh scratch directory, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace qcast::test
