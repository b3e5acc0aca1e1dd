// `qcast cost --model M.onnx --skips keep|remove|shorten`: the skip-connection buffers of a model (qcast/skips.hpp)
// priced on the architecture: (a) the FIFOs of a layer-pipelined dataflow design, against its other on-chip
// memory (weights and line buffers); (b) on a layer-by-layer PE array, whether each held tensor fits in the
// on-chip buffer beside each branch layer's working set, and the DRAM traffic when it spills.
#include "cost_skips.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include "qcast/error.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/sniff.hpp"

namespace qcast::cli {

nlohmann::json skip_report(const std::string& model, hw::SkipMode mode, const hw::Architecture& arch,
                           const std::vector<hw::LayerShape>& layers, const nn::Recipe* recipe, double layers_dram_bytes,
                           const std::vector<Shape>& input_shapes) {
  if (sniff_model_file(model) != FileKind::Onnx)
    throw Error("--skips needs an ONNX model (its graph shows where residual tensors fork and join): " + model);
  const nn::Graph g = nn::load_onnx(model);
  const auto skips = input_shapes.empty() ? hw::find_skips(g, 1, mode) : hw::find_skips(g, input_shapes, mode);
  std::map<std::string, const hw::LayerShape*> by_name;
  for (const auto& l : layers) by_name[l.name] = &l;
  // Element widths as the rest of cost reads the recipe (Precision::for_layer); no recipe: fp32.
  auto bits_of = [&](const std::string& layer, hw::Role role) {
    return recipe ? hw::Precision::for_layer(*recipe, layer).bits(role) : 32.0;
  };
  // (b) the on-chip buffer: the innermost non-implied level inside the backing store.
  const hw::StorageLevel* glb = nullptr;
  for (int i = static_cast<int>(arch.levels.size()) - 2; i >= 0; --i)
    if (!arch.levels[static_cast<std::size_t>(i)].implied) { glb = &arch.levels[static_cast<std::size_t>(i)]; break; }
  const double glb_bits = glb && glb->size_words() > 0
                              ? static_cast<double>(glb->size_words()) * static_cast<double>(glb->datawidth > 0 ? glb->datawidth : 8) *
                                    static_cast<double>(glb->instances)
                              : 0.0;  // 0 = unbounded (or no on-chip level): everything fits
  // (a) the rest of a dataflow design's on-chip memory: every weight, and each window layer's line buffer
  // ((R - 1) input rows of W pixels and C channels, plus R x S for the window itself).
  double weights_bits = 0, lines_bits = 0;
  for (const auto& l : layers) {
    if (!hw::layer_has_macs(l)) continue;
    weights_bits += static_cast<double>(l.M) * static_cast<double>(l.C / std::max<std::int64_t>(1, l.groups)) * static_cast<double>(l.R * l.S) *
                    bits_of(l.name, hw::Role::Weights);
    if (l.R > 1 || l.S > 1)
      lines_bits += static_cast<double>((l.R - 1) * l.W + l.S) * static_cast<double>(l.C) * bits_of(l.name, hw::Role::Inputs);
  }
  nlohmann::json rows = nlohmann::json::array();
  double fifo_bits = 0, held_bits = 0, spill_bytes = 0;
  int spilled = 0;
  for (const auto& s : skips) {
    const double bits = bits_of(s.branch.front(), hw::Role::Inputs);  // the held tensor is the branch's first input
    const double held = static_cast<double>(s.elems) * bits;
    const double fifo = static_cast<double>(s.fifo_elems) * bits;
    double ws = 0;  // the largest working set of a branch layer: input + output + weights
    for (const auto& name : s.branch) {
      auto it = by_name.find(name);
      if (it == by_name.end()) continue;
      const hw::LayerShape& l = *it->second;
      const double in = static_cast<double>(l.N * l.C * l.H * l.W) * bits_of(name, hw::Role::Inputs);
      const double out = static_cast<double>(l.N * l.M * std::max<std::int64_t>(1, l.P) * std::max<std::int64_t>(1, l.Q)) * bits_of(name, hw::Role::Outputs);
      const double w = static_cast<double>(l.M * (l.C / std::max<std::int64_t>(1, l.groups)) * l.R * l.S) * bits_of(name, hw::Role::Weights);
      ws = std::max(ws, in + out + w);
    }
    const bool fits = s.removed || glb_bits == 0 || held + ws <= glb_bits;
    const double spill = fits ? 0.0 : 2.0 * held / 8.0;  // written at the fork, read back at the join
    if (!s.removed) {
      fifo_bits += fifo;
      held_bits += held;
    }
    spill_bytes += spill;
    spilled += fits ? 0 : 1;
    rows.push_back({{"join", s.join}, {"fork", s.fork}, {"branch", s.branch}, {"shortcut", s.shortcut}, {"shape", s.shape},
                    {"removed", s.removed}, {"held_elements", s.elems}, {"bits_per_element", bits},
                    {"held_bytes", s.removed ? 0.0 : held / 8.0}, {"dataflow_latency_pixels", s.latency_pixels},
                    {"dataflow_fifo_elements", s.fifo_elems}, {"dataflow_fifo_bytes", fifo / 8.0},
                    {"pe_array_working_set_bytes", ws / 8.0}, {"pe_array_fits", fits}, {"pe_array_dram_spill_bytes", spill},
                    {"note", s.note}});
  }
  const double onchip = weights_bits + lines_bits + fifo_bits;
  return {{"mode", mode == hw::SkipMode::Keep ? "keep" : mode == hw::SkipMode::Remove ? "remove" : "shorten"},
          {"count", skips.size()},
          {"skips", rows},
          {"dataflow", {{"skip_fifo_bytes", fifo_bits / 8.0}, {"weight_bytes", weights_bits / 8.0}, {"line_buffer_bytes", lines_bits / 8.0},
                        {"skip_fifo_share", onchip > 0 ? fifo_bits / onchip : 0.0}}},
          {"pe_array", {{"buffer", glb ? glb->name : ""}, {"buffer_bytes", glb_bits / 8.0}, {"held_bytes", held_bits / 8.0},
                        {"spilled_skips", spilled}, {"dram_spill_bytes", spill_bytes}, {"layers_dram_bytes", layers_dram_bytes},
                        {"spill_share", layers_dram_bytes + spill_bytes > 0 ? spill_bytes / (layers_dram_bytes + spill_bytes) : 0.0}}}};
}

void print_skip_report(std::ostream& os, const nlohmann::json& r) {
  char line[512];
  os << "== skip connections (--skips " << r["mode"].get<std::string>() << "): " << r["count"].get<std::size_t>() << "\n";
  std::snprintf(line, sizeof line, "   %-34s %-7s %12s %14s %16s %14s\n", "join", "spans", "held KiB", "(a) FIFO KiB", "(b) on chip?",
                "(b) spill KiB");
  os << line;
  for (const auto& s : r["skips"]) {
    const std::string spans = s["removed"].get<bool>() ? "removed" : std::to_string(s["branch"].size()) + " layer" + (s["branch"].size() == 1 ? "" : "s");
    std::snprintf(line, sizeof line, "   %-34s %-7s %12.2f %14.2f %16s %14.2f%s\n", s["join"].get<std::string>().c_str(), spans.c_str(),
                  s["held_bytes"].get<double>() / 1024, s["dataflow_fifo_bytes"].get<double>() / 1024,
                  s["pe_array_fits"].get<bool>() ? "fits" : "spills", s["pe_array_dram_spill_bytes"].get<double>() / 1024,
                  s["note"].get<std::string>().empty() ? "" : ("  (" + s["note"].get<std::string>() + ")").c_str());
    os << line;
  }
  const auto& d = r["dataflow"];
  const auto& p = r["pe_array"];
  std::snprintf(line, sizeof line,
                "   (a) layer-pipelined dataflow: skip FIFOs %.2f KiB of %.2f KiB on chip (weights %.2f, line buffers %.2f): %.1f %%\n",
                d["skip_fifo_bytes"].get<double>() / 1024,
                (d["skip_fifo_bytes"].get<double>() + d["weight_bytes"].get<double>() + d["line_buffer_bytes"].get<double>()) / 1024,
                d["weight_bytes"].get<double>() / 1024, d["line_buffer_bytes"].get<double>() / 1024, 100 * d["skip_fifo_share"].get<double>());
  os << line;
  std::snprintf(line, sizeof line,
                "   (b) layer-by-layer PE array, buffer %s (%.2f KiB): %d skips spill, DRAM +%.2f KiB on the layers' %.2f KiB (%.1f %% of the total)\n",
                p["buffer"].get<std::string>().c_str(), p["buffer_bytes"].get<double>() / 1024, p["spilled_skips"].get<int>(),
                p["dram_spill_bytes"].get<double>() / 1024, p["layers_dram_bytes"].get<double>() / 1024, 100 * p["spill_share"].get<double>());
  os << line;
}

}  // namespace qcast::cli
