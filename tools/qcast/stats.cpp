// qcast stats IN -f F [-f G ...]: per-tensor quantization error (MSE, SQNR, max abs error, clipped, flushed).
// Weights of rank > 2 in a safetensors model (conv [M, C, kh, kw]) are viewed as [out, in] = [M, C*kh*kw],
// as eval, quantize and study quantize them, so the formats rank alike in every command; --keep-shape, an
// explicit --axis or a .npy array keep the array as stored.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "common.hpp"
#include "qcast/error.hpp"
#include "qcast/stats.hpp"
#include "qcast/packed.hpp"
#include "qcast/tensor_files.hpp"

namespace qcast::cli {
namespace {

struct StatsArgs {
  std::string in, tensors;
  QuantFlags q;
  std::vector<std::string> formats;
  bool json = false, keep_shape = false;
};

nlohmann::ordered_json to_json(const std::string& name, const Shape& shape, const QuantStats& s) {
  const double sq = s.sqnr_db();
  return {{"tensor", name}, {"shape", shape}, {"count", s.count}, {"mse", s.mse()},
          {"sqnr_db", std::isinf(sq) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(sq)},
          {"max_abs_err", s.max_abs_err}, {"frac_clipped", s.frac_clipped()}, {"frac_flushed", s.frac_flushed()}};
}

// The [out, in] view of a weight (rank > 2 only; vectors and matrices stay as they are).
Shape weight_view(const Shape& s) {
  if (s.size() <= 2) return s;
  const std::int64_t out = s[0], n = shape_numel(s);
  return {out, out ? n / out : 0};
}

void run(const StatsArgs& a) {
  std::vector<Format> formats;
  for (const auto& name : a.formats) formats.push_back(Format::parse(name));
  const QuantOptions opt = a.q.options();
  std::vector<std::pair<std::string, Tensor>> inputs;
  // Model weights (a safetensors file) are seen as eval sees them; a plain .npy array, or an explicit
  // --axis (which names an axis of the stored array), keeps the stored shape.
  const bool npy = is_npy_path(a.in);
  const bool weight_view_on = !a.keep_shape && !npy && a.q.axis == -1;
  if (npy) {
    Tensor t = read_npy(a.in);
    if (t.dtype != DType::F32 && t.dtype != DType::F16) throw Error("'" + a.in + "': expected a float32 or float16 array");
    inputs.emplace_back(a.in, t.to_f32());
  } else {
    // A packed file (qcast encode or quantize output) is seen as its decoded values.
    const SafeTensorsFile st = read_safetensors(a.in);
    const std::vector<NamedTensor> tensors = is_packed(st) ? decode_packed(read_packed(a.in), a.q.threads, a.in) : st.tensors;
    for (auto& nt : tensors)
      if (is_float_tensor(nt.tensor) && name_matches(a.tensors, nt.name)) inputs.emplace_back(nt.name, nt.tensor.to_f32());
    if (inputs.empty()) throw Error("no floating-point tensor of '" + a.in + "' matched '" + a.tensors + "'");
  }
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const Format& f : formats) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    QuantStats total;
    if (!a.json) {
      if (formats.size() > 1) std::printf("%s%s (%.4g bits per element)\n", &f == &formats.front() ? "" : "\n", f.name().c_str(), f.bits_per_element());
      std::printf("%-32s %14s %10s %12s %10s %10s\n", "tensor", "MSE", "SQNR dB", "max |err|", "clipped", "flushed");
    }
    for (auto& [name, t] : inputs) {
      const Shape view = weight_view_on ? weight_view(t.shape) : t.shape;
      QuantStats s;
      try {
        s = quant_stats(f, t.f32(), view, opt);
      } catch (const Error& e) {
        throw Error("tensor '" + name + "': " + e.what());
      }
      total.merge(s);
      if (a.json) {
        auto row = to_json(name, t.shape, s);
        row["view"] = view;
        rows.push_back(row);
      } else {
        std::printf("%-32s %14.6g %10.3f %12.6g %9.4f%% %9.4f%%\n", printable(name).c_str(), s.mse(), s.sqnr_db(), s.max_abs_err,
                    100 * s.frac_clipped(), 100 * s.frac_flushed());
      }
    }
    if (a.json) {
      results.push_back({{"format", f.name()}, {"bits_per_element", f.bits_per_element()}, {"tensors", rows}, {"total", to_json("*", {}, total)}});
    } else if (inputs.size() > 1) {
      std::printf("%-32s %14.6g %10.3f %12.6g %9.4f%% %9.4f%%\n", "(all)", total.mse(), total.sqnr_db(), total.max_abs_err,
                  100 * total.frac_clipped(), 100 * total.frac_flushed());
    }
  }
  // schema 2: one entry of `results` per --format (schema 1 had a single format's keys at the top level).
  if (a.json) std::cout << json_output(nlohmann::ordered_json{{"schema", 2}, {"results", results}}, 1) << "\n";
}

Registrar reg("stats", [](CLI::App& app) {
  auto args = std::make_shared<StatsArgs>();
  auto* sub = app.add_subcommand("stats", "quantization error per tensor: MSE, SQNR (dB), max abs error, fraction clipped / flushed to zero");
  sub->add_option("IN", args->in, ".npy or .safetensors")->required();
  sub->add_option("--tensors", args->tensors, "only tensors whose names match this glob");
  sub->add_flag("--json", args->json, "print JSON");
  sub->add_flag("--keep-shape", args->keep_shape, "quantize a safetensors model's arrays of rank > 2 as stored (blocks along the last axis, kw for a conv) instead of as [out, in] weights (.npy arrays and an explicit --axis always keep the stored shape)");
  add_quant_flags(sub, args->q, true, &args->formats);
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
