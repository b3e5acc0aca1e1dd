// GPTQ of a 4096x4096 layer with 2,048 calibration tokens (int4/g128, the problem of bench/gptq_torch.py).
// Threads: QCAST_BENCH_THREADS (default 2). Run: build/bench/qcast_bench --benchmark_filter=Gptq
// Side by side with PyTorch: bench/gptq_compare.sh
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "qcast/ptq/gptq.hpp"

namespace {

int bench_threads() {
  const char* t = std::getenv("QCAST_BENCH_THREADS");
  return t ? std::atoi(t) : 2;
}

void BM_Gptq(benchmark::State& state) {
  const std::int64_t rows = state.range(0), cols = state.range(1), tokens = state.range(2);
  const bool act_order = state.range(3) != 0;
  std::mt19937 rng(0);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> W(static_cast<std::size_t>(rows * cols)), X(static_cast<std::size_t>(tokens * cols));
  for (auto& w : W) w = 0.02f * nd(rng);
  for (auto& x : X) x = nd(rng);
  const qcast::Format f = qcast::Format::parse("int4/g128");
  qcast::ptq::GptqOptions o;
  o.threads = bench_threads();
  o.act_order = act_order;
  qcast::ptq::set_blas_threads(o.threads);
  for (auto _ : state) {
    qcast::ptq::HessianAccumulator acc(cols);
    acc.add(X.data(), tokens);  // Hessian included, as in gptq_torch.py's total_s
    auto r = qcast::ptq::gptq(f, W.data(), rows, cols, acc.H().data(), o);
    benchmark::DoNotOptimize(r.q.values.data());
    state.counters["setup_s"] = r.seconds_setup;
    state.counters["cholesky_s"] = r.seconds_cholesky;
    state.counters["loop_s"] = r.seconds_loop;
  }
  state.counters["threads"] = o.threads;
}

}  // namespace

BENCHMARK(BM_Gptq)->Args({4096, 4096, 2048, 0})->Args({4096, 4096, 2048, 1})->Args({1024, 1024, 512, 0})
    ->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();
