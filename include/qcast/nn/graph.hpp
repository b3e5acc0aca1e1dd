// The model runtime's graph IR: typed values, operator nodes, shape inference, constant folding and
// an executor. Convolutions run through oneDNN when it is installed (src/nn/conv_fast.hpp: blocked
// layouts, Relu / residual Add fused), small ones and everything else on qcast's operators: OpenBLAS
// sgemm (convolution = im2col + sgemm, or a direct kernel), threaded over the batch. Values are float32 or int64 (shape arithmetic as exported by PyTorch); float32 is what flows
// between the heavy operators.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/kernels/thread_pool.hpp"
#include "qcast/quantize.hpp"
#include "qcast/nn/act_quant.hpp"
#include "qcast/tensor.hpp"

namespace qcast::nn {

/// The executor's cache of prepared oneDNN convolutions (internal: src/nn/conv_fast.hpp).
struct ConvCache;
std::shared_ptr<ConvCache> new_conv_cache();

/// Float storage that resize() leaves unwritten: operators write every output element, so large
/// activations are not zero-filled first.
using FloatBuf = std::vector<float, DefaultInitAllocator<float>>;

/// A runtime value: a float32 or int64 tensor with shared (copy-on-write by convention) storage.
/// In shape-only mode (shape inference) `has_data()` is false.
struct Value {
  Shape shape;
  bool is_int = false;
  std::shared_ptr<FloatBuf> f;
  std::shared_ptr<std::vector<std::int64_t>> i;

  bool has_data() const { return is_int ? static_cast<bool>(i) : static_cast<bool>(f); }
  std::int64_t numel() const { return shape_numel(shape); }
  const float* fp() const { return f->data(); }
  float* mfp() { return f->data(); }
  const std::int64_t* ip() const { return i->data(); }

  static Value floats(Shape s, float fill = 0.0f);
  static Value ints(Shape s, std::int64_t fill = 0);
  static Value from_tensor(const Tensor& t);  // float types -> f32, integer types -> i64
  /// Reads element k as a double (either kind); qcast::Error if k is out of range (e.g. an empty
  /// constant where an operator expects a scalar).
  double at(std::int64_t k) const {
    if (!has_data() || k < 0 || static_cast<std::size_t>(k) >= (is_int ? i->size() : f->size())) throw Error("element " + std::to_string(k) + " of a tensor of shape " + shape_str(shape) + " requested");
    return is_int ? static_cast<double>((*i)[static_cast<std::size_t>(k)]) : (*f)[static_cast<std::size_t>(k)];
  }
  Tensor to_tensor() const;  // float32 (ints converted)
};

class Graph;

struct Attr {
  enum class Kind { None, Int, Float, String, Ints, Floats, Tensor, Graph };
  Kind kind = Kind::None;
  std::int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<std::int64_t> ints;
  std::vector<float> floats;
  std::shared_ptr<Value> t;
  std::shared_ptr<const Graph> g;  // Kind::Graph: a control-flow body (If's branches, Loop's body)
};

/// Control flow (If, Loop): the node's inputs from this index on are the enclosing graph's values that its
/// subgraphs read (ONNX's outer-scope names), in the order of the subgraphs' trailing inputs. The importer
/// sets it (attribute kOuterBegin); before it come the operator's own inputs.
inline constexpr const char* kOuterBegin = "\x01qcast.outer_begin";

/// Quantization attached to a node by a recipe (see recipe.hpp): formats for the weight (input 1 of
/// Conv / Gemm / MatMul) and for the activation (input 0, dynamic or static). Empty optional = full precision.
struct NodeQuant {
  std::optional<Format> weight;
  std::optional<ActQuant> act;
};

struct Node {
  std::string name;
  std::string op;
  std::vector<int> inputs;   // value ids; -1 = omitted optional input
  std::vector<int> outputs;  // value ids
  std::map<std::string, Attr> attrs;
  NodeQuant quant;

  bool has(const std::string& a) const { return attrs.count(a) != 0; }
  std::int64_t get_i(const std::string& a, std::int64_t def) const;
  float get_f(const std::string& a, float def) const;
  std::string get_s(const std::string& a, const std::string& def) const;
  std::vector<std::int64_t> get_ints(const std::string& a, std::vector<std::int64_t> def = {}) const;
};

struct GraphInput {
  int id;
  Shape shape;  // -1 for a symbolic dimension (e.g. batch)
};

/// A computation graph in topological order.
class Graph {
 public:
  std::vector<std::string> value_names;           // by id
  std::map<int, Value> constants;                 // initializers and folded values
  std::vector<Node> nodes;
  std::vector<GraphInput> inputs;
  std::vector<int> outputs;
  std::string source;                             // file name, for messages
  int opset = 13;                                 // default-domain opset version
  /// A control-flow body: its inputs are its own formal inputs (none for If's branches; Loop's iteration
  /// number, condition and carried values) followed by the enclosing graph's values it reads. They are
  /// bound as they come (run_subgraph), so their shapes are not checked and finalize infers no shapes.
  bool subgraph = false;
  std::map<int, Value> fp32_weights;              // originals of weights replaced by quantize_weights
  /// The executor's prepared oneDNN convolutions (src/nn/conv_fast.hpp), shared by copies of the graph;
  /// keyed by the weight buffers they were made from, so re-quantized weights never meet stale ones.
  std::shared_ptr<ConvCache> conv_cache = new_conv_cache();

