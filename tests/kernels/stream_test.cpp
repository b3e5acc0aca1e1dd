// fake_quant_streamed (what `qcast cast` writes files with) must deliver exactly fake_quant's output, in
// windows of whole groups that cover it once (from several threads, in any order), for every window
// size, thread count and format, including the formats that fall back to a whole-tensor computation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast {
namespace {

std::vector<float> random_values(std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = g(rng) * std::ldexp(1.0f, static_cast<int>(i / 97 % 9) - 4);
  return v;
}

struct Streamed {
  std::vector<float> values;
  std::vector<std::int64_t> pieces;
};

// Collects the windows (delivered concurrently, in any order) and lays them out by offset; the pieces
// come back in output order. Fails the test if the windows overlap or leave a gap.
Streamed stream(const Format& f, const std::vector<float>& in, const Shape& shape, const QuantOptions& o, std::int64_t chunk) {
  std::mutex mu;
  std::map<std::int64_t, std::vector<float>> windows;
  const FloatSource source = [&](std::int64_t offset, std::int64_t count, float* dst) {
    ASSERT_TRUE(offset >= 0 && count >= 0 && offset + count <= static_cast<std::int64_t>(in.size())) << "read outside the input";
    std::memcpy(dst, in.data() + offset, static_cast<std::size_t>(count) * sizeof(float));
  };
  fake_quant_streamed(f, source, shape, o, [&](std::int64_t offset, const float* v, std::int64_t n) {
    std::vector<float> w(v, v + n);  // the buffer is reused after the call returns
    std::lock_guard<std::mutex> lk(mu);
    EXPECT_TRUE(windows.emplace(offset, std::move(w)).second) << "window at " << offset << " delivered twice";
  }, chunk);
  Streamed s;
  for (auto& [offset, w] : windows) {
    EXPECT_EQ(offset, static_cast<std::int64_t>(s.values.size())) << "gap or overlap before window at " << offset;
    s.values.insert(s.values.end(), w.begin(), w.end());
    s.pieces.push_back(static_cast<std::int64_t>(w.size()));
  }
  return s;
}

TEST(FakeQuantStreamed, EqualsFakeQuantForEveryWindowSizeAndThreadCount) {
  const std::vector<std::pair<std::string, Shape>> cases = {
      {"mxfp4", {37, 100}},          // ragged last block of every row
      {"nvfp4", {64, 48}},           // tensor scale computed once over the whole input
      {"mxfp8", {1, 5000}},          // one long row: windows cut inside the row
      {"int8@fp32/ch0", {33, 70}},   // one group per row
      {"int4@fp16/g32/asym", {9, 96}},
      {"nf4", {16, 64}},
      {"e4m3", {12345}},             // elementwise
      {"bf16", {3, 7, 11}},
      {"e2m1@e8m0/b32/ax0", {64, 10}},      // blocks along an inner axis: whole-tensor fallback
      {"int4@fp32/t4x4", {16, 16}},  // tiles: fallback
  };
  for (const auto& [name, shape] : cases) {
    const Format f = Format::parse(name);
    const auto in = random_values(shape_numel(shape), 7);
    std::vector<float> want(in.size());
    fake_quant(f, in.data(), want.data(), shape);
    for (std::int64_t chunk : {1, 7, 32, 100, 1000, 1 << 20}) {
      for (int threads : {1, 2, 3}) {
        QuantOptions o;
        o.threads = threads;
        const Streamed got = stream(f, in, shape, o, chunk);
        ASSERT_EQ(got.values.size(), want.size()) << name << " chunk " << chunk;
        ASSERT_EQ(std::memcmp(got.values.data(), want.data(), want.size() * sizeof(float)), 0)
            << name << " chunk " << chunk << " threads " << threads;
        for (std::int64_t p : got.pieces) EXPECT_GT(p, 0) << name;
      }
    }
  }
}

TEST(FakeQuantStreamed, WindowsHoldWholeBlocksAndStayNearTheRequestedSize) {
  const Format f = Format::parse("mxfp4");
  const Shape shape{8, 4096};
  const auto in = random_values(shape_numel(shape), 3);
  const Streamed s = stream(f, in, shape, {}, 1000);
  ASSERT_GT(s.pieces.size(), 1u);
  for (std::size_t k = 0; k + 1 < s.pieces.size(); ++k) {
    EXPECT_EQ(s.pieces[k] % 32, 0) << "piece " << k << " is not whole blocks";
    EXPECT_LE(s.pieces[k], 1000);
  }
}

TEST(FakeQuantStreamed, StochasticRoundingMatchesAndRejectsBadWindow) {
  const Format f = Format::parse("mxfp4");
  const Shape shape{4, 64};
  const auto in = random_values(shape_numel(shape), 5);
  QuantOptions o;
  o.round = RoundMode::Stochastic;
  o.seed = 42;
  std::vector<float> want(in.size());
  fake_quant(f, in.data(), want.data(), shape, o);
  const Streamed s = stream(f, in, shape, o, 50);
  ASSERT_EQ(std::memcmp(s.values.data(), want.data(), want.size() * sizeof(float)), 0);
  EXPECT_THROW(stream(f, in, shape, o, 0), Error);
}

}  // namespace
}  // namespace qcast
