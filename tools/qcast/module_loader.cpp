#include "module_loader.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>

#include "qcast/error.hpp"

namespace qcast::cli {

namespace {
std::string executable_dir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  const std::string p(buf, static_cast<std::size_t>(n));
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}
}  // namespace

void* open_cli_module(const char* name, const char* relative, const char* installed, int flags, const std::string& what) {
  std::string why;
  const std::string dir = executable_dir();
  for (const std::string& path : {dir + "/" + name, dir + "/" + relative, std::string(installed)}) {
    if (void* h = ::dlopen(path.c_str(), flags)) return h;
    why += std::string("\n  ") + ::dlerror();
  }
  throw Error("cannot load " + what + " (" + name + "):" + why);
}

void* module_symbol(void* module, const char* symbol, const std::string& what) {
  void* f = ::dlsym(module, symbol);
  if (!f) throw Error(what + " has no " + symbol);
  return f;
}

}  // namespace qcast::cli
