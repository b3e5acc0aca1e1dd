// Google Benchmark cases for the quantization kernels: fake-quant / encode / decode of each format over
// 1 MiB (cache-resident) and 64 MiB (DRAM) fp32 inputs, on 1 and 2 threads. Reported: bytes_per_second
// of fp32 input, and x_memcpy = that rate over memcpy of the same buffer, measured in this process.
//   build/bench/qcast_bench --benchmark_filter='64MiB'
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/bench_support.hpp"

namespace {

using qcast::kern::BenchOp;

qcast::kern::BenchBuffer& input(std::int64_t n) {
  static std::map<std::int64_t, std::unique_ptr<qcast::kern::BenchBuffer>> cache;
  auto& p = cache[n];
  if (!p) p = std::make_unique<qcast::kern::BenchBuffer>(qcast::kern::bench_input(n));
  return *p;
}

// memcpy GB/s of an n-float buffer on `threads` threads, measured once per process.
double memcpy_gbps(std::int64_t n, int threads) {
  static std::map<std::pair<std::int64_t, int>, double> cache;
  auto it = cache.find({n, threads});
  if (it != cache.end()) return it->second;
  auto& in = input(n);
  qcast::kern::BenchBuffer out(n);
  const double t = qcast::kern::time_best([&] { qcast::kern::bench_memcpy(in.data(), out.data(), n, threads); }, 0.3);
  const double g = static_cast<double>(n) * 4 / 1e9 / t;
  cache[{n, threads}] = g;
  return g;
}

template <class Fn>
void timed_loop(benchmark::State& state, std::int64_t n, int threads, Fn fn) {
  double total = 0;
  std::int64_t iters = 0;
  for (auto _ : state) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    const auto b = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(b - a).count();
    state.SetIterationTime(s);
    total += s;
    ++iters;
  }
  state.SetBytesProcessed(iters * n * 4);
  const double gbps = static_cast<double>(iters) * static_cast<double>(n) * 4 / 1e9 / total;
  state.counters["GBps"] = gbps;
  state.counters["x_memcpy"] = gbps / memcpy_gbps(n, threads);
}

void BM_memcpy(benchmark::State& state, std::int64_t n, int threads) {
  auto& in = input(n);
  qcast::kern::BenchBuffer out(n);
  timed_loop(state, n, threads, [&] { qcast::kern::bench_memcpy(in.data(), out.data(), n, threads); });
}

void BM_kernel(benchmark::State& state, std::string format, BenchOp op, std::int64_t n, int threads) {
  auto& in = input(n);
  qcast::kern::BenchCase c(format, op, in.data(), n, threads);
  timed_loop(state, n, threads, [&] { c.run(); });
}

struct Register {
  Register() {
    qcast::kern::bench_keep_allocations();
    const std::vector<std::pair<std::string, std::int64_t>> sizes = {{"1MiB", (1 << 20) / 4}, {"64MiB", (64 << 20) / 4}};
    for (const auto& [sname, n] : sizes)
      for (int threads : {1, 2}) {
        const std::string suffix = "/" + sname + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(("memcpy" + suffix).c_str(), BM_memcpy, n, threads)->UseManualTime()->MinTime(0.2);
        for (const auto& f : qcast::kern::default_bench_formats())
          for (BenchOp op : {BenchOp::FakeQuant, BenchOp::Encode, BenchOp::Decode})
            benchmark::RegisterBenchmark((std::string(qcast::kern::bench_op_name(op)) + "/" + f + suffix).c_str(), BM_kernel, f, op, n, threads)
                ->UseManualTime()
                ->MinTime(0.2);
      }
  }
} reg;

}  // namespace
