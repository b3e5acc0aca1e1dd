// qcast bench [--format F ...] [--op OP ...] [--size 64M] [--threads N] [--json]: throughput of the
// quantization kernels in GB/s of fp32 input, with memcpy of the same buffer measured in the same run.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "kernels/bench_support.hpp"
#include "kernels/simd.hpp"
#include "qcast/error.hpp"

namespace qcast::cli {
namespace {

struct BenchArgs {
  std::vector<std::string> formats, ops;
  std::string size = "64M";
  int threads = 1;
  double min_time = 0.3;
  bool json = false;
};

std::int64_t parse_size(const std::string& s) {
  if (s.empty()) throw Error("empty --size");
  std::size_t pos = 0;
  double v;
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    throw Error("bad --size '" + s + "' (e.g. 1M, 64M, 1G)");
  }
  std::string unit = s.substr(pos);
  double mult = 1;
  if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (!unit.empty() && unit != "B") throw Error("bad --size unit in '" + s + "' (K, M, G)");
  if (!std::isfinite(v) || v < 0 || v * mult > 64.0 * 1024 * 1024 * 1024)
    throw Error("--size '" + s + "' must be a finite size between 16K and 64G");
  const auto bytes = static_cast<std::int64_t>(v * mult);
  if (bytes < 4096 * 4) throw Error("--size must be at least 16K");
  return bytes;
}

void run(const BenchArgs& a) {
  const std::int64_t bytes = parse_size(a.size);
  const std::int64_t n = bytes / 4 / 4096 * 4096;  // whole rows of 4096 values
  std::vector<std::string> formats = a.formats.empty() ? kern::default_bench_formats() : a.formats;
  for (const auto& f : formats) (void)Format::parse(f);  // validate before the long part
  std::vector<kern::BenchOp> ops;
  if (a.ops.empty()) ops = {kern::BenchOp::FakeQuant, kern::BenchOp::Encode, kern::BenchOp::Decode};
  for (const auto& o : a.ops) ops.push_back(kern::parse_bench_op(o));
  kern::bench_keep_allocations();
  kern::BenchBuffer in = kern::bench_input(n);
  qcast::kern::BenchBuffer out(n);
  const double gb = static_cast<double>(n) * 4 / 1e9;
  auto memcpy_gbps = [&] {
    return gb / kern::time_best([&] { kern::bench_memcpy(in.data(), out.data(), n, a.threads); }, a.min_time);
  };
  double mc = memcpy_gbps();
  struct Row {
    std::string format, op;
    double gbps;
  };
  std::vector<Row> rows;
  for (const auto& f : formats)
    for (auto op : ops) {
      kern::BenchCase c(f, op, in.data(), n, a.threads);
      rows.push_back({f, kern::bench_op_name(op), gb / kern::time_best([&] { c.run(); }, a.min_time)});
    }
  mc = std::max(mc, memcpy_gbps());  // the better of two memcpy runs (before and after)
  if (a.json) {
    nlohmann::ordered_json j;
    j["memcpy_gbps"] = mc;
    j["size_bytes"] = n * 4;
    j["target"] = kern::current_target();
    j["results"] = nlohmann::ordered_json::array();
    for (const auto& r : rows)
      j["results"].push_back({{"format", r.format}, {"op", r.op}, {"threads", a.threads}, {"gbps", r.gbps}, {"ratio_to_memcpy", r.gbps / mc}});
    std::cout << json_output(j, 2) << "\n";
    return;
  }
  std::printf("input %.1f MiB fp32, %d thread(s), SIMD target %s; GB/s of fp32 input (best of repeats)\n",
              static_cast<double>(n) * 4 / 1048576.0, a.threads, kern::current_target().c_str());
  std::printf("%-22s %-11s %8s %10s\n", "format", "op", "GB/s", "x memcpy");
  std::printf("%-22s %-11s %8.2f %10.2f\n", "memcpy", "-", mc, 1.0);
  for (const auto& r : rows) std::printf("%-22s %-11s %8.2f %10.2f\n", r.format.c_str(), r.op.c_str(), r.gbps, r.gbps / mc);
}

Registrar reg("bench", [](CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* sub = app.add_subcommand("bench", "measure quantize / encode / decode throughput against memcpy of the same buffer");
  sub->add_option("--format,-f", args->formats, "formats to time (repeatable; default: the MX / NVFP4 / int / nf4 / e4m3 / bf16 set)");
  sub->add_option("--op", args->ops, "fake_quant, encode, decode (repeatable; default: all three)");
  sub->add_option("--size", args->size, "fp32 input size (K, M, G suffixes)")->capture_default_str();
  sub->add_option("--min-time", args->min_time, "seconds spent per case (the best repeat is reported)")->check(finite_range(0, 3600))->capture_default_str();
  sub->add_flag("--json", args->json, "print {\"memcpy_gbps\", \"results\": [{format, op, threads, gbps, ratio_to_memcpy}]}");
  add_threads_flag(sub, args->threads);
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
