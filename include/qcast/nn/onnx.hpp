// ONNX import (protobuf, Debian's libonnx): ModelProto -> nn::Graph, constant-folded and validated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "qcast/nn/graph.hpp"

namespace qcast::nn {

/// Parses an in-memory ONNX model. `what` names the source in errors. Throws qcast::Error for
/// malformed protobuf, missing initializers, bad shapes or unsupported operators (naming op and node).
Graph parse_onnx(const std::uint8_t* data, std::size_t size, const std::string& what);
/// Memory-maps and parses an ONNX file.
Graph load_onnx(const std::string& path);

}  // namespace qcast::nn
