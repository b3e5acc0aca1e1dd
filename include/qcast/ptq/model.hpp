// Model-level post-training quantization (`qcast quantize`): streams calibration data through an ONNX
// graph or a LLaMA model, feeds each weight layer's inputs into the layer-level algorithms of qcast::ptq
// (rtn, search, gptq, rotate+gptq, lowrank, ed, mixed@BITS), quantizes the layers in execution order
// (each against the inputs that the already-quantized prefix produces), and writes / reads the result as
// a packed safetensors file (codes + scales, docs/packed-layout.md) that `qcast eval` loads directly.
//
// Layer layout: every weight layer is handled as W [out, in] (Conv: [M, C*kh*kw] against im2col
// columns; Gemm with transB = 0 and 2-D MatMul weights are transposed), blocks along `in`.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qcast/ptq/layer_cost.hpp"
#include "qcast/nn/graph.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/nn/model.hpp"
#include "qcast/nn/recipe.hpp"
#include "qcast/ptq/common.hpp"

namespace qcast::ptq {

/// PTQ works on the model interface of the nn layer (qcast/nn/model.hpp).
using nn::load_model;
using nn::Model;

/// Calibration data: a dataset spec (mnist:DIR, text:FILE, ... as for `qcast eval`), samples
/// [offset, offset + samples) in file order (images, or stories tokenized with BOS and truncated to
/// min(seq_len, max_tokens)), streamed in batches; deterministic (no shuffling).
struct CalibOptions {
  std::string spec, data_root, tokenizer;
  std::int64_t samples = 256, offset = 0, batch = 64;
  int max_tokens = 256;
};

struct QuantizeOptions {
  /// rtn | search | gptq | ed | rotate+gptq | lowrank | mixed@BITS | mixed@energy=X | mixed@cycles=X, each optionally prefixed with
  /// `quarot+` (LLaMA only: norm folding + residual rotation first, include/qcast/ptq/quarot.hpp) and
  /// followed by "+bias" (model-level bias correction, bias.hpp); "bias" = rtn+bias
  std::string method = "rtn";
  nn::Recipe recipe;           ///< weight formats (global + per-layer globs + skip) and activation / KV formats
  CalibOptions calib;
  int threads = 1;
  int rotate_block = 32;       ///< rotate: Hadamard block size
  std::uint64_t seed = 0;      ///< rotate signs, lowrank SVD
  int rank = 8;                ///< lowrank
  bool act_order = false;      ///< gptq
  /// mixed: candidates besides the recipe's format (qcast quantize --mixed-formats and the sweep use this default)
  std::vector<std::string> mixed_formats = {"int3@fp16/g32", "mxfp4", "mxfp6_e2m3", "mxfp8"};
  HardwareTarget hardware;     ///< mixed@energy= / mixed@cycles=: the accelerator the budget is priced on
  bool progress = true;
  /// Methods that read no calibration inputs (rtn, lowrank) quantize a wave of layer groups, then take the
  /// inputs for the wave's reported errors from the model as it now is (one forward pass per batch), as many
  /// groups per wave as their kept weights and Hessians fit in this many bytes. The result is the same bits
  /// as capturing group by group, which `sequential_capture` forces (tests compare the two).
  double capture_wave_bytes = 1024.0 * 1024.0 * 1024.0;
  bool sequential_capture = false;
};

/// One quantized layer: codes + scales of the main weight in [out, in] layout and what turns them
/// into the weights the layer computes with (rotation, low-rank branch).
struct QuantizedLayer {
  std::string name;
  std::int64_t rows = 0, cols = 0;
  QuantizedWeight q;
  int rotate_block = 0;             ///< 0 = none; else effective W = Q R^T (R = Rotation::make(cols, block, true, seed))
  std::uint64_t rotate_seed = 0;
  std::vector<float> A, B;          ///< low-rank branch (empty = none): effective W = Q + A B
  int rank = 0;
  std::vector<float> bias;          ///< bias correction (+bias): the corrected bias [rows] (empty = unchanged)
  // Report.
  double error = 0, rel_error = 0;  ///< tr(dW H dW^T) with the calibration H of this layer, and / tr(W H W^T)
  double seconds = 0;
};

struct QuantizeResult {
  std::vector<QuantizedLayer> layers;
  nn::Recipe recipe;                ///< the recipe that was applied (mixed: per-layer formats as overrides)
  std::string mixed_json;           ///< mixed: the allocation (Allocation::to_json), else ""
  std::string quarot_json;          ///< quarot+: what was rotated (QuarotInfo::to_json), else ""
  double seconds_calib = 0, seconds_quant = 0, seconds_total = 0;
  std::int64_t calib_samples = 0, calib_rows = 0;
};

/// Quantizes `m` in place (its weights become the effective quantized weights, activation / KV formats
/// of the recipe are attached) and returns the per-layer results.
QuantizeResult quantize_model(Model& m, const QuantizeOptions& opt);

/// The effective weights [rows, cols] of a quantized layer (decoded codes, rotation undone, low-rank
/// branch added): what both quantize_model and load_quantized put into the model, bit for bit.
std::vector<float> effective_weights(const QuantizedLayer& L);

/// Writes the packed safetensors file (atomic). Metadata: quantize.model (absolute model path),
/// quantize.method, quantize.recipe (JSON), quantize.layers (JSON per layer: rotation, rank).
/// quarot+ models also store, as plain fp32 tensors "quarot.<name>", everything the rotation changed
/// that is not a quantized layer (tok_embeddings, the unit norms, unquantized linears), and
/// quantize.quarot (QuarotInfo JSON); load_quantized puts them in place of the base model's.
void write_quantized(const std::string& path, const Model& m, const QuantizeResult& r, const std::string& method);

/// True if `path` is a safetensors file written by write_quantized.
bool is_quantized_model(const std::string& path);

/// What a write_quantized file says of itself (its metadata; no tensor is decoded).
struct QuantizedFileInfo {
  std::string base_model;  ///< the absolute path of the model it was quantized from
  std::string method;      ///< the PTQ method string
  nn::Recipe recipe;       ///< the recipe applied (mixed: the chosen per-layer formats; static ranges)
};
/// Reads that metadata. `model_override` replaces the stored base model path (--base-model). Throws
/// qcast::Error for a file quantize did not write or a base model that does not exist.
QuantizedFileInfo read_quantized_info(const std::string& path, const std::string& model_override = "");

/// Loads the base model named in the file's metadata (or `model_override`), puts the decoded effective
/// weights in place and attaches the recipe's activation / KV formats.
Model load_quantized(const std::string& path, const std::string& model_override = "", std::string* method = nullptr,
                     nn::Recipe* recipe = nullptr);

// The recipe a quantized file stores is written and read by nn::recipe_to_json / nn::parse_recipe.

}  // namespace qcast::ptq
