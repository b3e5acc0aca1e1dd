// qcast::sweep — the decision loop: every (model x formats x method x architecture) point of a spec is
// quantized (qcast::ptq), evaluated against the model's fp32 baseline (qcast::nn evaluate), and costed on
// the accelerator (qcast::hw mapper, one search per distinct layer shape, formats, arch and objective);
// results go to a SQLite store (resumable) and the Pareto fronts of metric vs energy are marked.
// The spec format is documented in docs/sweep.md.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qcast/mapper.hpp"

namespace qcast::sweep {

struct CalibSpec {
  std::string data;              ///< dataset spec; empty = the model's eval data
  std::int64_t samples = 64, offset = 0;
  int tokens = 256;
  bool has_offset = false;       ///< offset given (else: the model's eval limit, so calibration and eval do not overlap)
};

struct ModelSpec {
  std::string model, data, tokenizer, name;  ///< name: label in tables (default: the file name)
  std::int64_t limit = 0;                    ///< eval samples / stories (0 = all)
  std::int64_t batch = 256;
  CalibSpec calib;                           ///< the spec's calib, overridden per model
};

struct FormatSpec {
  std::string weights, acts, kv;  ///< "" = fp32
};

struct ArchSpec {
  std::string arch, ert, constraints, name;
  std::string table = "horowitz";  ///< built-in energy table when no ERT
};

struct MapperSpec {
  std::int64_t samples = 2000;
  int refine = 200;
  std::uint64_t seed = 1;
};

struct Spec {
  std::vector<ModelSpec> models;
  std::vector<FormatSpec> formats;
  std::vector<std::string> methods;
  std::vector<ArchSpec> archs;
  std::string objective = "energy";
  MapperSpec mapper;
  std::string text;  ///< the spec as given (stored with the results)
  /// Parses the YAML spec; unknown keys, missing required ones and bad values are qcast::Error naming `source`.
  static Spec parse(const std::string& text, const std::string& source = "<spec>");
  static Spec from_file(const std::string& path);
};

/// One point of the grid. Formats without weights take method "none" once (nothing to quantize).
struct Point {
  int index = 0;  ///< position in the grid (models x formats x methods x archs, in spec order)
  int model = 0, format = 0, arch = 0;
  std::string method;
  /// Identity of the point in the store: model|weights|acts|kv|method|arch (names as in the spec).
  std::string key(const Spec& s) const;
};
std::vector<Point> expand(const Spec& s);

/// Display name of a format ("" -> "fp32").
inline std::string fmt_name(const std::string& f) { return f.empty() ? "fp32" : f; }

struct LevelEnergy {
  std::string name;
  double energy_pj = 0;
};

struct LayerCost {
  std::string name, shape, weights, acts;
  std::int64_t computes = 0, cycles = 0;
  double energy_pj = 0;
  std::vector<LevelEnergy> levels;  ///< outermost first, the MAC array last
};

struct PointResult {
  bool ok = false;
  std::string error;
  std::string metric;           ///< "accuracy" (classifiers) or "perplexity" (language models)
  double value = 0, baseline = 0, delta = 0, ci95 = 0;
  std::int64_t samples = 0;
  double bits_per_weight = 0, model_bytes = 0;
  double energy_pj = 0, edp = 0;
  std::int64_t cycles = 0, computes = 0;
  std::vector<LevelEnergy> levels;
  std::vector<LayerCost> layers;
  std::vector<std::pair<std::string, double>> layer_errors;  ///< quantized layers: relative output error (qcast quantize's rel_error)
  std::string command;          ///< qcast commands that reproduce the point
  // Wall times (not part of the result's identity).
  double quant_s = 0, eval_s = 0, cost_s = 0, total_s = 0;
  /// The result without the wall times as JSON text (deterministic), and back.
  std::string to_json() const;
  static PointResult from_json(const std::string& text);
};

/// Runs points: loads models, computes and caches each model's fp32 baseline, quantizes, evaluates and
/// costs. Every failure of a point (missing model, invalid format, ...) is caught into its result.
class Runner {
 public:
  Runner(const Spec& spec, int threads);
  ~Runner();
  PointResult run(const Point& p);
  /// Mapper searches run / served from the cache so far.
  std::int64_t mapper_runs() const;
  std::int64_t mapper_hits() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Indices (into `results`, ascending) of the points on the front of metric vs energy within their
/// (model, architecture) group: no other ok point of the group has a better or equal metric and lower or
/// equal energy with one of them strictly better. Accuracy is maximised, perplexity minimised.
std::vector<int> pareto(const Spec& spec, const std::vector<Point>& points, const std::vector<PointResult>& results);

/// The results database (SQLite): tables meta (spec, qcast version), points (one row per finished point,
/// committed as it finishes) and layers (per point and layer). Opening an existing file needs `resume`
/// and the same spec text.
class Store {
 public:
  Store(const std::string& path, const Spec& spec, bool resume);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  /// Results already stored, by point key.
  std::map<std::string, PointResult> finished() const;
  void put(const Spec& spec, const Point& p, const PointResult& r);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The self-contained HTML report (docs/sweep.md): Pareto fronts of metric vs energy, model bytes and
/// cycles per model and architecture, per-layer energy by memory level for the points on the energy
/// front, a layer x format heatmap of the quantized layers' relative output error, and a table of the
/// front with the commands that reproduce each point. Vega, Vega-Lite and vega-embed are inlined from
/// `js_dir` (a node_modules folder holding vega/build/vega.min.js, vega-lite/build/vega-lite.min.js and
/// vega-embed/build/vega-embed.min.js); qcast::Error naming the missing file otherwise.
std::string report_html(const Spec& spec, const std::vector<Point>& points, const std::vector<PointResult>& results,
                        const std::string& js_dir);

std::string version();

}  // namespace qcast::sweep
