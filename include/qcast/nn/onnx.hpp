// ONNX import (protobuf, Debian's libonnx): ModelProto -> nn::Graph, constant-folded and validated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "qcast/nn/graph.hpp"

namespace qcast::nn {

/// The node attribute in which the importer records a QuantizeLinear's saturation range {lo, hi} (its output
/// type's, which the int64 values of the executor do not keep). Not a name an ONNX file can set usefully.
inline constexpr const char* kQuantizeRange = "\x01qcast.quantize_range";

/// Parses an in-memory ONNX model. `what` names the source in errors. Throws qcast::Error for
/// malformed protobuf, missing initializers, bad shapes or unsupported operators (naming op and node).
Graph parse_onnx(const std::uint8_t* data, std::size_t size, const std::string& what);
/// The same, with some graph inputs bound to values: they become constants before folding (e.g. the
/// shape operand a model takes as an input), so only the remaining inputs are fed to Graph::run.
/// A name that is not a graph input is a qcast::Error.
Graph parse_onnx(const std::uint8_t* data, std::size_t size, const std::string& what,
                 const std::map<std::string, Value>& bound_inputs);
/// Parses a serialized ONNX TensorProto (e.g. a backend test's input_0.pb): float types -> f32,
/// integer and bool types -> i64. `what` names the source in errors.
Value parse_onnx_tensor(const std::uint8_t* data, std::size_t size, const std::string& what);
/// Memory-maps and parses an ONNX file.
Graph load_onnx(const std::string& path);

}  // namespace qcast::nn
