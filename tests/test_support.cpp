#include "test_support.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qcast::test {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string shared_dir() {
  if (const char* env = std::getenv("QCAST_SHARED")) return exists(env) ? env : "";
  return exists(QCAST_SHARED_DIR) ? QCAST_SHARED_DIR : "";
}

static std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CliResult run_cli(const std::string& args) { return run_binary(QCAST_CLI_PATH, args); }

CliResult run_binary(const std::string& exe, const std::string& args) {
  TempDir t;
  std::string cmd = exe + " " + args + " >" + t.file("out") + " 2>" + t.file("err");
  int st = std::system(cmd.c_str());
  CliResult r;
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(t.file("out"));
  r.err = slurp(t.file("err"));
  return r;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/qcast-test-XXXXXX";
  char* p = ::mkdtemp(tmpl);
  path_ = p ? p : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace qcast::test
