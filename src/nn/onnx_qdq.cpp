// Quantized ONNX out (QDQ): see include/qcast/nn/onnx_qdq.hpp.
#include "qcast/nn/onnx_qdq.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "qcast/error.hpp"
#include "qcast/file.hpp"

namespace qcast::nn {

namespace {

// TensorProto data types of ONNX 1.16 (INT4 / UINT4), newer than Debian's libonnx 1.12 headers.
constexpr int kUint4 = 21, kInt4 = 22;

bool is_reduce_with_axes_attr(const std::string& op) {  // axes moved from attribute to input in opset 18
  static const std::set<std::string> ops = {"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                            "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSumSquare"};
  return ops.count(op) != 0;
}

void set_codes(onnx::TensorProto& t, const QdqWeight& w, bool int4) {
  const std::size_t n = w.codes.size();
  std::string raw;
  if (int4) {
    t.set_data_type(w.is_signed ? kInt4 : kUint4);
    raw.assign((n + 1) / 2, '\0');  // two codes per byte, the first in the low nibble
    for (std::size_t k = 0; k < n; ++k) raw[k / 2] = static_cast<char>(static_cast<std::uint8_t>(raw[k / 2]) | ((static_cast<std::uint32_t>(w.codes[k]) & 0xF) << (4 * (k % 2))));
  } else {
    t.set_data_type(w.is_signed ? onnx::TensorProto::INT8 : onnx::TensorProto::UINT8);
    raw.resize(n);
    for (std::size_t k = 0; k < n; ++k) raw[k] = static_cast<char>(static_cast<std::uint8_t>(w.codes[k] & 0xFF));
  }
  t.set_raw_data(raw);
}

// A float32 scalar initializer (dims {}).
onnx::TensorProto* add_scalar(onnx::GraphProto& g, const std::string& name, float v) {
  onnx::TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(&v), sizeof v));
  return t;
}

// QuantizeLinear -> DequantizeLinear of node input 0 (and a Clip to the code range first where the stored type
// is wider), appended to `nodes`; returns the dequantized tensor's name.
std::string quantize_input(onnx::GraphProto& g, const QdqAct& a, const std::string& x, bool int4_ok, std::int64_t opset,
                           std::vector<onnx::NodeProto>& nodes) {
  const std::string base = x + "_" + a.node;
  const bool int4 = a.bits <= 4 && int4_ok;
  const std::int32_t type_lo = a.is_signed ? (int4 ? -8 : -128) : 0, type_hi = a.is_signed ? (int4 ? 7 : 127) : (int4 ? 15 : 255);
  std::string in = x;
  if (a.lo_code > type_lo || a.hi_code < type_hi) {
    onnx::NodeProto c;
    c.set_op_type("Clip");
    c.set_name(base + "_Clip");
    c.add_input(x);
    const float lo = static_cast<float>(a.lo_code - a.zero) * a.scale, hi = static_cast<float>(a.hi_code - a.zero) * a.scale;
    if (opset >= 11) {
      c.add_input(add_scalar(g, base + "_clip_min", lo)->name());
      c.add_input(add_scalar(g, base + "_clip_max", hi)->name());
    } else {
      auto* mn = c.add_attribute(); mn->set_name("min"); mn->set_type(onnx::AttributeProto::FLOAT); mn->set_f(lo);
      auto* mx = c.add_attribute(); mx->set_name("max"); mx->set_type(onnx::AttributeProto::FLOAT); mx->set_f(hi);
    }
    in = base + "_clipped";
    c.add_output(in);
    nodes.push_back(std::move(c));
  }
  const std::string scale = add_scalar(g, base + "_act_scale", a.scale)->name();
  onnx::TensorProto* z = g.add_initializer();
  z->set_name(base + "_act_zero_point");
  QdqWeight zw;
  zw.codes = {a.zero};
  zw.is_signed = a.is_signed;
  set_codes(*z, zw, int4);
  onnx::NodeProto q;
  q.set_op_type("QuantizeLinear");
  q.set_name(base + "_QuantizeLinear");
  q.add_input(in);
  q.add_input(scale);
  q.add_input(z->name());
  q.add_output(base + "_act_quantized");
  onnx::NodeProto dq;
  dq.set_op_type("DequantizeLinear");
  dq.set_name(base + "_act_DequantizeLinear");
  dq.add_input(q.output(0));
  dq.add_input(scale);
  dq.add_input(z->name());
  dq.add_output(base + "_act_dequantized");
  nodes.push_back(std::move(q));
  nodes.push_back(std::move(dq));
  return base + "_act_dequantized";
}

}  // namespace

