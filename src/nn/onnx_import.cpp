// ONNX ModelProto -> nn::Graph.
#include "qcast/nn/onnx.hpp"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <set>

#include "qcast/error.hpp"
#include "qcast/file.hpp"

namespace qcast::nn {

namespace {

template <class T>
void copy_raw(const std::string& raw, std::size_t n, std::vector<T>& out, const std::string& what) {
  if (raw.size() != n * sizeof(T)) throw Error(what + ": raw_data has " + std::to_string(raw.size()) + " bytes, expected " + std::to_string(n * sizeof(T)));
  out.resize(n);
  if (n) std::memcpy(out.data(), raw.data(), raw.size());
}

Value tensor_value(const onnx::TensorProto& t, const std::string& where) {
  const std::string what = where + ": tensor '" + t.name() + "'";
  if (t.data_location() == onnx::TensorProto::EXTERNAL || t.external_data_size() > 0)
    throw Error(what + " uses external data, which is not supported");
  Shape s;
  for (auto d : t.dims()) {
    if (d < 0) throw Error(what + " has a negative dimension");
    s.push_back(d);
  }
  std::int64_t n;
  try { n = shape_numel(s); } catch (const Error& e) { throw Error(what + ": " + e.what()); }
  if (n > (std::int64_t(1) << 34)) throw Error(what + " is too large");
  const std::size_t un = static_cast<std::size_t>(n);
  const bool raw = t.has_raw_data();
  if (t.data_type() == 21 || t.data_type() == 22) {  // UINT4 / INT4 (ONNX 1.16): two codes per byte, low nibble first
    const std::size_t bytes = raw ? t.raw_data().size() : static_cast<std::size_t>(t.int32_data_size());
    if (bytes != (un + 1) / 2) throw Error(what + ": stored 4-bit data (" + std::to_string(bytes) + " bytes) does not match shape " + shape_str(s));
    Value v = Value::ints(s);
    for (std::size_t k = 0; k < un; ++k) {
      const unsigned byte = raw ? static_cast<std::uint8_t>(t.raw_data()[k / 2]) : static_cast<unsigned>(t.int32_data(static_cast<int>(k / 2))) & 0xFFu;
      const int nib = static_cast<int>((byte >> (4 * (k % 2))) & 0xFu);
      (*v.i)[k] = t.data_type() == 22 && nib >= 8 ? nib - 16 : nib;
    }
    return v;
  }
  // Validate the stored size before allocating anything.
  {
    std::size_t es = 0;
    int count = 0;
    switch (t.data_type()) {
      case onnx::TensorProto::FLOAT: es = 4; count = t.float_data_size(); break;
      case onnx::TensorProto::DOUBLE: es = 8; count = t.double_data_size(); break;
      case onnx::TensorProto::INT64: es = 8; count = t.int64_data_size(); break;
      case onnx::TensorProto::INT32: es = 4; count = t.int32_data_size(); break;
      case onnx::TensorProto::UINT64: es = 8; count = t.uint64_data_size(); break;
      case onnx::TensorProto::UINT32: es = 4; count = t.uint64_data_size(); break;
      case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16: case onnx::TensorProto::INT16:
      case onnx::TensorProto::UINT16: es = 2; count = t.int32_data_size(); break;
      case onnx::TensorProto::INT8: case onnx::TensorProto::UINT8: case onnx::TensorProto::BOOL: es = 1; count = t.int32_data_size(); break;
      default: throw Error(what + " has unsupported data type " + std::to_string(t.data_type()));
    }
    if (raw ? t.raw_data().size() / es != un || t.raw_data().size() % es != 0 : static_cast<std::size_t>(count) != un)
      throw Error(what + ": stored data (" + (raw ? std::to_string(t.raw_data().size()) + " bytes" : std::to_string(count) + " values") +
                  ") does not match shape " + shape_str(s));
  }
  auto check = [&](int count) {
    if (static_cast<std::size_t>(count) != un)
      throw Error(what + " has " + std::to_string(count) + " values, expected " + std::to_string(un) + " for shape " + shape_str(s));
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT: {
      Value v = Value::floats(s);
      if (raw) { std::vector<float> tmp; copy_raw(t.raw_data(), un, tmp, what); v.f->assign(tmp.begin(), tmp.end()); }
      else { check(t.float_data_size()); std::copy(t.float_data().begin(), t.float_data().end(), v.f->begin()); }
      return v;
    }
    case onnx::TensorProto::DOUBLE: {
      Value v = Value::floats(s);
      if (raw) { std::vector<double> tmp; copy_raw(t.raw_data(), un, tmp, what); for (std::size_t k = 0; k < un; ++k) (*v.f)[k] = static_cast<float>(tmp[k]); }
      else { check(t.double_data_size()); for (std::size_t k = 0; k < un; ++k) (*v.f)[k] = static_cast<float>(t.double_data(static_cast<int>(k))); }
      return v;
    }
    case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16: {
      std::vector<std::uint16_t> h;
      if (raw) copy_raw(t.raw_data(), un, h, what);
      else { check(t.int32_data_size()); for (auto x : t.int32_data()) h.push_back(static_cast<std::uint16_t>(x)); }
      Tensor tt;
      tt.dtype = t.data_type() == onnx::TensorProto::FLOAT16 ? DType::F16 : DType::BF16;
      tt.shape = s;
      tt.data = h.data();
      return Value::from_tensor(tt);
    }
    case onnx::TensorProto::INT64: {
      Value v = Value::ints(s);
      if (raw) { std::vector<std::int64_t> tmp; copy_raw(t.raw_data(), un, tmp, what); *v.i = std::move(tmp); }
      else { check(t.int64_data_size()); std::copy(t.int64_data().begin(), t.int64_data().end(), v.i->begin()); }
      return v;
    }
    case onnx::TensorProto::UINT32: case onnx::TensorProto::UINT64: {
      // Held as int64: values from 2^63 on do not fit and are an error.
      Value v = Value::ints(s);
      const bool u64 = t.data_type() == onnx::TensorProto::UINT64;
      for (std::size_t k = 0; k < un; ++k) {
        std::uint64_t x;
        if (raw) {
          if (u64) std::memcpy(&x, t.raw_data().data() + 8 * k, 8);
          else { std::uint32_t y; std::memcpy(&y, t.raw_data().data() + 4 * k, 4); x = y; }
        } else {
          x = t.uint64_data(static_cast<int>(k));
        }
        if (x > static_cast<std::uint64_t>(INT64_MAX)) throw Error(what + ": value " + std::to_string(x) + " does not fit in int64");
        (*v.i)[k] = static_cast<std::int64_t>(x);
      }
      return v;
    }
    case onnx::TensorProto::INT32: case onnx::TensorProto::INT16: case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8: case onnx::TensorProto::UINT16: case onnx::TensorProto::BOOL: {
      Value v = Value::ints(s);
      if (raw) {
        const auto dt = t.data_type();
        const std::size_t es = dt == onnx::TensorProto::INT32 ? 4 : (dt == onnx::TensorProto::INT16 || dt == onnx::TensorProto::UINT16) ? 2 : 1;
        if (t.raw_data().size() != un * es) throw Error(what + ": raw_data has the wrong size");
        const char* p = t.raw_data().data();
        for (std::size_t k = 0; k < un; ++k) {
          std::int64_t x = 0;
          switch (dt) {
            case onnx::TensorProto::INT32: { std::int32_t y; std::memcpy(&y, p + 4 * k, 4); x = y; break; }
            case onnx::TensorProto::INT16: { std::int16_t y; std::memcpy(&y, p + 2 * k, 2); x = y; break; }
            case onnx::TensorProto::UINT16: { std::uint16_t y; std::memcpy(&y, p + 2 * k, 2); x = y; break; }
            case onnx::TensorProto::INT8: x = static_cast<std::int8_t>(p[k]); break;
            default: x = static_cast<std::uint8_t>(p[k]); break;
          }
          (*v.i)[k] = x;
        }
      } else {
        check(t.int32_data_size());
        std::copy(t.int32_data().begin(), t.int32_data().end(), v.i->begin());
      }
      return v;
    }
    default:
      throw Error(what + " has unsupported data type " + std::to_string(t.data_type()));
  }
}

Attr convert_attr(const onnx::AttributeProto& a, const std::string& where) {
  Attr r;
  switch (a.type()) {
    case onnx::AttributeProto::INT: r.kind = Attr::Kind::Int; r.i = a.i(); r.f = static_cast<float>(a.i()); break;
    case onnx::AttributeProto::FLOAT: r.kind = Attr::Kind::Float; r.f = a.f(); r.i = static_cast<std::int64_t>(a.f()); break;
    case onnx::AttributeProto::STRING: r.kind = Attr::Kind::String; r.s = a.s(); break;
    case onnx::AttributeProto::INTS: r.kind = Attr::Kind::Ints; r.ints.assign(a.ints().begin(), a.ints().end()); break;
    case onnx::AttributeProto::FLOATS: r.kind = Attr::Kind::Floats; r.floats.assign(a.floats().begin(), a.floats().end()); break;
    case onnx::AttributeProto::TENSOR: r.kind = Attr::Kind::Tensor; r.t = std::make_shared<Value>(tensor_value(a.t(), where)); break;
    default: break;  // graphs, sparse tensors...: ignored (ops using them are unsupported anyway)
  }
  return r;
}

// QuantizeLinear saturates to its output type: the zero point's element type, else opset 21's output_dtype,
// else uint8. Recorded as the node attribute kQuantizeRange {lo, hi}; other output types are an error.
void record_quantize_range(const onnx::NodeProto& np, Node& n, const std::map<std::string, int>& elem_type, const std::string& what) {
  int type = onnx::TensorProto::UINT8;
  if (np.input_size() > 2 && !np.input(2).empty()) {
    auto it = elem_type.find(np.input(2));
    if (it == elem_type.end())
      throw Error(what + ": node '" + n.name + "' (QuantizeLinear): the zero point '" + np.input(2) +
                  "' is computed at run time; its element type (the output type) must be known from an initializer, input or Constant");
    type = it->second;
  } else if (auto od = n.attrs.find("output_dtype"); od != n.attrs.end() && od->second.i != 0) {
    type = static_cast<int>(od->second.i);
  }
  std::int64_t lo, hi;
  switch (type) {
    case onnx::TensorProto::INT8: lo = -128; hi = 127; break;
    case onnx::TensorProto::UINT8: lo = 0; hi = 255; break;
    case onnx::TensorProto::INT16: lo = -32768; hi = 32767; break;
    case onnx::TensorProto::UINT16: lo = 0; hi = 65535; break;
    case 22: lo = -8; hi = 7; break;  // INT4
    case 21: lo = 0; hi = 15; break;  // UINT4
    default:
      throw Error(what + ": node '" + n.name + "' (QuantizeLinear): output type " + std::to_string(type) +
                  " is not supported (integer outputs only: int8, uint8, int16, uint16, int4, uint4)");
  }
  Attr r;
  r.kind = Attr::Kind::Ints;
  r.ints = {lo, hi};
  n.attrs[kQuantizeRange] = r;
}

}  // namespace

Graph parse_onnx(const std::uint8_t* data, std::size_t size, const std::string& what) {
  return parse_onnx(data, size, what, {});
}

Value parse_onnx_tensor(const std::uint8_t* data, std::size_t size, const std::string& what) {
  onnx::TensorProto t;
  if (size > static_cast<std::size_t>(INT32_MAX) || !t.ParseFromArray(data, static_cast<int>(size)))
    throw Error(what + ": not a valid ONNX TensorProto (protobuf parsing failed)");
  return tensor_value(t, what);
}

namespace {

// Control-flow bodies nest (If inside a Loop inside an If ...); deeper than this is refused.
constexpr int kMaxSubgraphDepth = 16;

struct Imported {
  Graph graph;
  std::vector<std::string> outer;  // a subgraph's outer-scope names, in the order of its trailing inputs
};

// One GraphProto -> Graph. A subgraph (depth > 0) may read values of the enclosing graphs by name: every
// name it uses that it does not define becomes one of its trailing inputs (Imported::outer), which the
// control-flow node then lists among its own inputs, so the executor's order, last-use and folding see
// them as ordinary inputs.
// Initializers (and bound inputs) of the enclosing graphs, by name: a body that reads one holds it as its own
// constant (shared storage, no copy), so a weight of a Gemm inside a branch is a constant there and
// recipes quantize it like any other.
using Scope = std::map<std::string, const Value*>;

Imported import_graph(const onnx::GraphProto& gp, const std::string& what, int opset, const std::map<std::string, Value>& bound_inputs,
                      int depth, const std::string& prefix, const Scope& scope) {
  if (depth > kMaxSubgraphDepth) throw Error(what + ": control-flow subgraphs nested more than " + std::to_string(kMaxSubgraphDepth) + " deep");
  Imported r;
  Graph& g = r.graph;
  g.source = what;
  g.opset = opset;
  g.subgraph = depth > 0;
  std::set<std::string> defined;
  for (const auto& init : gp.initializer()) {
    if (init.name().empty()) throw Error(what + ": an initializer has no name");
    g.constants[g.value_id(init.name())] = tensor_value(init, what);
    defined.insert(init.name());
  }
  std::size_t nbound = 0;
  for (const auto& in : gp.input()) {
    const int id = g.value_id(in.name());
    defined.insert(in.name());
    if (auto b = bound_inputs.find(in.name()); b != bound_inputs.end()) {
      g.constants[id] = b->second;
      ++nbound;
      continue;
    }
    if (g.constants.count(id) && !g.subgraph) continue;  // old exporters list initializers as inputs
    GraphInput gi{id, {}};
    if (g.subgraph) {  // bound as it comes at run time (Loop's iteration number, condition, carried values)
      g.inputs.push_back(gi);
      continue;
    }
    if (!in.type().has_tensor_type()) throw Error(what + ": input '" + in.name() + "' is not a tensor");
    const auto& tt = in.type().tensor_type();
    if (!tt.has_shape()) throw Error(what + ": input '" + in.name() + "' has no shape");
    // A dim_param (or no value) is symbolic (-1), bound from the fed input; 0 is a real (empty) size.
    for (const auto& d : tt.shape().dim()) gi.shape.push_back(d.has_dim_value() && d.dim_value() >= 0 ? d.dim_value() : -1);
    g.inputs.push_back(gi);
  }
  if (nbound != bound_inputs.size()) throw Error(what + ": a bound input is not an input of the graph");
  // Element types of the constants and inputs by name: QuantizeLinear's output type is its zero point's
  // (integer values here are int64, so the importer records the saturation range on the node).
  std::map<std::string, int> elem_type;
  for (const auto& init : gp.initializer()) elem_type[init.name()] = init.data_type();
  for (const auto& in : gp.input())
    if (in.type().has_tensor_type() && !elem_type.count(in.name())) elem_type[in.name()] = in.type().tensor_type().elem_type();
  for (const auto& np : gp.node()) {  // and the outputs whose type a node fixes: Constant, Cast, CastLike, DynamicQuantizeLinear
    if (np.op_type() == "DynamicQuantizeLinear" && np.output_size() == 3) {
      elem_type[np.output(0)] = onnx::TensorProto::UINT8;
      elem_type[np.output(2)] = onnx::TensorProto::UINT8;
    }
    if (np.output_size() != 1) continue;
    for (const auto& a : np.attribute()) {
      if (np.op_type() == "Constant" && a.name() == "value" && a.has_t()) elem_type[np.output(0)] = a.t().data_type();
      if (np.op_type() == "Cast" && a.name() == "to") elem_type[np.output(0)] = static_cast<int>(a.i());
    }
    if (np.op_type() == "CastLike" && np.input_size() == 2)
      if (auto it = elem_type.find(np.input(1)); it != elem_type.end()) elem_type[np.output(0)] = it->second;
  }
  std::vector<std::string> outer;  // names read before (or without) being defined here, first use first
  std::set<std::string> outer_set;
  Scope inner = scope;  // what this graph's bodies may take as constants: the enclosing graphs' and its own
  for (const auto& [id, v] : g.constants) inner[g.value_names[id]] = &v;
  auto use = [&](const std::string& name) {
    if (!defined.count(name) && !outer_set.count(name)) {
      if (auto c = scope.find(name); c != scope.end()) {  // an enclosing graph's constant
        g.constants[g.value_id(name)] = *c->second;
        defined.insert(name);
      } else {
        outer_set.insert(name);
        outer.push_back(name);
      }
    }
    return g.value_id(name);
  };
  int unnamed = 0;
  for (const auto& np : gp.node()) {
    Node n;
    n.op = np.op_type();
    n.name = np.name().empty() ? prefix + n.op + "_" + std::to_string(unnamed++) : np.name();
    if (!np.domain().empty() && np.domain() != "ai.onnx")
      throw Error(what + ": unsupported operator '" + np.domain() + "." + n.op + "' (node '" + n.name + "')");
    for (const auto& i : np.input()) n.inputs.push_back(i.empty() ? -1 : use(i));
    while (!n.inputs.empty() && n.inputs.back() < 0) n.inputs.pop_back();
    int last_named = -1;  // an omitted output before a named one keeps its place (LSTM's Y in ["", "Y_h"])
    for (int k = 0; k < np.output_size(); ++k) if (!np.output(k).empty()) last_named = k;
    for (int k = 0; k <= last_named; ++k) {
      const std::string& o = np.output(k);
      if (o.empty()) { n.outputs.push_back(g.value_id("\x01omitted:" + n.name + ":" + std::to_string(k))); continue; }
      if (!defined.insert(o).second) throw Error(what + ": value '" + o + "' is produced twice");
      if (outer_set.count(o)) throw Error(what + ": value '" + o + "' is used before the node that produces it ('" + n.name + "')");
      n.outputs.push_back(g.value_id(o));
    }
    // Subgraph attributes: each body is imported on its own; the outer names of all of them, in one
    // order, become the node's trailing inputs and every body's trailing inputs.
    std::vector<std::pair<std::string, Imported>> bodies;
    for (const auto& a : np.attribute()) {
      if (a.type() == onnx::AttributeProto::GRAPH) {
        bodies.emplace_back(a.name(), import_graph(a.g(), what, opset, {}, depth + 1, n.name + "/" + a.name() + "/", inner));
        continue;
      }
      if (a.type() == onnx::AttributeProto::GRAPHS) throw Error(what + ": node '" + n.name + "' has a list of graphs as attribute '" + a.name() + "' (not supported)");
      n.attrs[a.name()] = convert_attr(a, what + ": node '" + n.name + "'");
    }
    if (!bodies.empty()) {
      std::vector<std::string> names;
      std::set<std::string> seen;
      for (auto& [_, b] : bodies)
        for (auto& o : b.outer)
          if (seen.insert(o).second) names.push_back(o);
      Attr begin;
      begin.kind = Attr::Kind::Int;
      begin.i = static_cast<std::int64_t>(np.input_size());
      n.attrs[kOuterBegin] = begin;
      while (static_cast<int>(n.inputs.size()) < np.input_size()) n.inputs.push_back(-1);  // keep the operator's own inputs in place
      for (auto& o : names) n.inputs.push_back(use(o));
      for (auto& [attr_name, b] : bodies) {
        // The body's trailing inputs: the node's outer names, in the node's order (a body that does not
        // read one of them has an unused input).
        std::set<int> own;
        for (const auto& o : b.outer) own.insert(b.graph.value_id(o));
        std::vector<GraphInput> formal;
        for (const auto& in : b.graph.inputs)
          if (!own.count(in.id)) formal.push_back(in);
        b.graph.inputs = std::move(formal);
        for (const auto& o : names) b.graph.inputs.push_back(GraphInput{b.graph.value_id(o), {}});
        b.graph.finalize();
        Attr at;
        at.kind = Attr::Kind::Graph;
        at.g = std::make_shared<const Graph>(std::move(b.graph));
        n.attrs[attr_name] = std::move(at);
      }
    }
    if (n.op == "QuantizeLinear") record_quantize_range(np, n, elem_type, what);
    g.nodes.push_back(std::move(n));
  }
  for (const auto& o : gp.output()) g.outputs.push_back(use(o.name()));
  if (g.outputs.empty()) throw Error(what + (depth ? ": a subgraph" : ": the graph") + " has no outputs");
  if (g.subgraph) {
    for (const auto& o : outer) g.inputs.push_back(GraphInput{g.value_id(o), {}});
    r.outer = std::move(outer);
  }
  return r;
}

}  // namespace

Graph parse_onnx(const std::uint8_t* data, std::size_t size, const std::string& what,
                 const std::map<std::string, Value>& bound_inputs) {
  onnx::ModelProto m;
  if (size > static_cast<std::size_t>(INT32_MAX) || !m.ParseFromArray(data, static_cast<int>(size)))
    throw Error(what + ": not a valid ONNX model (protobuf parsing failed; truncated or not an .onnx file?)");
  if (!m.has_graph()) throw Error(what + ": the ONNX model has no graph");
  int opset = 13;
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = static_cast<int>(o.version());
  Imported r = import_graph(m.graph(), what, opset, bound_inputs, 0, "", {});
  r.graph.finalize();
  return std::move(r.graph);
}

Graph load_onnx(const std::string& path) {
  MappedFile f(path);
  return parse_onnx(f.data(), f.size(), path);
}

}  // namespace qcast::nn
