// The ONNX importer as a module for the qcast CLI (libqcast_onnx.so, loaded on the first ONNX file by
// tools/qcast/onnx_lazy.cpp): the importer of libqcast (src/nn/onnx_import.cpp) with libprotobuf and
// libonnx_proto, which every other command then never loads. The module links its own copy of what
// the importer needs from libqcast.a, hidden (--exclude-libs), so only this entry point is exported.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qcast/nn/onnx.hpp"

extern "C" __attribute__((visibility("default"))) void qcast_onnx_parse(const std::uint8_t* data, std::size_t size,
                                                                         const std::string* what, qcast::nn::Graph* out) {
  *out = qcast::nn::parse_onnx(data, size, *what);  // qcast::Error propagates to the caller
}

#include "qcast/nn/onnx_qdq.hpp"

// Quantized ONNX out (qcast quantize --out *.onnx): errors come back as text (empty = success).
extern "C" __attribute__((visibility("default"))) void qcast_onnx_write_qdq(const std::string* src, const std::string* out,
                                                                             const std::vector<qcast::nn::QdqWeight>* weights,
                                                                             const std::vector<qcast::nn::QdqAct>* acts,
                                                                             std::vector<std::string>* notes, std::string* error) {
  try {
    qcast::nn::write_onnx_qdq(*src, *out, *weights, *acts, *notes);
  } catch (const std::exception& e) {
    *error = e.what();
  }
}
