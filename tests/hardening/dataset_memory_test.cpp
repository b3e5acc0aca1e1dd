// Issue 19: datasets cost what is asked of them. IDX files are streamed (a small gzip file whose header
// says one image is not decompressed whole; --limit reads only the samples it needs), a declared resize
// runs after the limit and after the shape check, and raw (uncompressed) IDX files serve mnist:DIR too.
// The memory cases run the CLI under `ulimit -v` (4 GB, as tests/robustness does) with inputs that
// decompress to more than that.
#include <zlib.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "onnx_builder.hpp"
#include "qcast/io.hpp"
#include "test_support.hpp"

namespace {

qcast::test::CliResult run_limited(const std::string& args) {
  return qcast::test::run_binary("ulimit -v 4000000; exec " QCAST_CLI_PATH, args);
}

std::string idx_header(std::vector<std::uint32_t> dims) {
  std::string b = {0, 0, 8, static_cast<char>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((d >> s) & 0xff));
  return b;
}

std::string gzip_member(const std::string& bytes) {
  uLongf n = compressBound(static_cast<uLong>(bytes.size())) + 64;
  std::string out(n, '\0');
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);  // windowBits + 16: a gzip wrapper
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// A gzip file (concatenated members, which gzread reads as one stream): `header`, then `zero_chunks`
// times 64 MiB of zero bytes.
void write_idx_bomb(const std::string& path, const std::string& header, int zero_chunks) {
  std::ofstream f(path, std::ios::binary);
  f << gzip_member(header);
  const std::string zeros = gzip_member(std::string(std::size_t{64} << 20, '\0'));
  for (int k = 0; k < zero_chunks; ++k) f << zeros;
}

}  // namespace

TEST(HardeningDataset, GzipIdxIsReadOnlyAsFarAsItsHeaderSays) {
  QCAST_SKIP_ADDRESS_LIMIT_TEST();
  qcast::test::TempDir d;
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::image_classifier());
  // Header: 1 image of 2x2; then 4.5 GB of zeros (about 4.5 MB compressed).
  write_idx_bomb(d.file("img.gz"), idx_header({1, 2, 2}) + std::string(4, '\0'), 70);
  { std::ofstream(d.file("lab.gz"), std::ios::binary) << gzip_member(idx_header({1}) + std::string(1, '\0')); }
  { std::ofstream(d.file("s.yaml")) << "format: idx\nimages: img.gz\nlabels: lab.gz\n"; }
  auto r = run_limited("eval " + d.file("m.onnx") + " --data " + d.file("s.yaml"));
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("longer than"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("img.gz"), std::string::npos) << r.err;
}

TEST(HardeningDataset, LimitReadsOnlyTheSamplesItNeeds) {
  QCAST_SKIP_ADDRESS_LIMIT_TEST();
  qcast::test::TempDir d;
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::image_classifier());
  // 1140850688 images of 2x2 (4.25 GiB of pixels, all zero) and as many labels (1.06 GiB).
  const std::uint32_t n = 68u << 24;
  write_idx_bomb(d.file("img.gz"), idx_header({n, 2, 2}), 68);
  write_idx_bomb(d.file("lab.gz"), idx_header({n}), 17);
  { std::ofstream(d.file("s.yaml")) << "format: idx\nimages: img.gz\nlabels: lab.gz\n"; }
  auto r = run_limited("eval " + d.file("m.onnx") + " --data " + d.file("s.yaml") + " --limit 5 --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["samples"], 5);
}

TEST(HardeningDataset, ResizeRunsAfterTheShapeCheck) {
  QCAST_SKIP_ADDRESS_LIMIT_TEST();
  qcast::test::TempDir d;
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::image_classifier());
  // 1000 images; a declared resize to 1200x1200 would take 5.8 GB before finding that the model wants 2x2.
  std::string img = idx_header({1000, 2, 2}) + std::string(4000, '\1');
  std::string lab = idx_header({1000}) + std::string(1000, '\0');
  { std::ofstream(d.file("img"), std::ios::binary) << img; }
  { std::ofstream(d.file("lab"), std::ios::binary) << lab; }
  { std::ofstream(d.file("s.yaml")) << "format: idx\nimages: img\nlabels: lab\npreprocess: {resize: [1200, 1200]}\n"; }
  auto r = run_limited("eval " + d.file("m.onnx") + " --data " + d.file("s.yaml"));
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("[1, 1200, 1200]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[1, 2, 2]"), std::string::npos) << r.err;
}

TEST(HardeningDataset, ResizeSidesAreWholeNumbersInRange) {
  // Found by the dataset_spec fuzzer: a side of 3.9e20 was converted to an integer (undefined behaviour).
  qcast::test::TempDir d;
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::image_classifier());
  { std::ofstream(d.file("img"), std::ios::binary) << idx_header({1, 2, 2}) + std::string(4, '\1'); }
  { std::ofstream(d.file("lab"), std::ios::binary) << idx_header({1}) + std::string(1, '\0'); }
  for (const char* sides : {"[3.9e20, 2]", "[2, .nan]", "[2.5, 2]", "[0, 2]", "[70000, 2]"}) {
    SCOPED_TRACE(sides);
    { std::ofstream(d.file("s.yaml")) << "format: idx\nimages: img\nlabels: lab\npreprocess: {resize: " << sides << "}\n"; }
    auto r = qcast::test::run_cli("eval " + d.file("m.onnx") + " --data " + d.file("s.yaml"));
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find("resize sides must be whole numbers from 1 to 65536"), std::string::npos) << r.err;
  }
}

TEST(HardeningDataset, MnistShorthandReadsRawIdx) {
  qcast::test::TempDir d;
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::image_classifier());
  std::string img = idx_header({3, 2, 2});
  for (int k = 0; k < 12; ++k) img.push_back(static_cast<char>(k * 20));
  { std::ofstream(d.file("t10k-images-idx3-ubyte"), std::ios::binary) << img; }
  { std::ofstream(d.file("t10k-labels-idx1-ubyte"), std::ios::binary) << idx_header({3}) + std::string("\0\1\2", 3); }
  auto r = qcast::test::run_cli("eval " + d.file("m.onnx") + " --data mnist:" + d.path() + " --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["samples"], 3);
}
