#include "kernels/bench_support.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <string>
#include <functional>

#include <malloc.h>

#include "qcast/kernels/thread_pool.hpp"
#include "qcast/error.hpp"
#include "qcast/quantize.hpp"

namespace qcast::kern {

const char* bench_op_name(BenchOp op) {
  switch (op) {
    case BenchOp::FakeQuant: return "fake_quant";
    case BenchOp::Encode: return "encode";
    case BenchOp::Decode: return "decode";
  }
  return "?";
}

BenchOp parse_bench_op(const std::string& s) {
  if (s == "fake_quant" || s == "fake-quant" || s == "cast") return BenchOp::FakeQuant;
  if (s == "encode") return BenchOp::Encode;
  if (s == "decode") return BenchOp::Decode;
  throw Error("unknown benchmark op '" + s + "' (fake_quant, encode, decode)");
}

const std::vector<std::string>& default_bench_formats() {
  static const std::vector<std::string> f = {"mxfp4", "mxfp6_e2m3", "mxfp8", "mxint8", "nvfp4", "int8@fp32/ch0",
                                             "int4@fp32/g32", "nf4", "e4m3", "bf16"};
  return f;
}

BenchBuffer bench_input(std::int64_t n) {
  BenchBuffer buf(n);
  float* x = buf.data();
  std::uint64_t s = 0x9E3779B97F4A7C15ull;
  for (std::int64_t i = 0; i < n; ++i) {
    // Sum of 4 uniforms (Irwin-Hall) ~ Gaussian; a per-row magnitude spread like real weights.
    float acc = 0;
    for (int k = 0; k < 4; ++k) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      acc += static_cast<float>(s >> 40) * (1.0f / 16777216.0f);
    }
    const float row_scale = std::ldexp(1.0f, static_cast<int>((i / 4096) % 7) - 3);
    x[i] = (acc - 2.0f) * row_scale;
  }
  return buf;
}

BenchBuffer::BenchBuffer(std::int64_t n) {
  const std::size_t bytes = static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * sizeof(float);
  try {
    p_ = aligned_floats(n);
  } catch (const std::bad_alloc&) {
    throw Error("out of memory for a " + std::to_string(bytes) + "-byte benchmark buffer");
  }
  std::memset(p_.get(), 0, bytes);  // pre-fault
}

struct BenchCase::Impl {
  Format f;
  BenchOp op;
  const float* in;
  std::int64_t n;
  Shape shape;
  QuantOptions opt;
  std::unique_ptr<BenchBuffer> out;
  Encoded enc;
};

BenchCase::BenchCase(const std::string& format, BenchOp op, const float* in, std::int64_t n, int threads)
    : impl_(new Impl{Format::parse(format), op, in, n, {}, {}, {}, {}}) {
  const std::int64_t cols = n % 4096 == 0 ? 4096 : n;
  impl_->shape = {n / cols, cols};
  impl_->opt.threads = threads;
  if (op != BenchOp::Encode) impl_->out = std::make_unique<BenchBuffer>(n);
  if (op == BenchOp::Decode) impl_->enc = encode(impl_->f, in, impl_->shape, impl_->opt);
}

BenchCase::~BenchCase() { delete impl_; }

void BenchCase::run() {
  Impl& m = *impl_;
  switch (m.op) {
    case BenchOp::FakeQuant: fake_quant(m.f, m.in, m.out->data(), m.shape, m.opt); break;
    case BenchOp::Encode:
      m.enc = Encoded{};  // drop the previous result first, as a consumer would
      m.enc = encode(m.f, m.in, m.shape, m.opt);
      break;
    case BenchOp::Decode: decode(m.enc, m.out->data(), m.opt.threads); break;
  }
}

void bench_keep_allocations() {
  ::mallopt(M_MMAP_THRESHOLD, 1 << 30);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void bench_memcpy(const float* in, float* out, std::int64_t n, int threads) {
  parallel_for(n, threads, [&](std::int64_t b, std::int64_t e) {
    std::memcpy(out + b, in + b, static_cast<std::size_t>(e - b) * sizeof(float));
  }, 1 << 16);
}

double time_best(const std::function<void()>& fn, double min_seconds) {
  using clk = std::chrono::steady_clock;
  double best = 1e30;
  const auto t0 = clk::now();
  for (int k = 0;; ++k) {
    const auto a = clk::now();
    fn();
    const auto b = clk::now();
    best = std::min(best, std::chrono::duration<double>(b - a).count());
    // Written so that a NaN min_seconds ends the loop instead of never comparing true.
    if (k >= 2 && !(std::chrono::duration<double>(b - t0).count() < min_seconds)) break;
  }
  return best;
}

}  // namespace qcast::kern
