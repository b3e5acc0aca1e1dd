// Google Benchmark cases for the low-bit products (qcast/kernels/lowbit.hpp) on a 2816 x 1024 matrix (the
// random 155M LLaMA's w1 shape): one token (generation) and 128 tokens (a prompt), on the tiled kernel
// (AVX-512 VNNI CPUs), on the ggml-block kernels (tiles dropped), and OpenBLAS's fp32 product of the same
// decoded weights side by side (sgemv for one token, sgemm for 128, as the LLaMA runtime calls them).
// Reported: GMACps (multiply-adds per second / 1e9) and x_sgemm, that rate over the fp32 product's
// measured in this process on the same shape and threads.
// A set of matrices larger than the caches (kMatrices of them, cycled) keeps generation honest: the
// weights come from memory once per token, as in a model.
//   build/bench/qcast_bench --benchmark_filter='lowbit|sgemm'
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/gguf.hpp"
#include "qcast/kernels/blas.hpp"
#include "qcast/kernels/lowbit.hpp"

namespace {

using qcast::kern::LowbitMatrix;
using qcast::kern::LowbitType;

constexpr std::int64_t kRows = 2816, kCols = 1024;
constexpr int kMatrices = 24;  // 24 x 2816 x 1024: 35 MB of Q4_0, 277 MB of fp32

std::vector<float> random_weights(unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> v(static_cast<std::size_t>(kRows * kCols));
  for (auto& x : v) x = nd(rng);
  return v;
}

LowbitMatrix make_matrix(LowbitType type, unsigned seed) {
  const std::vector<float> v = random_weights(seed);
  const char* fmt = type == LowbitType::Q8_0 ? "q8_0_ggml" : type == LowbitType::Q4_0 ? "q4_0_ggml" : "q4_k";
  const qcast::gguf::TensorData t = qcast::gguf::make_tensor("w", v.data(), {kRows, kCols}, qcast::Format::parse(fmt));
  if (type == LowbitType::Q4_MIN) return qcast::kern::lowbit_q4_min(true, kRows, kCols, t.data.data(), t.data.size());
  LowbitMatrix w;
  w.type = type;
  w.rows = kRows;
  w.cols = kCols;
  w.blocks = t.data;
  w.finish();
  return w;
}

const std::vector<LowbitMatrix>& matrices(LowbitType type) {
  static std::map<LowbitType, std::vector<LowbitMatrix>> cache;
  auto& m = cache[type];
  if (m.empty())
    for (int i = 0; i < kMatrices; ++i) m.push_back(make_matrix(type, 100 + static_cast<unsigned>(i)));
  return m;
}

const std::vector<std::vector<float>>& fp32_matrices() {
  static std::vector<std::vector<float>> m;
  if (m.empty()) {
    for (const auto& w : matrices(LowbitType::Q4_0)) {
      m.emplace_back(static_cast<std::size_t>(kRows * kCols));
      qcast::kern::lowbit_decode(w, m.back().data());
    }
  }
  return m;
}

std::vector<float> activations(std::int64_t T) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(T * kCols));
  for (auto& x : v) x = nd(rng);
  return v;
}

template <class Fn>
double timed(benchmark::State& state, std::int64_t T, Fn fn) {
  double total = 0;
  std::int64_t iters = 0;
  for (auto _ : state) {
    const auto a = std::chrono::steady_clock::now();
    fn(iters);
    const auto b = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(b - a).count();
    state.SetIterationTime(s);
    total += s;
    ++iters;
  }
  const double gmacs = static_cast<double>(iters) * static_cast<double>(T * kRows * kCols) / 1e9 / total;
  state.counters["GMACps"] = gmacs;
  return gmacs;
}

std::map<std::pair<std::int64_t, int>, double>& sgemm_rates() {
  static std::map<std::pair<std::int64_t, int>, double> r;
  return r;
}

void run_sgemm(benchmark::State& state, std::int64_t T, int threads) {
  const auto& ws = fp32_matrices();
  const std::vector<float> x = activations(T);
  std::vector<float> y(static_cast<std::size_t>(T * kRows));
  qcast::blas::set_num_threads(threads);
  sgemm_rates()[{T, threads}] = timed(state, T, [&](std::int64_t i) {
    const float* w = ws[static_cast<std::size_t>(i % kMatrices)].data();
    if (T == 1)  // what the LLaMA runtime's fp32 generation calls
      qcast::blas::sgemv(CblasRowMajor, CblasNoTrans, kRows, kCols, 1.0f, w, kCols, x.data(), 1, 0.0f, y.data(), 1);
    else
      qcast::blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(T), kRows, kCols, 1.0f, x.data(), kCols, w, kCols,
                         0.0f, y.data(), kRows);
  });
  qcast::blas::set_num_threads(1);
}

void run_lowbit(benchmark::State& state, LowbitType type, bool tiles, std::int64_t T, int threads) {
  if (tiles && !qcast::kern::lowbit_tiles_supported()) {
    state.SkipWithError("no AVX-512 VNNI on this CPU: no tiled kernel");
    return;
  }
  std::vector<LowbitMatrix> ws = matrices(type);  // a copy: the ggml-block runs drop the tiles
  if (!tiles)
    for (auto& w : ws) w.tiles.clear();
  const std::vector<float> x = activations(T);
  qcast::kern::Q8Activations xq;
  std::vector<float> y(static_cast<std::size_t>(T * kRows));
  const double g = timed(state, T, [&](std::int64_t i) {
    qcast::kern::quantize_q8_0(x.data(), T, kCols, xq);  // as the LLaMA runtime does, per product
    qcast::kern::lowbit_gemm(ws[static_cast<std::size_t>(i % kMatrices)], xq, y.data(), threads);
  });
  const auto it = sgemm_rates().find({T, threads});
  if (it != sgemm_rates().end()) state.counters["x_sgemm"] = g / it->second;
}

struct Register {
  Register() {
    for (std::int64_t T : {1, 128})
      for (int threads : {1, 2}) {
        const std::string suffix = "/T:" + std::to_string(T) + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(("sgemm/fp32" + suffix).c_str(), run_sgemm, T, threads)->UseManualTime()->MinTime(0.3);
        for (LowbitType type : {LowbitType::Q8_0, LowbitType::Q4_0, LowbitType::Q4_MIN})
          for (bool tiles : {true, false})
            benchmark::RegisterBenchmark((std::string("lowbit/") + qcast::kern::lowbit_name(type) + (tiles ? "/tiles" : "/blocks") + suffix).c_str(),
                                         run_lowbit, type, tiles, T, threads)
                ->UseManualTime()
                ->MinTime(0.3);
      }
  }
} reg;

}  // namespace
