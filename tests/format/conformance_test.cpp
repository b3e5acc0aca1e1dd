// Bit-exact conformance with the reference MX emulator (microsoft/microxcaling), through the real CLI:
// `qcast cast input.npy out.npy --format F --round R` must reproduce every golden file. Needs ../shared.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qcast/io.hpp"
#include "test_support.hpp"

using namespace qcast;

TEST(Conformance, MicroxcalingGoldenVectorsBitExact) {
  QCAST_REQUIRE_SHARED("conformance/microxcaling/index.json");
  const std::string dir = test::shared_dir() + "/conformance/microxcaling";
  std::ifstream idx(dir + "/index.json");
  const auto index = nlohmann::json::parse(idx);
  const Tensor input = read_npy(dir + "/" + index.at("input").get<std::string>());
  test::TempDir tmp;
  int checked = 0;
  for (auto& [file, info] : index.at("files").items()) {
    SCOPED_TRACE(file);
    const std::string fmt = info.at("format"), round = info.at("round");
    const std::string out = tmp.file(file);
    const auto r = test::run_cli("cast " + dir + "/" + index.at("input").get<std::string>() + " " + out + " --format " + fmt + " --round " + round);
    ASSERT_EQ(r.rc, 0) << r.err;
    const Tensor got = read_npy(out), want = read_npy(dir + "/" + file);
    ASSERT_EQ(got.shape, want.shape);
    ASSERT_EQ(got.dtype, DType::F32);
    const float* g = got.f32();
    const float* w = want.to_f32().f32();
    std::int64_t bad = 0;
    for (std::int64_t i = 0; i < got.numel(); ++i) {
      const bool ok = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i];
      if (!ok && bad++ < 5) ADD_FAILURE() << "element " << i << ": input " << input.f32()[i] << " got " << g[i] << " want " << w[i];
    }
    EXPECT_EQ(bad, 0);
    ++checked;
  }
  EXPECT_EQ(checked, 22);
}