void write_onnx_qdq(const std::string& src, const std::string& out, const std::vector<QdqWeight>& weights,
                    const std::vector<QdqAct>& acts, std::vector<std::string>& notes) {
  onnx::ModelProto m;
  {
    MappedFile f(src);
    if (f.size() > static_cast<std::size_t>(INT32_MAX) || !m.ParseFromArray(f.data(), static_cast<int>(f.size())))
      throw Error(src + ": not a valid ONNX model (protobuf parsing failed)");
  }
  onnx::GraphProto& g = *m.mutable_graph();
  onnx::OperatorSetIdProto* def = nullptr;
  for (auto& o : *m.mutable_opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") def = &o;
  if (!def) throw Error(src + ": the model imports no default-domain opset");
  const std::int64_t opset = def->version();
  std::int64_t need = opset;
  for (const auto& w : weights) {
    if (w.codes.empty()) continue;
    if (w.block > 0) need = std::max<std::int64_t>(need, 21);
    else if (w.axis >= 0) need = std::max<std::int64_t>(need, 13);
  }
  for (const auto& a : acts) {
    if (!(a.scale > 0) || !std::isfinite(a.scale)) throw Error(src + ": node '" + a.node + "': activation scale must be positive and finite");
    need = std::max<std::int64_t>(need, 10);  // QuantizeLinear; 4-bit codes go in INT8 / UINT8 (+ Clip) below opset 21
  }
  if (need > opset) {
    if (opset < 13)  // raising an older opset would change the meaning of other operators
      throw Error(src + ": default opset " + std::to_string(opset) + " is older than 13; " +
                  (need > 10 ? "per-channel and blocked QDQ weights need opset " + std::to_string(need) + " (use a per-tensor integer format, e.g. int8@fp32/tensor)"
                             : std::string("QuantizeLinear for activations needs opset 10")));
    notes.push_back("default opset raised from " + std::to_string(opset) + " to " + std::to_string(need) +
                    (need >= 21 ? " (blocked DequantizeLinear / INT4 need opset 21)"
                     : need >= 13 ? " (per-channel DequantizeLinear needs opset 13)" : " (QuantizeLinear needs opset 10)"));
    def->set_version(need);
    if (need >= 21 && m.ir_version() < 10) m.set_ir_version(10);
  }
  const bool int4_ok = need >= 21;

  // Nodes by qcast's names (the importer names unnamed nodes Op_k, k counting unnamed nodes).
  std::map<std::string, int> node_at;
  int unnamed = 0;
  for (int k = 0; k < g.node_size(); ++k) {
    const auto& n = g.node(k);
    node_at[n.name().empty() ? n.op_type() + "_" + std::to_string(unnamed++) : n.name()] = k;
  }
  std::map<std::string, int> init_at;
  for (int k = 0; k < g.initializer_size(); ++k) init_at[g.initializer(k).name()] = k;
  std::map<std::string, int> uses;
  for (const auto& n : g.node())
    for (const auto& i : n.input()) ++uses[i];

  std::vector<onnx::NodeProto> pre;  // DequantizeLinear (+ Reshape / Transpose) nodes, placed first
  std::set<std::string> drop;        // initializers no longer used
  for (const auto& w : weights) {
    auto it = node_at.find(w.node);
    if (it == node_at.end()) throw Error(src + ": no node named '" + w.node + "'");
    onnx::NodeProto& n = *g.mutable_node(it->second);
    const std::string& op = n.op_type();
    if ((op != "Conv" && op != "Gemm" && op != "MatMul") || n.input_size() < 2)
      throw Error(src + ": node '" + w.node + "' (" + op + ") has no weight input to quantize");
    const std::string wname = n.input(1);
    auto ii = init_at.find(wname);
    if (ii == init_at.end()) throw Error(src + ": the weight '" + wname + "' of node '" + w.node + "' is not an initializer");
    const onnx::TensorProto& orig = g.initializer(ii->second);
    std::vector<std::int64_t> dims(orig.dims().begin(), orig.dims().end());
    std::int64_t tail = 1;
    for (std::size_t k = 1; k < dims.size(); ++k) tail *= dims[k];
    bool transB = false;
    for (const auto& a : n.attribute()) if (a.name() == "transB") transB = a.i() != 0;
    bool transposed;
    if (!dims.empty() && dims[0] == w.rows && tail == w.cols && (op == "Conv" || (op == "Gemm" && transB))) transposed = false;
    else if (dims.size() == 2 && dims[0] == w.cols && dims[1] == w.rows && op != "Conv" && !(op == "Gemm" && transB)) transposed = true;
    else throw Error(src + ": weight '" + wname + "' of node '" + w.node + "' does not match a [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) + "] layer");
    const std::size_t numel = static_cast<std::size_t>(w.rows * w.cols);
    const std::string base = wname + "_" + w.node;
    std::string result;  // the [rows, cols] float tensor's name
    if (w.codes.empty()) {  // float32 fallback: the fake-quantized values as a plain initializer
      if (w.values.size() != numel) throw Error(src + ": node '" + w.node + "': wrong number of values");
      onnx::TensorProto* t = g.add_initializer();
      t->set_name(base + "_fakequant");
      t->set_data_type(onnx::TensorProto::FLOAT);
      t->add_dims(w.rows); t->add_dims(w.cols);
      t->set_raw_data(std::string(reinterpret_cast<const char*>(w.values.data()), numel * sizeof(float)));
      result = t->name();
    } else {
      if (w.codes.size() != numel) throw Error(src + ": node '" + w.node + "': wrong number of codes");
      const bool int4 = w.bits <= 4 && int4_ok;
      onnx::TensorProto* q = g.add_initializer();
      q->set_name(base + "_quantized");
      q->add_dims(w.rows); q->add_dims(w.cols);
      set_codes(*q, w, int4);
      onnx::TensorProto* s = g.add_initializer();
      s->set_name(base + "_scale");
      s->set_data_type(onnx::TensorProto::FLOAT);
      std::vector<std::int64_t> sdims;
      if (w.axis >= 0 && w.block == 0) sdims = {w.axis == 0 ? w.rows : w.cols};
      else if (w.block > 0) sdims = w.axis == 1 ? std::vector<std::int64_t>{w.rows, (w.cols + w.block - 1) / w.block}
                                                : std::vector<std::int64_t>{(w.rows + w.block - 1) / w.block, w.cols};
      std::int64_t ns = 1;
      for (auto d : sdims) { s->add_dims(d); ns *= d; }
      if (static_cast<std::int64_t>(w.scales.size()) != ns) throw Error(src + ": node '" + w.node + "': " + std::to_string(w.scales.size()) + " scales, expected " + std::to_string(ns));
      s->set_raw_data(std::string(reinterpret_cast<const char*>(w.scales.data()), w.scales.size() * sizeof(float)));
      onnx::NodeProto dq;
      dq.set_op_type("DequantizeLinear");
      dq.set_name(base + "_DequantizeLinear");
      dq.add_input(q->name());
      dq.add_input(s->name());
      if (!w.zeros.empty() || !w.is_signed) {  // an omitted zero point would be read as uint8
        QdqWeight z = w;
        z.codes = w.zeros.empty() ? std::vector<std::int32_t>(static_cast<std::size_t>(ns), 0) : w.zeros;
        if (static_cast<std::int64_t>(z.codes.size()) != ns) throw Error(src + ": node '" + w.node + "': zero points do not match the scales");
        onnx::TensorProto* zt = g.add_initializer();
        zt->set_name(base + "_zero_point");
        for (auto d : sdims) zt->add_dims(d);
        set_codes(*zt, z, int4);
        dq.add_input(zt->name());
      }
      if (w.axis >= 0) {
        auto* a = dq.add_attribute(); a->set_name("axis"); a->set_type(onnx::AttributeProto::INT); a->set_i(w.axis);
      }
      if (w.block > 0) {
        auto* a = dq.add_attribute(); a->set_name("block_size"); a->set_type(onnx::AttributeProto::INT); a->set_i(w.block);
      }
      result = base + "_dequantized";
      dq.add_output(result);
      pre.push_back(dq);
    }
    std::string final_name = result;
    if (transposed) {
      onnx::NodeProto t;
      t.set_op_type("Transpose");
      t.set_name(base + "_Transpose");
      t.add_input(result);
      final_name = base + "_transposed";
      t.add_output(final_name);
      auto* a = t.add_attribute(); a->set_name("perm"); a->set_type(onnx::AttributeProto::INTS); a->add_ints(1); a->add_ints(0);
      pre.push_back(t);
    } else if (dims.size() != 2) {
      onnx::TensorProto* sh = g.add_initializer();
      sh->set_name(base + "_shape");
      sh->set_data_type(onnx::TensorProto::INT64);
      sh->add_dims(static_cast<std::int64_t>(dims.size()));
      sh->set_raw_data(std::string(reinterpret_cast<const char*>(dims.data()), dims.size() * sizeof(std::int64_t)));
      onnx::NodeProto r;
      r.set_op_type("Reshape");
      r.set_name(base + "_Reshape");
      r.add_input(result);
      r.add_input(sh->name());
      final_name = base + "_reshaped";
      r.add_output(final_name);
      pre.push_back(r);
    }
    n.set_input(1, final_name);
    if (--uses[wname] == 0) drop.insert(wname);
  }
  if (need >= 18 && opset < 18) {  // Reduce* take their axes as an input from opset 18 on
    for (auto& n : *g.mutable_node()) {
      if (!is_reduce_with_axes_attr(n.op_type())) continue;
      for (int k = 0; k < n.attribute_size(); ++k) {
        if (n.attribute(k).name() != "axes") continue;
        const auto& ax = n.attribute(k).ints();
        onnx::TensorProto* t = g.add_initializer();
        t->set_name(n.name() + "_axes_" + std::to_string(g.initializer_size()));
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(ax.size());
        for (auto v : ax) t->add_int64_data(v);
        n.add_input(t->name());
        n.mutable_attribute()->DeleteSubrange(k, 1);
        break;
      }
    }
  }
  // Drop replaced initializers (and their listing among the inputs, as old exporters write).
  {
    auto* inits = g.mutable_initializer();
    for (int k = inits->size() - 1; k >= 0; --k)
      if (drop.count(inits->Get(k).name())) inits->DeleteSubrange(k, 1);
    auto* ins = g.mutable_input();
    for (int k = ins->size() - 1; k >= 0; --k)
      if (drop.count(ins->Get(k).name())) ins->DeleteSubrange(k, 1);
  }
  // Activations: Q/DQ (and Clip) right before their node, after whatever produced its input.
  std::map<int, std::vector<onnx::NodeProto>> before;
  for (const auto& a : acts) {
    auto it = node_at.find(a.node);
    if (it == node_at.end()) throw Error(src + ": no node named '" + a.node + "'");
    onnx::NodeProto& n = *g.mutable_node(it->second);
    if ((n.op_type() != "Conv" && n.op_type() != "Gemm" && n.op_type() != "MatMul") || n.input_size() < 1 || n.input(0).empty())
      throw Error(src + ": node '" + a.node + "' (" + n.op_type() + ") has no activation input to quantize");
    n.set_input(0, quantize_input(g, a, n.input(0), int4_ok, need, before[it->second]));
  }
  {
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (auto& p : pre) *nodes.Add() = std::move(p);
    for (int k = 0; k < g.node_size(); ++k) {
      if (auto b = before.find(k); b != before.end())
        for (auto& p : b->second) *nodes.Add() = std::move(p);
      *nodes.Add() = std::move(*g.mutable_node(k));
    }
    g.mutable_node()->Swap(&nodes);
  }
  auto* meta = m.add_metadata_props();
  meta->set_key("qcast.quantize");
  std::string text = std::to_string(weights.size()) + " weights" + (acts.empty() ? "" : " and " + std::to_string(acts.size()) + " activations") +
                     " rewritten by qcast quantize";
  for (const auto& n : notes) text += "; " + n;
  meta->set_value(text);
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw Error(out + ": cannot serialize the ONNX model");
  write_file_atomic(out, [&](int fd) { write_all(fd, bytes.data(), bytes.size(), out); });
}

}  // namespace qcast::nn
