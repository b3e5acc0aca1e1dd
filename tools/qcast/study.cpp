// qcast study: the format study — SQNR of every named format (and int8/int4 per-channel / g32 / g128)
// on Gaussian, Laplace and Student-t(3) tensors and on the weights of real models, sorted by bits per element.
#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "command.hpp"
#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/progress.hpp"
#include "qcast/stats.hpp"

namespace qcast::cli {
namespace {

struct StudyArgs {
  std::string models = "../shared/models";
  std::int64_t rows = 256, cols = 1024;
  std::uint64_t seed = 1;
  bool json = false;
  int threads = 1;
};

struct Dataset {
  std::string name;
  std::vector<std::pair<Shape, std::vector<float>>> tensors;
};

Dataset synthetic(const std::string& name, std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::exponential_distribution<double> expo(1.0);
  std::chi_squared_distribution<double> chi3(3.0);
  std::vector<float> v(static_cast<std::size_t>(rows * cols));
  for (auto& x : v) {
    if (name == "gaussian") x = static_cast<float>(normal(rng));
    else if (name == "laplace") x = static_cast<float>(expo(rng) - expo(rng));
    else x = static_cast<float>(normal(rng) / std::sqrt(chi3(rng) / 3.0));
  }
  Dataset d{name, {}};
  d.tensors.emplace_back(Shape{rows, cols}, std::move(v));
  return d;
}

// The weights (tensors of rank >= 2) of a safetensors model, each viewed as [out, in] so that blocks run
// along the reduction dimension (conv [M, C, kh, kw] -> [M, C*kh*kw]).
Dataset model_weights(const std::string& path, const std::string& name) {
  Dataset d{name, {}};
  for (auto& nt : read_safetensors(path).tensors) {
    if (nt.tensor.shape.size() < 2 || (nt.tensor.dtype != DType::F32 && nt.tensor.dtype != DType::F16 && nt.tensor.dtype != DType::BF16)) continue;
    Tensor f = nt.tensor.to_f32();
    const std::int64_t out = f.shape[0], in = f.numel() / std::max<std::int64_t>(1, out);
    d.tensors.emplace_back(Shape{out, in}, std::vector<float>(f.f32(), f.f32() + f.numel()));
  }
  return d;
}

std::vector<std::string> study_formats() {
  std::vector<std::string> v;
  for (auto& n : named_formats()) {
    const Format f = Format::parse(n);
    if (f.elem().is_unsigned() || (f.elem().kind == Element::Kind::Int && f.scaling().kind == ScaleKind::None)) continue;
    v.push_back(n);
  }
  for (const char* n : {"int8@fp32/ch0", "int4@fp32/ch0", "int8@fp16/g32", "int4@fp16/g32", "int8@fp16/g128", "int4@fp16/g128"})
    v.push_back(n);
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return Format::parse(a).bits_per_element() > Format::parse(b).bits_per_element(); });
  return v;
}

// Each of the three synthetic tensors is rows x cols float32 values, allocated up front.
constexpr std::int64_t kMaxStudyValues = std::int64_t(1) << 26;

void run(const StudyArgs& a) {
  if (a.rows * a.cols > kMaxStudyValues)  // both are at most 2^20 (CLI check): the product cannot overflow
    throw Error("--rows " + std::to_string(a.rows) + " x --cols " + std::to_string(a.cols) + " = " + std::to_string(a.rows * a.cols) +
                " values per synthetic tensor, more than the limit of " + std::to_string(kMaxStudyValues) + " (2^26)");
  std::vector<Dataset> data;
  for (const char* n : {"gaussian", "laplace", "student-t3"}) data.push_back(synthetic(n, a.rows, a.cols, a.seed));
  std::vector<std::string> files;
  if (DIR* dir = ::opendir(a.models.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      std::string fn = e->d_name;
      if (has_extension(fn, ".safetensors")) files.push_back(fn);
    }
    ::closedir(dir);
  } else if (!a.json) {
    std::fprintf(stderr, "qcast study: no model folder '%s'; synthetic tensors only\n", a.models.c_str());
  }
  std::sort(files.begin(), files.end());
  for (auto& fn : files) data.push_back(model_weights(a.models + "/" + fn, fn.substr(0, fn.size() - 12)));
  const auto formats = study_formats();
  QuantOptions opt;
  opt.threads = a.threads;
  Progress bar("study", static_cast<std::int64_t>(formats.size() * data.size()), !a.json);
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  std::vector<std::vector<double>> table;
  for (auto& fname : formats) {
    const Format f = Format::parse(fname);
    std::vector<double> row;
    nlohmann::ordered_json sq = nlohmann::ordered_json::object();
    for (auto& d : data) {
      QuantStats total;
      for (auto& [shape, v] : d.tensors) total.merge(quant_stats(f, v.data(), shape, opt));
      row.push_back(total.sqnr_db());
      sq[d.name] = std::isinf(total.sqnr_db()) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(total.sqnr_db());
      bar.advance();
    }
    table.push_back(row);
    rows.push_back({{"format", fname}, {"bits_per_element", f.bits_per_element()}, {"sqnr_db", sq}});
  }
  bar.finish();
  if (a.json) {
    std::cout << json_output(nlohmann::ordered_json{{"results", rows}}, 1) << "\n";
    return;
  }
  std::printf("Format study: SQNR (dB) of quantize-dequantize, higher is better; sorted by bits per element.\n");
  std::printf("Synthetic tensors are %lldx%lld (blocks along the last axis); model weights are viewed as [out, in].\n\n",
              static_cast<long long>(a.rows), static_cast<long long>(a.cols));
  std::printf("%-16s %8s", "format", "bits/el");
  for (auto& d : data) std::printf(" %18.18s", d.name.c_str());
  std::printf("\n");
  for (std::size_t i = 0; i < formats.size(); ++i) {
    std::printf("%-16s %8.4g", formats[i].c_str(), Format::parse(formats[i]).bits_per_element());
    for (double v : table[i]) {
      if (std::isinf(v)) std::printf(" %18s", "lossless");
      else std::printf(" %18.2f", v);
    }
    std::printf("\n");
  }
}

Registrar reg("study", [](CLI::App& app) {
  auto args = std::make_shared<StudyArgs>();
  auto* sub = app.add_subcommand("study", "format study: SQNR of every named format on synthetic distributions and model weights");
  sub->add_option("--models", args->models, "folder of .safetensors models to include (skipped if absent)")->capture_default_str();
  sub->add_option("--rows", args->rows, "rows of each synthetic tensor")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  sub->add_option("--cols", args->cols, "columns of each synthetic tensor")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  add_seed_option(sub, args->seed, "seed of the synthetic tensors")->capture_default_str();
  sub->add_flag("--json", args->json, "print JSON");
  add_threads_flag(sub, args->threads);
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
