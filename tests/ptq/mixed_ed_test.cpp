#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ptq_support.hpp"
#include "qcast/error.hpp"
#include "qcast/ptq/ed.hpp"
#include "qcast/ptq/mixed.hpp"
#include "qcast/ptq/rtn.hpp"

using namespace qcast;
using namespace qcast::ptq;

TEST(PtqMixed, MeetsBudgetAtLeastPredictedError) {
  // Three layers; the sensitive one deserves the bits.
  std::vector<LayerSensitivity> L = {
      {"a", 1000, {{"int3/g32", 4.0, 10.0}, {"int4/g32", 5.0, 3.0}, {"int8/g32", 9.0, 0.1}}},
      {"b", 1000, {{"int3/g32", 4.0, 100.0}, {"int4/g32", 5.0, 20.0}, {"int8/g32", 9.0, 0.5}}},
      {"c", 2000, {{"int3/g32", 4.0, 5.0}, {"int4/g32", 5.0, 1.0}, {"int8/g32", 9.0, 0.05}}},
  };
  for (double budget : {4.0, 4.5, 5.0, 5.25, 6.0, 9.0}) {
    const auto a = allocate(L, budget);
    EXPECT_LE(a.avg_bits, budget + 1e-9);
    // Brute force optimum.
    double best = 1e30;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 3; ++k) {
          const double bits = (L[0].options[i].bits * 1000 + L[1].options[j].bits * 1000 + L[2].options[k].bits * 2000) / 4000;
          if (bits <= budget + 1e-9) best = std::min(best, L[0].options[i].error + L[1].options[j].error + L[2].options[k].error);
        }
    EXPECT_NEAR(a.predicted_error, best, 1e-9) << budget;
    const auto j = nlohmann::json::parse(a.to_json(budget));
    EXPECT_EQ(j["layers"].size(), 3u);
  }
  EXPECT_EQ(allocate(L, 4.5).recipe[1].second, "int4/g32");
  EXPECT_EQ(allocate(L, 5.25).recipe[1].second, "int8/g32");
  EXPECT_THROW(allocate(L, 3.0), Error);
}

// A budget in another unit (energy): the allocator minimises the error under the options' own costs, which
// need not follow their bits (here a large layer is cheap in energy and a small one dear).
TEST(PtqMixed, CostBudgetsFollowTheOptionsCosts) {
  std::vector<LayerSensitivity> L = {
      {"big", 4000, {{"int4/g32", 5.0, 8.0, 100.0}, {"int8/g32", 9.0, 1.0, 120.0}}},
      {"small", 1000, {{"int4/g32", 5.0, 6.0, 300.0}, {"int8/g32", 9.0, 0.5, 500.0}}},
  };
  auto unit = [](double pj) { return std::to_string(pj) + " pJ"; };
  for (double budget : {400.0, 420.0, 600.0, 620.0}) {
    const Allocation a = allocate_cost(L, budget, unit);
    EXPECT_LE(a.cost, budget + 1e-9);
    double best = 1e30;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        if (L[0].options[i].cost + L[1].options[j].cost <= budget) best = std::min(best, L[0].options[i].error + L[1].options[j].error);
    EXPECT_NEAR(a.predicted_error, best, 1e-12) << budget;
  }
  // 420 pJ buys the big layer's 8 bits (+20 pJ), not the small one's (+200 pJ): by bits it would be the reverse.
  EXPECT_EQ(allocate_cost(L, 420, unit).recipe[0].second, "int8/g32");
  EXPECT_EQ(allocate_cost(L, 420, unit).recipe[1].second, "int4/g32");
  EXPECT_EQ(allocate(L, 5.8).recipe[0].second, "int4/g32");
  EXPECT_EQ(allocate(L, 5.8).recipe[1].second, "int8/g32");
  try {
    allocate_cost(L, 399, unit);
    ADD_FAILURE() << "a budget below the cheapest choice must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("below the cheapest choice (400.000000 pJ)"), std::string::npos) << e.what();
  }
}

TEST(PtqMixed, SensitivityFromLayers) {
  const std::int64_t n = 64;
  auto W = test::randn(n * n, 1, 0.05f);
  const auto s = layer_sensitivity("l0", W.data(), n, n, nullptr, {"int3/g32", "int4/g32", "int8/g32"});
  ASSERT_EQ(s.options.size(), 3u);
  EXPECT_GT(s.options[0].error, s.options[1].error);
  EXPECT_GT(s.options[1].error, s.options[2].error);
  EXPECT_NEAR(s.options[1].bits, 4 + 32.0 / 32, 1e-12);
}

TEST(PtqEd, DiffusesPrefixErrorIntoNextLayer) {
  // Two layers: h = relu(x W1^T), y = h W2^T. Layer 1 is quantized (RTN, int3); layer 2 is quantized
  // against the inputs h~ that the quantized layer 1 produces.
  const std::int64_t d = 64, tokens = 1024;
  auto X = test::correlated_inputs(tokens, d, 5);
  auto W1 = test::randn(d * d, 6, 0.15f), W2 = test::randn(d * d, 7, 0.15f);
  const Format f = Format::parse("mxfp4");
  const auto Q1 = rtn(Format::parse("int3/g32"), W1.data(), d, d);
  std::vector<float> H(tokens * d), Hq(tokens * d);
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t o = 0; o < d; ++o) {
      double a = 0, b = 0;
      for (std::int64_t i = 0; i < d; ++i) a += X[t * d + i] * W1[o * d + i], b += X[t * d + i] * Q1.values[o * d + i];
      H[t * d + o] = static_cast<float>(std::max(0.0, a));
      Hq[t * d + o] = static_cast<float>(std::max(0.0, b));
    }
  EdAccumulator acc(d);
  acc.add(H.data(), Hq.data(), tokens / 2);
  acc.add(H.data() + tokens / 2 * d, Hq.data() + tokens / 2 * d, tokens / 2);
  auto final_err = [&](const std::vector<float>& Q2) {
    double e = 0;
    for (std::int64_t t = 0; t < tokens; ++t)
      for (std::int64_t o = 0; o < d; ++o) {
        double y = 0, yq = 0;
        for (std::int64_t i = 0; i < d; ++i) y += H[t * d + i] * W2[o * d + i], yq += Hq[t * d + i] * Q2[o * d + i];
        e += (y - yq) * (y - yq);
      }
    return e;
  };
  const double e_rtn = final_err(rtn(f, W2.data(), d, d).values);
  const auto ed = error_diffusion(f, W2.data(), d, d, acc);
  EdOptions og;
  og.inner = EdOptions::Inner::Gptq;
  const auto edg = error_diffusion(f, W2.data(), d, d, acc, og);
  const double e_ed = final_err(ed.q.values), e_edg = final_err(edg.q.values), e_target = final_err(ed.target);
  std::printf("  ed: rtn %.4g  ed(rtn) %.4g  ed(gptq) %.4g  unquantized target %.4g\n", e_rtn, e_ed, e_edg, e_target);
  EXPECT_LT(e_ed, e_rtn);
  EXPECT_LT(e_edg, e_ed);
  // With an unquantized prefix the correction is the identity.
  EdAccumulator same(d);
  same.add(H.data(), H.data(), tokens);
  const auto id = error_diffusion(f, W2.data(), d, d, same);
  for (std::size_t i = 0; i < W2.size(); ++i) EXPECT_NEAR(id.target[i], W2[i], 1e-3 * (std::fabs(W2[i]) + 0.01));
}
