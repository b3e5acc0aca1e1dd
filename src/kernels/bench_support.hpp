// Shared by bench/kernels_bench.cpp (Google Benchmark) and `qcast bench`: the benchmark input, the
// operations timed, and memcpy of the same buffer as the yardstick.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/aligned_floats.hpp"
#include "qcast/format.hpp"

namespace qcast::kern {

enum class BenchOp { FakeQuant, Encode, Decode };
const char* bench_op_name(BenchOp op);
BenchOp parse_bench_op(const std::string& s);  // fake_quant | encode | decode

/// The formats of the acceptance list, in table order.
const std::vector<std::string>& default_bench_formats();


/// n floats, 64-byte aligned and pre-faulted (zeros): the output buffer of memcpy and of every case, so
/// both write equally aligned memory (the kernels' non-temporal stores need vector-aligned outputs).
class BenchBuffer {
 public:
  explicit BenchBuffer(std::int64_t n);
  float* data() { return p_.get(); }

 private:
  AlignedFloats p_;
};

/// A deterministic, roughly Gaussian fp32 input of n values (viewed as [n / 4096, 4096]), 64-byte aligned
/// like the tensors of PyTorch's CPU allocator and numpy's large arrays: a vector load then never straddles
/// two cache lines (a 16-byte aligned input costs the DRAM-bound kernels about a quarter more time).
BenchBuffer bench_input(std::int64_t n);

/// A prepared benchmark case: buffers allocated and touched, so run() measures only the operation.
class BenchCase {
 public:
  BenchCase(const std::string& format, BenchOp op, const float* in, std::int64_t n, int threads);
  ~BenchCase();
  BenchCase(const BenchCase&) = delete;
  BenchCase& operator=(const BenchCase&) = delete;
  void run();  // one execution

 private:
  struct Impl;
  Impl* impl_;
};

/// Makes freed large blocks stay in the process (glibc mallopt), so that repeated encodes reuse their
/// output memory instead of faulting fresh pages each time, as a steady-state caller would.
void bench_keep_allocations();

/// memcpy of n floats from in to out (out pre-faulted by the caller).
void bench_memcpy(const float* in, float* out, std::int64_t n, int threads);

/// Seconds per call of fn: the minimum over repetitions within ~min_seconds (at least 3 calls).
double time_best(const std::function<void()>& fn, double min_seconds);

}  // namespace qcast::kern
