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
  const auto& s = f.scaling;
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
    std::printf("%-12s %-30s %8s %12s %14s %9s  %s\n", "name", "composition", "bits/el", "elem max", "min subnormal", "range dB", "scaling");
  for (const auto& name : named_formats()) {
    const Format f = Format::parse(name);
    const double mx = f.elem.max_value(), mn = f.elem.min_positive();
    const double db = 20.0 * std::log10(mx / mn);
    if (a.json) {
      arr.push_back({{"name", name}, {"composition", f.expanded()}, {"bits_per_element", f.bits_per_element()},
                     {"element_bits", f.elem.bits}, {"element_max", mx}, {"min_subnormal", mn}, {"dynamic_range_db", db},
                     {"scaling", scaling_desc(f)}});
    } else {
      std::printf("%-12s %-30s %8.4g %12.6g %14.6g %9.2f  %s\n", name.c_str(), f.expanded().c_str(), f.bits_per_element(), mx, mn,
                  db, scaling_desc(f).c_str());
    }
  }
  if (a.json) std::cout << json_text(nlohmann::ordered_json{{"formats", arr}}, 1) << "\n";
  else std::printf("\nAlso: intN/uintN (N=2..16), eXmY[fn|fnuz|fin], pot<N>, cb:v1,v2,..., and ELEM@SCALE/b<N>|g<N>|ch<A>|t<R>x<C>|tensor[/asym][/rule] (docs/formats.md).\n");
}

Registrar reg("formats", [](CLI::App& app) {
  auto args = std::make_shared<FormatsArgs>();
  auto* sub = app.add_subcommand("formats", "list the named number formats: bits per element (with scale overhead), max, min subnormal, range");
  sub->add_flag("--json", args->json, "print JSON");
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
