// qcast::hw::npu — a spatial NPU template after MLIR-AIR (arXiv 2510.14871): an AIE-style array of cores,
// each with a small local memory (L1), one shared memory tile (L2) per column, and DRAM (L3) behind the
// shim DMAs. A kernel runs on a *herd* of cores; tiles are double-buffered so that the DMAs of the next
// tile overlap the compute of this one.
//
// The model predicts the cycles of a tiling (matmul; LLaMA attention as MLIR-AIR's fused FlashAttention
// lays it out) as the slowest of three overlapped pipelines (the cores, the L2->L1 streams, the L3 traffic)
// plus what does not overlap (first fill, last drain, a fixed launch cost), and reports the compute
// efficiency MACs / (peak MACs per cycle x cores x cycles). The searches enumerate every legal tiling and
// rank them. docs/cost.md ("A spatial NPU") states every assumption and compares the predictions with
// MLIR-AIR's published measurements.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qcast::hw::npu {

/// What one element type costs on the array.
struct ElementType {
  std::string name;             ///< bf16, int8, int16, ...
  int bytes = 2;                ///< bytes per element in memory
  std::int64_t macs_per_cycle = 0;  ///< peak MACs per cycle of one core's matrix unit
  /// Fraction of that peak the matmul micro-kernel's inner loop reaches (register blocking, operand loads,
  /// loop overhead), as measured for a stand-alone kernel call.
  double kernel_efficiency = 1;
  int acc_bytes = 4;            ///< bytes per accumulator element kept in L1 between kernel calls
  /// The matrix unit's native shape r x s x t (aie::mmul<r, s, t>); the micro-kernels block it 2 x 2, so
  /// tile_m and tile_n are multiples of 2r and 2t, tile_k of s.
  int mmul_r = 4, mmul_s = 8, mmul_t = 4;
  /// Fraction of the peak that a fused attention kernel (S = Q K^T, online softmax, O += P V) reaches per
  /// MAC of its two products, the softmax's vector work included (it grows with the MACs at a fixed head
  /// dimension).
  double attention_efficiency = 1;
};

/// An AIE-style device (docs/cost.md lists the sources of the built-in numbers).
struct Device {
  std::string name;
  int columns = 4, rows = 4;        ///< compute cores: columns x rows
  std::int64_t l1_bytes = 65536;    ///< data memory per core usable for tiles (stack etc. excluded)
  std::int64_t l2_bytes = 524288;   ///< per memory tile, one per column
  double clock_ghz = 1.0;
  double stream_bytes_per_cycle = 4;  ///< one DMA channel / stream (32-bit streams)
  int core_in_channels = 2, core_out_channels = 2;
  double l1_load_bytes_per_cycle = 64, l1_store_bytes_per_cycle = 32;  ///< core <-> its L1 (vector loads / stores)
  double l3_gbps = 32;              ///< sustained DRAM bandwidth the shim DMAs reach, GB/s (reads and writes)
  double launch_us = 0;             ///< fixed cost of one launch (host dispatch, instruction stream), microseconds
  double kernel_call_cycles = 0;    ///< fixed cost of one micro-kernel call (locks, loop set-up)
  double attention_iteration_cycles = 0;  ///< fixed cost of one attention launch iteration (Q load, cascade merge, O drain)
  double attention_launch_us = 0;  ///< fixed cost of one fused-attention launch, microseconds
  std::vector<ElementType> types;

  const ElementType& type(const std::string& name) const;  ///< throws qcast::Error naming the known types
  std::int64_t cores() const { return static_cast<std::int64_t>(columns) * rows; }
  /// Peak MACs per cycle of the whole array for `type`.
  double peak_macs_per_cycle(const std::string& type) const;

  /// Parses a device YAML (`npu: {name, columns, rows, ..., types: {bf16: {...}}}`; docs/cost.md).
  static Device from_yaml_text(const std::string& text, const std::string& source = "<npu>");
  static Device from_yaml_file(const std::string& path);
  /// A built-in device: "npu1" (Ryzen AI Phoenix, AIE-ML, 4x4) or "npu2" (Strix, AIE2P, 8x4).
  static Device builtin(const std::string& name);
  /// The YAML text of a built-in device (what `qcast npu --print-device` writes), for editing.
  static std::string builtin_yaml(const std::string& name);
  static std::vector<std::string> builtin_names();
};

