// The skip-connection report of `qcast cost --skips` (tools/qcast/cost_skips.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "qcast/hw.hpp"
#include "qcast/nn/recipe.hpp"
#include "qcast/skips.hpp"

namespace qcast::cli {

/// The skips of an ONNX `model` (batch 1, or at `input_shapes` when given) as `mode` leaves them, priced on `arch`: per skip the held tensor, the
/// dataflow FIFO and whether the PE array's on-chip buffer holds it; totals against the dataflow design's other
/// on-chip memory and the layers' DRAM traffic (`layers_dram_bytes`, from the mapped layers). Element widths come
/// from `recipe` (null: fp32). qcast::Error for a model that is not ONNX.
nlohmann::json skip_report(const std::string& model, hw::SkipMode mode, const hw::Architecture& arch,
                           const std::vector<hw::LayerShape>& layers, const nn::Recipe* recipe, double layers_dram_bytes,
                           const std::vector<Shape>& input_shapes = {});
void print_skip_report(std::ostream& os, const nlohmann::json& report);

}  // namespace qcast::cli
