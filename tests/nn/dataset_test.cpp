#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "qcast/error.hpp"
#include "qcast/nn/dataset.hpp"
#include "test_support.hpp"

using namespace qcast;
using namespace qcast::nn;

namespace {
std::string idx_bytes(std::vector<std::uint32_t> dims, const std::vector<std::uint8_t>& data) {
  std::string b = {0, 0, 8, static_cast<char>(dims.size())};
  for (auto d : dims) for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((d >> s) & 0xff));
  b.append(data.begin(), data.end());
  return b;
}
void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
}  // namespace

TEST(Dataset, IdxRawAndGzipAndPreprocessing) {
  test::TempDir d;
  std::vector<std::uint8_t> px = {0, 255, 51, 102, 0, 0, 255, 255};  // two 2x2 images
  std::ofstream(d.file("img"), std::ios::binary) << idx_bytes({2, 2, 2}, px);
  write_gz(d.file("lab.gz"), idx_bytes({2}, {7, 3}));
  ImageSet s = load_idx(d.file("img"), d.file("lab.gz"));
  ASSERT_EQ(s.size(), 2);
  EXPECT_EQ(s.sample_shape, (Shape{1, 2, 2}));
  EXPECT_EQ(s.labels[0], 7);
  EXPECT_EQ(s.data[1], 255.0f);
  Preprocess p;
  p.scale = 1.0f / 255.0f;
  p.mean = {0.5f};
  p.std = {0.5f};
  preprocess(s, p);
  EXPECT_NEAR(s.data[0], -1.0f, 1e-6);
  EXPECT_NEAR(s.data[1], 1.0f, 1e-6);
  // Mismatched counts, truncated data, bad magic.
  std::ofstream(d.file("lab3"), std::ios::binary) << idx_bytes({3}, {1, 2, 3});
  EXPECT_THROW(load_idx(d.file("img"), d.file("lab3")), Error);
  std::ofstream(d.file("short"), std::ios::binary) << idx_bytes({2, 2, 2}, {1, 2, 3});
  EXPECT_THROW(load_idx(d.file("short"), d.file("lab.gz")), Error);
  std::ofstream(d.file("bad"), std::ios::binary) << "PK\x03\x04 not idx";
  Shape sh;
  EXPECT_THROW(read_idx(d.file("bad"), sh), Error);
  EXPECT_THROW(read_idx(d.file("missing"), sh), Error);
}

TEST(Dataset, BilinearResizeMatchesPyTorchAlignCornersFalse) {
  // torch.nn.functional.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), size=(4, 4), mode="bilinear",
  // align_corners=False)
  const float in[4] = {1, 2, 3, 4};
  float out[16];
  resize_bilinear(in, 1, 2, 2, out, 4, 4);
  const float want[16] = {1.0f, 1.25f, 1.75f, 2.0f, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3.0f, 3.25f, 3.75f, 4.0f};
  for (int k = 0; k < 16; ++k) EXPECT_FLOAT_EQ(out[k], want[k]) << k;
}

TEST(Dataset, StoriesSplitOnEndOfText) {
  auto s = split_stories("  One.\n<|endoftext|>\n\nTwo two.  <|endoftext|>   <|endoftext|>Three");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], "One.");
  EXPECT_EQ(s[1], "Two two.");
  EXPECT_EQ(s[2], "Three");
  EXPECT_TRUE(split_stories("").empty());
}

TEST(Dataset, SpecFilesAndShorthands) {
  test::TempDir d;
  std::ofstream(d.file("s.yaml")) << "format: npy\ninputs: x.npy\nlabels: y.npy\npreprocess: {scale: 2, mean: 1, std: [4]}\n";
  DatasetSpec s = parse_dataset_spec(d.file("s.yaml"));
  EXPECT_EQ(s.kind, DatasetSpec::Kind::Npy);
  EXPECT_EQ(s.path_of(s.images), d.file("x.npy"));
  EXPECT_EQ(s.pre.scale, 2.0f);
  EXPECT_EQ(parse_dataset_spec(d.file("s.yaml"), "/elsewhere").path_of("x.npy"), "/elsewhere/x.npy");
  std::ofstream(d.file("bad.yaml")) << "format: idx\nimages: a\nlabels: b\npreprocess: {rotate: 90}\n";
  EXPECT_THROW(parse_dataset_spec(d.file("bad.yaml")), Error);
  std::ofstream(d.file("bad2.yaml")) << "format: jpeg\n";
  EXPECT_THROW(parse_dataset_spec(d.file("bad2.yaml")), Error);
  EXPECT_THROW(parse_dataset_spec("no-such-spec.yaml"), Error);
  EXPECT_EQ(parse_dataset_spec("text:/tmp/x.txt").kind, DatasetSpec::Kind::Text);
  EXPECT_EQ(parse_dataset_spec("mnist:/data").path_of("a"), "/data/a");
  EXPECT_THROW(parse_dataset_spec("npy:onlyone.npy"), Error);
}

TEST(Dataset, FashionMnistFromDebianPackage) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "needs Debian's dataset-fashion-mnist (scripts/setup installs it)";
  ImageSet s = load_images(parse_dataset_spec("fashion-mnist"), 32, 32);
  ASSERT_EQ(s.size(), 10000);
  EXPECT_EQ(s.sample_shape, (Shape{1, 32, 32}));
  std::vector<int> counts(10, 0);
  for (auto l : s.labels) { ASSERT_GE(l, 0); ASSERT_LT(l, 10); ++counts[l]; }
  for (int c : counts) EXPECT_EQ(c, 1000);
}