/// How the model's time splits (cycles unless named otherwise).
struct Prediction {
  bool valid = false;
  std::string reason;             ///< why not valid (capacity, herd larger than the array, divisibility)
  double cycles = 0;              ///< total, launch cost included
  double seconds = 0;
  double macs = 0;                ///< useful MACs of the problem
  double efficiency = 0;          ///< macs / (peak MACs per cycle of the whole array x cycles)
  double gflops = 0;              ///< 2 x macs / seconds / 1e9
  double core_cycles = 0;         ///< what the busiest core computes, over the whole run
  double stream_cycles = 0;       ///< L2 -> L1 input streams of one core, over the whole run
  double l3_cycles = 0;           ///< L3 traffic at the device's bandwidth
  double overhead_cycles = 0;     ///< launch, first fill, last drain: what does not overlap
  double l3_bytes = 0;
  std::int64_t l1_bytes_used = 0; ///< per core, double buffers included
  std::int64_t l2_bytes_used = 0; ///< per memory tile
  std::string bound;              ///< "compute", "L2->L1 streams" or "L3"
};

/// C[M,N] = A[M,K] B[K,N] with inputs of element type `type`, accumulated at the type's accumulator width
/// and written as `out_bytes` per element (4: fp32 out, as the accumulator).
struct Matmul {
  std::int64_t M = 0, K = 0, N = 0;
  std::string type = "bf16";
  int out_bytes = 4;
};

/// MLIR-AIR's matmul tiling: a herd of herd_m x herd_n cores computes an output block of
/// (herd_m tile_m) x (herd_n tile_n); A / B blocks of depth tile_k_l2 pass through L2, and each core
/// multiplies tile_m x tile_k_l1 by tile_k_l1 x tile_n tiles from its L1.
struct MatmulTiling {
  int herd_m = 4, herd_n = 4;
  std::int64_t tile_m = 64, tile_k_l2 = 256, tile_k_l1 = 32, tile_n = 64;
  std::string text() const;  ///< "herd 8x4, tiles m64 kL2 256 kL1 32 n128"
};

Prediction predict_matmul(const Device& d, const Matmul& mm, const MatmulTiling& t);

/// Attention of one layer (LLaMA multi-head / grouped-query), heads-first.
struct Attention {
  std::int64_t lq = 0, lk = 0, heads = 0, kv_heads = 0, dk = 0, dv = 0;
  bool causal = false;
  std::string type = "bf16";
};

/// MLIR-AIR's fused FlashAttention layout: a launch iteration takes `heads_per_unroll` heads x `lqp` query
/// rows onto heads_per_unroll x q_tiles columns by `cascade` rows of cores; each core keeps tile_q =
/// lqp / q_tiles query rows and walks its 1/cascade share of the keys in chunks of lkp, and the cascade
/// merges the partial softmax states down each column. dv > lkp is split into dv / lkp passes.
struct AttentionTiling {
  int heads_per_unroll = 2, q_tiles = 4, cascade = 4;
  std::int64_t lqp = 256, lkp = 64;
  std::string text() const;
};

Prediction predict_attention(const Device& d, const Attention& a, const AttentionTiling& t);

/// Every legal tiling, best (fewest cycles) first; within 0.1 % a matmul tiling with a deeper tile_k_l2 first,
/// else enumeration order, so the ranking is deterministic. `fixed_herd`: only herds of exactly that shape (0 = any).
struct MatmulChoice {
  MatmulTiling tiling;
  Prediction prediction;
};
std::vector<MatmulChoice> search_matmul(const Device& d, const Matmul& mm, int fixed_herd_m = 0, int fixed_herd_n = 0);

struct AttentionChoice {
  AttentionTiling tiling;
  Prediction prediction;
};
std::vector<AttentionChoice> search_attention(const Device& d, const Attention& a);

/// One piece of a model's work on the NPU: a matmul (a linear layer at `seq` tokens, or a convolution as
/// its im2col product, `repeat` times for its groups) or a layer's attention.
struct LayerWork {
  std::string name;
  bool attention = false;
  Matmul matmul;
  Attention attn;
  std::int64_t repeat = 1;
};
/// The work of a model file (LLaMA: llama2.c / HF / GGUF, each linear layer at `seq` tokens and each
/// transformer layer's causal attention over `seq`; ONNX: its Conv / Gemm / MatMul layers at batch 1, or at
/// `input_shapes`) in `type`, layers named as in recipes, `inspect` and `cost --model`.
std::vector<LayerWork> model_work(const std::string& path, std::int64_t seq, const std::string& type,
                                  const std::vector<std::vector<std::int64_t>>& input_shapes = {});

}  // namespace qcast::hw::npu
