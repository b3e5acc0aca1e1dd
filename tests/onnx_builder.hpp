// A minimal ONNX protobuf writer for tests that need small hand-made models (the tests do not link the
// ONNX protobuf library). Field numbers from onnx/onnx.proto: ModelProto, GraphProto, NodeProto,
// AttributeProto, TensorProto, ValueInfoProto.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace qcast::test::onnx {

inline void varint(std::string& o, std::uint64_t v) {
  while (v >= 0x80) {
    o.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  o.push_back(static_cast<char>(v));
}
inline void tag(std::string& o, int field, int wire) { varint(o, static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire)); }
inline void put_int(std::string& o, int field, std::int64_t v) { tag(o, field, 0); varint(o, static_cast<std::uint64_t>(v)); }
inline void put_bytes(std::string& o, int field, const std::string& b) { tag(o, field, 2); varint(o, b.size()); o += b; }

/// An int64 tensor (TensorProto data_type 7) with int64_data.
inline std::string int64_tensor(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<std::int64_t>& vals) {
  std::string t;
  for (auto d : dims) put_int(t, 1, d);
  put_int(t, 2, 7);
  for (auto v : vals) put_int(t, 7, v);
  put_bytes(t, 8, name);
  return t;
}

/// A float tensor (data_type 1) with raw_data.
inline std::string float_tensor(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& vals) {
  std::string t;
  for (auto d : dims) put_int(t, 1, d);
  put_int(t, 2, 1);
  put_bytes(t, 8, name);
  std::string raw(vals.size() * 4, '\0');
  if (!vals.empty()) std::memcpy(raw.data(), vals.data(), raw.size());
  put_bytes(t, 9, raw);
  return t;
}

inline std::string int_attr(const std::string& name, std::int64_t v) {
  std::string a;
  put_bytes(a, 1, name);
  put_int(a, 3, v);
  put_int(a, 20, 2);  // INT
  return a;
}

inline std::string node(const std::string& op, const std::vector<std::string>& ins, const std::vector<std::string>& outs,
                        const std::vector<std::string>& attrs = {}, const std::string& name = "") {
  std::string n;
  for (auto& i : ins) put_bytes(n, 1, i);
  for (auto& o : outs) put_bytes(n, 2, o);
  if (!name.empty()) put_bytes(n, 3, name);
  put_bytes(n, 4, op);
  for (auto& a : attrs) put_bytes(n, 5, a);
  return n;
}

/// A float tensor value info with fixed dims.
inline std::string value_info(const std::string& name, const std::vector<std::int64_t>& dims) {
  std::string shape;
  for (auto d : dims) {
    std::string dim;
    put_int(dim, 1, d);
    put_bytes(shape, 1, dim);
  }
  std::string tensor;
  put_int(tensor, 1, 1);
  put_bytes(tensor, 2, shape);
  std::string type;
  put_bytes(type, 1, tensor);
  std::string vi;
  put_bytes(vi, 1, name);
  put_bytes(vi, 2, type);
  return vi;
}

/// A ModelProto (ir_version 8, default-domain opset 13) of one graph.
inline std::string model(const std::vector<std::string>& nodes, const std::vector<std::string>& initializers,
                         const std::vector<std::string>& inputs, const std::vector<std::string>& outputs) {
  std::string g;
  for (auto& n : nodes) put_bytes(g, 1, n);
  put_bytes(g, 2, "g");
  for (auto& t : initializers) put_bytes(g, 5, t);
  for (auto& i : inputs) put_bytes(g, 11, i);
  for (auto& o : outputs) put_bytes(g, 12, o);
  std::string opset;
  put_bytes(opset, 1, "");
  put_int(opset, 2, 13);
  std::string m;
  put_int(m, 1, 8);
  put_bytes(m, 7, g);
  put_bytes(m, 8, opset);
  return m;
}

inline void save(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace qcast::test::onnx

namespace qcast::test::onnx {

/// A 3-class linear classifier: x [N, 4] -> Gemm(W [3, 4], transB) -> logits [N, 3].
inline std::string linear_classifier() {
  std::vector<float> w(12);
  for (int k = 0; k < 12; ++k) w[k] = 0.25f * static_cast<float>((k * 7) % 5) - 0.5f;
  return model({node("Gemm", {"x", "W"}, {"y"}, {int_attr("transB", 1)})}, {float_tensor("W", {3, 4}, w)},
               {value_info("x", {-1, 4})}, {value_info("y", {-1, 3})});
}

}  // namespace qcast::test::onnx

namespace qcast::test::onnx {

/// A 3-class classifier of 2x2 one-channel images: x [N, 1, 2, 2] -> Flatten -> Gemm(W [3, 4]) -> [N, 3].
inline std::string image_classifier() {
  std::vector<float> w(12);
  for (int k = 0; k < 12; ++k) w[k] = 0.25f * static_cast<float>((k * 7) % 5) - 0.5f;
  return model({node("Flatten", {"x"}, {"f"}), node("Gemm", {"f", "W"}, {"y"}, {int_attr("transB", 1)})},
               {float_tensor("W", {3, 4}, w)}, {value_info("x", {-1, 1, 2, 2})}, {value_info("y", {-1, 3})});
}

}  // namespace qcast::test::onnx
