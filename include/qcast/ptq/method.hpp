// The PTQ methods of `qcast quantize`, one table: each row a per-layer method with what it needs from
// calibration and how it runs; a method string (`[quarot+]METHOD[+bias]`, `bias`, `mixed@BITS`) is
// parsed once, before any model is read.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/nn/llama.hpp"
#include "qcast/ptq/common.hpp"
#include "qcast/ptq/ed.hpp"

namespace qcast::ptq {

/// What a layer method needs from the calibration pass over its inputs.
enum MethodNeeds : unsigned {
  kNeedsNothing = 0,
  kNeedsHessian = 1,      ///< H = sum x x^T of the layer's inputs (gptq, rotate+gptq, mixed)
  kNeedsInputStats = 2,   ///< per-input second moments (search)
  kNeedsFloatInputs = 4,  ///< the float model's inputs beside the quantized prefix's (ed)
};

/// One layer to quantize, with what calibration gathered for it.
struct LayerJob {
  Format format;
  const float* W = nullptr;  ///< [rows, cols], full precision
  std::int64_t rows = 0, cols = 0;
  const std::vector<float>* H = nullptr;       ///< kNeedsHessian
  const InputStats* stats = nullptr;           ///< kNeedsInputStats
  const EdAccumulator* ed = nullptr;           ///< kNeedsFloatInputs
  int threads = 1;
  int rotate_block = 32;     ///< rotate+gptq: wanted Hadamard block (the largest power of two <= it dividing cols)
  std::uint64_t seed = 0;    ///< rotations, low-rank SVD
  int rank = 8;              ///< lowrank
  bool act_order = false;    ///< gptq
  /// The blocks W was read from (a GGUF's quantized tensor), or null: rtn to that same type keeps them.
  const nn::StoredBlocks* stored = nullptr;
};

/// What a layer method returns: codes + scales and what turns them into the layer's weights.
struct LayerQuant {
  QuantizedWeight q;
  int rotate_block = 0;
  std::uint64_t rotate_seed = 0;
  std::vector<float> A, B;
  int rank = 0;
};

struct MethodInfo {
  std::string name;     ///< as written in --method
  unsigned needs = 0;   ///< MethodNeeds bits
  std::string summary;  ///< one line for --help and errors
  std::function<LayerQuant(const LayerJob&)> run;
};

/// The per-layer methods, one row each (rtn, search, gptq, rotate+gptq, lowrank, ed, mixed).
const std::vector<MethodInfo>& methods();

/// A --method string parsed once.
struct Method {
  std::string text;           ///< as given
  const MethodInfo* info = nullptr;  ///< the per-layer method
  bool quarot = false;        ///< quarot+: fold norms and rotate a LLaMA residual stream first
  bool bias = false;          ///< +bias: model-level bias correction
  /// mixed: what the budget counts. mixed@BITS: bits per weight; mixed@energy=X / mixed@cycles=X: the
  /// predicted energy or latency of the quantized layers on an accelerator (QuantizeOptions::arch).
  enum class Budget { Bits, Energy, Cycles };
  Budget budget = Budget::Bits;
  double mixed_bits = 0;      ///< mixed@BITS: the budget in bits per weight
  /// mixed@energy= / @cycles=: the budget in pJ or cycles, or (mixed_fraction) a fraction of the fp32 model's.
  double mixed_budget = 0;
  bool mixed_fraction = false;
  const std::string& name() const { return info->name; }
  bool needs(MethodNeeds n) const { return (info->needs & n) != 0; }
};

/// Parses `[quarot+]METHOD[+bias]`, `bias` (= rtn+bias) or `mixed@BITS`; qcast::Error listing the
/// methods for anything else.
Method parse_method(const std::string& text);

/// "rtn, search, gptq, ..." with the modifiers, for messages and --help.
std::string method_list();

}  // namespace qcast::ptq
