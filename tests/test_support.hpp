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