  int value_id(const std::string& name);          // creates on first use
  int find_value(const std::string& name) const;  // -1 if absent
  std::unordered_map<std::string, int> value_index;  // name -> id, kept by value_id (loading stays linear in the node count)
  bool is_const(int id) const { return constants.count(id) != 0; }

  /// Checks operators, input arities and that every used value is produced before use (throws
  /// qcast::Error naming the node); evaluates every node whose inputs are all constant and removes it.
  void finalize();
  /// Shapes of every value for a given input shape (symbolic dims replaced by `batch`).
  std::vector<Shape> infer_shapes(std::int64_t batch = 1) const;
  /// Shapes of every value for the actual shapes of the fed inputs (in Graph::run's order): every
  /// symbolic dimension is bound from the input that has it. qcast::Error if a shape does not fit.
  std::vector<Shape> infer_shapes(const std::vector<Shape>& input_shapes) const;
  /// Runs the graph. `feeds` are the graph inputs in order; returns the graph outputs in order.
  std::vector<Value> run(const std::vector<Value>& feeds, int threads = 1) const;
  /// Replaces quantizable weights by their fake-quantized values according to node.quant.weight
  /// (once, before running). Idempotent per call of apply_recipe.
  void quantize_weights(int threads = 1);
};

/// Conv nodes through oneDNN (kernels/dnnl.hpp) when it is installed: on unless QCAST_DNNL=0 is in the
/// environment. Off, every Conv runs on qcast's own operators (for comparisons and benchmarks).
/// Convolutions of fewer than `min_macs` multiply-accumulates (a whole batch) stay on qcast's operators,
/// which are faster there. Results differ from the plain operators' in the last bits (summation order);
/// they are the same for any thread count.
void set_fast_convs(bool on, std::int64_t min_macs = std::int64_t(1) << 20);
/// How many nodes (Conv, and MaxPool / AveragePool of a blocked tensor) have run through oneDNN in this
/// process (tests check that the path was taken).
std::int64_t fast_conv_runs();

/// True if `op` is implemented by the executor.
bool op_supported(const std::string& op);
/// Names of all supported operators (sorted).
std::vector<std::string> supported_ops();

/// Per-layer information for `qcast inspect` and cost models (Conv / Gemm / MatMul layers, plus a
/// line per other node).
struct LayerInfo {
  std::string name, op;
  std::vector<Shape> in_shapes, out_shapes;
  std::int64_t params = 0;        // elements of constant inputs (weights + biases)
  std::int64_t weight_elems = 0;  // elements of the quantizable weight
  std::int64_t macs = 0;          // multiply-accumulates for one input batch
  // Conv / Gemm problem (Timeloop-style): N batch, C in-channels, M out-channels, P x Q output,
  // R x S kernel, H x W input; Gemm/MatMul: P = Q = R = S = H = W = 1, C = K, M = N_out.
  bool is_compute = false;
  std::int64_t N = 1, C = 1, M = 1, P = 1, Q = 1, R = 1, S = 1, H = 1, W = 1, groups = 1;
  std::vector<std::int64_t> stride{1, 1}, dilation{1, 1};
};
std::vector<LayerInfo> layer_info(const Graph& g, std::int64_t batch = 1);
/// The same for given shapes of the graph's inputs (in Graph::run's order), e.g. a detector's image size
/// where the model leaves height and width symbolic (batch alone would make them 1).
std::vector<LayerInfo> layer_info(const Graph& g, const std::vector<Shape>& input_shapes);

/// Largest tensor (in elements) an operator may create; larger results are a qcast::Error. Default
/// 2^32; fuzzers lower it.
void set_max_tensor_elements(std::int64_t n);
std::int64_t max_tensor_elements();

/// Total bytes constant folding (Graph::finalize) may create for a model whose initializers take
/// `initializer_bytes`: the environment's QCAST_FOLD_LIMIT_MB (MiB) if set, else 256 MiB plus twice the
/// initializers. `text` names the limit and how to raise it, for messages.
struct FoldLimit {
  std::int64_t bytes = 0;
  std::string text;
};
FoldLimit fold_limit(std::int64_t initializer_bytes);

/// The operators' parallel loops run on qcast's one thread pool.
using kern::parallel_for;

}  // namespace qcast::nn
