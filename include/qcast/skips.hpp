// qcast::hw skip connections as buffers (Tailor, Weng et al., arXiv 2301.07247): each residual tensor lives
// from its fork to its join, and the hardware must hold it there. Two kinds of accelerator are modelled:
//  (a) a layer-pipelined dataflow design (one engine per layer, activations streamed pixel by pixel in row-major
//      order through FIFOs, the hls4ml style Tailor measures): the shortcut's FIFO must hold what the fork has
//      produced while the long branch has not yet produced the matching output: the branch's pipeline latency;
//  (b) a PE array that runs the model layer by layer: the whole held tensor must stay in the on-chip buffer
//      across the branch's layers, beside each layer's own working set, or be written to DRAM and read back.
// What-if modes remove every skip or shorten each to span only its branch's last layer (Tailor's SkipRemover /
// SkipShortener), so the savings can be reported next to the original.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qcast/nn/graph.hpp"

namespace qcast::hw {

enum class SkipMode { Keep, Remove, Shorten };
/// "keep" | "remove" | "shorten"; qcast::Error otherwise.
SkipMode parse_skip_mode(const std::string& s);

/// One residual join (an Add of two computed values that share an ancestor).
struct SkipConnection {
  std::string join;                   ///< the Add node
  std::string fork;                   ///< the held value (the latest value both inputs of the Add derive from)
  std::vector<std::string> branch;    ///< compute layers (Conv / Gemm / MatMul with a constant weight) of the long path
  std::vector<std::string> shortcut;  ///< compute layers of the short path (a projection; usually none)
  Shape shape;                        ///< the held value's shape, batch included
  std::int64_t elems = 0;             ///< its elements (whole batch)
  /// (a) dataflow: the branch's latency in pixels of the held value for one image (tokens for [N, T, D]
  /// values), and the FIFO that covers it: min(latency * channels, one image's elements). A branch with a
  /// non-local operator (attention over all tokens, global pooling) needs the whole image.
  std::int64_t latency_pixels = 0;
  std::int64_t fifo_elems = 0;
  bool removed = false;               ///< SkipMode::Remove: nothing is held
  std::string note;                   ///< e.g. why a skip could not be shortened
};

/// The residual joins of `g` at `batch`, in graph order, as `mode` leaves them: Keep as the graph has them;
/// Remove: the same list, each marked removed (no buffer, no traffic); Shorten: each fork moved to the input of
/// its branch's last compute layer when that value has the join's shape (else kept, with a note).
std::vector<SkipConnection> find_skips(const nn::Graph& g, std::int64_t batch, SkipMode mode);
/// The same at given shapes of the graph's inputs (in Graph::run's order; nn::layer_info's overload).
std::vector<SkipConnection> find_skips(const nn::Graph& g, const std::vector<Shape>& input_shapes, SkipMode mode);

}  // namespace qcast::hw
