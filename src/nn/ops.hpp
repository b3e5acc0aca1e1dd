// Internal: the operator table of the graph executor.
#pragma once
#include <string>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/nn/graph.hpp"

namespace qcast::nn::detail {

/// Everything an operator sees. In shape-only mode inputs may lack data (non-constant values); an
/// operator then only sets output shapes (and kinds).
struct OpCtx {
  const Node& node;
  std::vector<const Value*> in;  // nullptr for omitted optional inputs
  std::vector<Value> out;
  bool shape_only = false;
  int threads = 1;
  int opset = 13;
  /// Constant folding: bytes that outputs may still allocate (alloc() fails beyond it), and the text
  /// that names the limit in that message. nullptr outside folding.
  std::int64_t* fold_budget = nullptr;
  const std::string* fold_limit = nullptr;

  std::size_t n_in() const { return in.size(); }
  bool present(std::size_t k) const { return k < in.size() && in[k] != nullptr; }
  const Value& x(std::size_t k) const;
  /// An input whose data is needed even for shape inference (shape / axes / pads operands).
  const Value& data(std::size_t k) const;
  std::vector<std::int64_t> ints_of(std::size_t k) const;
  /// Element k of `v` as an integer: int64 as stored; a float one must be finite and within 2^62 (fail).
  std::int64_t int_at(const Value& v, std::int64_t k) const;
  Value& alloc(std::size_t k, Shape s, bool is_int = false);
  [[noreturn]] void fail(const std::string& msg) const;
};

using OpFn = void (*)(OpCtx&);
/// Returns the implementation of `op` or nullptr.
OpFn find_op(const std::string& op);
std::vector<std::string> op_names();
/// Minimum / maximum number of inputs.
std::pair<int, int> op_arity(const std::string& op);

/// A Conv node's geometry in its 2-D form (a 1-D convolution is one over [N, C, 1, L]).
struct ConvGeometry {
  std::int64_t N = 1, C = 1, H = 1, W = 1, M = 1, G = 1, kh = 1, kw = 1;
  std::int64_t sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0, P = 1, Q = 1;
  bool one_d = false;
};
/// Checks a Conv node's inputs (shapes, kinds, bias) and attributes as the operator does, and returns
/// its geometry; c.fail on a mismatch. Needs only the inputs' shapes.
ConvGeometry conv_geometry(const OpCtx& c);

/// A MaxPool / AveragePool node's window (in ConvGeometry's fields; M = G = C), checked as the operator
/// checks it.
struct PoolGeometry {
  ConvGeometry g;
  bool ceil = false;         // ceil_mode
  bool include_pad = false;  // count_include_pad (AveragePool)
};
PoolGeometry pool_geometry(const OpCtx& c, bool is_max);

/// Row-major element strides of a tensor of shape `s`.
std::vector<std::int64_t> strides_of(const Shape& s);

/// The input `x` as an operator reads it: fake-quantized along `axis` into `buf` when the node has an
/// activation format (node.quant.act), else x's own data.
const float* maybe_quant_act(OpCtx& c, const Value& x, int axis, std::vector<float>& buf);

// Operators implemented outside ops.cpp (ops_rnn.cpp, ops_quant.cpp).
void op_dequantize_linear(OpCtx& c);
void op_quantize_linear(OpCtx& c);
void op_dynamic_quantize_linear(OpCtx& c);
void op_rnn(OpCtx& c);
void op_gru(OpCtx& c);
void op_lstm(OpCtx& c);
void op_gather_nd(OpCtx& c);   // ops_index.cpp
void op_scatter_nd(OpCtx& c);
void op_one_hot(OpCtx& c);
void op_einsum(OpCtx& c);
void op_if(OpCtx& c);          // ops_control.cpp
void op_loop(OpCtx& c);
void op_scan(OpCtx& c);

/// Runs a control-flow body (graph.cpp): `bound` are its inputs in order (formal, then outer values);
/// shape_only as in shape inference. Returns its outputs.
std::vector<Value> run_subgraph(const Graph& sub, const std::vector<const Value*>& bound, bool shape_only, int threads);
void op_non_zero(OpCtx& c);
void op_scatter_elements(OpCtx& c);

}  // namespace qcast::nn::detail
