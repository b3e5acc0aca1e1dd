// Issue 19: sizes that come from the user (flags, file metadata) are checked against limits or against
// the file's real size before anything is allocated: exit 2 with a message, never "internal error" (3).
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "onnx_builder.hpp"
#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "test_support.hpp"

using qcast::test::run_cli;

#include "packed_edit.hpp"

TEST(HardeningSizes, StudyRefusesHugeSyntheticTensors) {
  auto r = run_cli("study --rows 1048576 --cols 1048576");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("limit"), std::string::npos) << r.err;
}

TEST(HardeningSizes, DecodeChecksShapeAgainstTheCodes) {
  qcast::test::TempDir d;
  qcast::test::write_packed_edited(d.file("p.safetensors"), "int4", [](qcast::PackedFile& pf) {
    pf.quantized[0].second.shape = {std::int64_t(1) << 31, std::int64_t(1) << 31};
  });
  auto r = run_cli("decode " + d.file("p.safetensors") + " " + d.file("o.safetensors"));
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("codes hold 128 bytes"), std::string::npos) << r.err;
  EXPECT_FALSE(qcast::test::exists(d.file("o.safetensors")));
}

TEST(HardeningSizes, PackedMetadataNumbersMustBeIntegers) {
  // Found by the packed fuzzer: a dimension written as a JSON float (1e25) was converted to an integer
  // (undefined behaviour) instead of being refused.
  qcast::test::TempDir d;
  qcast::test::write_packed_edited(d.file("p.safetensors"), "int4@fp16/g32", [](qcast::PackedFile&) {});
  std::ifstream in(d.file("p.safetensors"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  for (const char* edit : {"[4,1e25]", "[4,64.5]", "\"64\""}) {
    SCOPED_TRACE(edit);
    auto h = header;
    auto meta = nlohmann::json::parse(h["__metadata__"]["qcast.tensor.w"].get<std::string>());
    meta["shape"] = nlohmann::json::parse(edit);
    h["__metadata__"]["qcast.tensor.w"] = meta.dump();
    const std::string text = h.dump();
    const std::uint64_t m = text.size();
    std::string out(reinterpret_cast<const char*>(&m), 8);
    out += text + bytes.substr(8 + n);
    std::ofstream(d.file("e.safetensors"), std::ios::binary) << out;
    auto r = run_cli("decode " + d.file("e.safetensors") + " " + d.file("o.safetensors"));
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find("bad packed metadata"), std::string::npos) << r.err;
    EXPECT_FALSE(qcast::test::exists(d.file("o.safetensors")));
  }
}

TEST(HardeningSizes, MixedBudgetMustBeFinite) {
  qcast::test::TempDir d;
  qcast::test::onnx::save(d.file("m.onnx"), qcast::test::onnx::linear_classifier());
  for (const char* m : {"mixed@nan", "mixed@inf", "mixed@-3", "mixed@4x"}) {
    auto r = run_cli("quantize " + d.file("m.onnx") + " --weights int8@fp32/ch0 --method " + m + " --calib npy:x.npy,y.npy --out " +
                     d.file("q.safetensors"));
    EXPECT_EQ(r.rc, 2) << m << ": " << r.err;
    EXPECT_NE(r.err.find(m), std::string::npos) << r.err;
  }
}
