// libFuzzer target: recipe files (YAML or JSON: weights, activations {format, observer}, kv_cache,
// act_ranges, layers [{match, weights, acts}], skip) as `--recipe FILE` reads them. The recipe is loaded,
// validated and resolved for a few layer names; a bad one must be refused with qcast::Error.
// Seeds: examples/recipes (gathered by scripts/fuzz at run time); dictionary fuzz/dicts/recipe.dict.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/nn/recipe.hpp"

namespace {
std::string g_dir, g_path;
void cleanup() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = (std::filesystem::temp_directory_path() / ("qcast-recipe-fuzz-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(g_dir);
  std::atexit(cleanup);
  g_path = g_dir + "/recipe.yaml";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 16384) return 0;
  {
    std::ofstream out(g_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    qcast::nn::Recipe r = qcast::nn::load_recipe(g_path);
    r.validate("fuzz");
    const std::vector<std::string> names = {"conv1", "fc1", "layers.0.attention.wq", "output", "/features/0/Conv"};
    for (const auto& n : names) {
      std::string w, a, o;
      r.formats_for(n, w, a, o);
      (void)qcast::nn::parse_optional_format(w);
      (void)qcast::nn::parse_optional_format(a);
    }
    (void)r.unmatched(names);
    (void)qcast::nn::unmatched_warning(r, names);
    (void)r.has_static_acts();
  } catch (const qcast::Error&) {
  }
  return 0;
}
