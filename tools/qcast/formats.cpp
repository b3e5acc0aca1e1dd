// qcast formats: every named format with its bits per element (including scale overhead) and range.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "qcast/format.hpp"

namespace qcast::cli {
namespace {

struct FormatsArgs {
  bool json = false;
};

std::string scaling_desc(const Format& f) {
  const auto& s = f.scaling();
  switch (s.kind) {
    case ScaleKind::None: return "elementwise";
    case ScaleKind::Tensor: return "per tensor " + s.scale_elem.name;
    case ScaleKind::Channel: return "per channel " + s.scale_elem.name;
    case ScaleKind::Block:
      return "block " + std::to_string(s.block) + " " + s.scale_elem.name + (s.tensor_scale ? " + fp32 tensor" : "");
    case ScaleKind::Tile: return "tile " + std::to_string(s.tile_rows) + "x" + std::to_string(s.tile_cols) + " " + s.scale_elem.name;
  }
  return "";
}

void run(const FormatsArgs& a) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  if (!a.json)
    std::printf("%-17s %-26s %8s %12s %14s %9s %-5s %-6s %s\n", "name", "composition", "bits/el", "elem max", "min subnormal",
                "range dB", "fast", "ggml", "aliases");
  for (const auto& row : format_table()) {
    const Format f = Format::parse(row.name);
    const double mx = f.elem().max_value(), mn = f.elem().min_positive();
    const double db = 20.0 * std::log10(mx / mn);
    std::string aliases;
    for (const auto& al : row.aliases) aliases += (aliases.empty() ? "" : ", ") + al;
    if (a.json) {
      arr.push_back({{"name", row.name}, {"composition", f.expanded()}, {"aliases", row.aliases},
                     {"bits_per_element", f.bits_per_element()}, {"element_bits", f.elem().bits},
                     {"storage_bits", row.storage_bits ? row.storage_bits : f.bits_per_element()}, {"element_max", mx},
                     {"min_subnormal", mn}, {"dynamic_range_db", db}, {"scaling", scaling_desc(f)}, {"fast", row.fast},
                     {"ggml", row.ggml}, {"description", row.description}});
    } else {
      std::printf("%-17s %-26s %8.4g %12.6g %14.6g %9.2f %-5s %-6s %s\n", row.name.c_str(), f.expanded().c_str(),
                  f.bits_per_element(), mx, mn, db, row.fast ? "yes" : "-", row.ggml.empty() ? "-" : row.ggml.c_str(),
                  aliases.c_str());
    }
  }
  if (a.json) std::cout << json_text(nlohmann::ordered_json{{"schema", 2}, {"formats", arr}}, 1) << "\n";
  else std::printf("\nNames are case-insensitive. Also: intN/uintN (N=2..16), eXmY[b<bias>][ieee|fn|fnuz|fin], pot<N>, cb:v1,v2,..., and "
                   "ELEM@SCALE/b<N>|g<N>|ch<A>|t<R>x<C>|tensor[/asym][/floor|ceil|rceil|midmax|amax|mse] (docs/formats.md). "
                   "fast: the SIMD kernels; others take the scalar reference.\n");
}

Registrar reg("formats", [](CLI::App& app) {
  auto args = std::make_shared<FormatsArgs>();
  auto* sub = app.add_subcommand("formats", "list the named number formats: bits per element (with scale overhead), max, min subnormal, range");
  sub->add_flag("--json", args->json, "print JSON ({\"schema\": 2, \"formats\": [...]})");
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
