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
  Value& alloc(std::size_t k, Shape s, bool is_int = false);
  [[noreturn]] void fail(const std::string& msg) const;
};

using OpFn = void (*)(OpCtx&);
/// Returns the implementation of `op` or nullptr.
OpFn find_op(const std::string& op);
std::vector<std::string> op_names();
/// Minimum / maximum number of inputs.
std::pair<int, int> op_arity(const std::string& op);

// Operators implemented outside ops.cpp (ops_rnn.cpp, ops_quant.cpp).
void op_dequantize_linear(OpCtx& c);
void op_rnn(OpCtx& c);
void op_gru(OpCtx& c);
void op_lstm(OpCtx& c);

}  // namespace qcast::nn::detail
