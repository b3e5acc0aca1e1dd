// libFuzzer target: the dataset-spec YAML (`name, format, root, images, labels, text, preprocess: {scale,
// resize, interpolation, mean, std}`) as `qcast eval --data SPEC.yaml` reads it. The spec is parsed; an
// image spec is then loaded as eval loads it for a [1, 8, 8] model, with its file names pointed at a tiny
// .npy pair made at start-up (so the preprocessing it declares runs on real samples). Bad specs must be
// refused with qcast::Error; nothing may crash or allocate without bound.
// Seeds: examples/data (gathered by scripts/fuzz at run time); dictionary fuzz/dicts/dataset_spec.dict.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/dataset.hpp"

namespace {
std::string g_dir, g_spec, g_x, g_y;

void cleanup() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = (std::filesystem::temp_directory_path() / ("qcast-dataset-fuzz-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(g_dir);
  std::atexit(cleanup);
  g_spec = g_dir + "/spec.yaml";
  g_x = g_dir + "/x.npy";
  g_y = g_dir + "/y.npy";
  auto xs = std::make_shared<std::vector<float>>(2 * 1 * 4 * 4);
  for (std::size_t i = 0; i < xs->size(); ++i) (*xs)[i] = static_cast<float>(i % 7) * 40.0f;
  auto ys = std::make_shared<std::vector<std::int64_t>>(std::vector<std::int64_t>{3, 1});
  qcast::Tensor x, y;
  x.dtype = qcast::DType::F32;
  x.shape = {2, 1, 4, 4};
  x.data = xs->data();
  x.owner = xs;
  y.dtype = qcast::DType::I64;
  y.shape = {2};
  y.data = ys->data();
  y.owner = ys;
  qcast::write_npy(g_x, x);
  qcast::write_npy(g_y, y);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 16384) return 0;
  {
    std::ofstream out(g_spec, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    qcast::nn::DatasetSpec d = qcast::nn::parse_dataset_spec(g_spec);
    if (d.kind != qcast::nn::DatasetSpec::Kind::Text) {
      d.kind = qcast::nn::DatasetSpec::Kind::Npy;
      d.images = g_x;
      d.labels = g_y;
      qcast::nn::ImageSet s = qcast::nn::load_images(d, qcast::Shape{1, 8, 8}, 2);
      (void)s.label(0, 10);
    }
  } catch (const qcast::Error&) {
  }
  return 0;
}
