// The CLI's ONNX entry points. The importer (src/nn/onnx_import.cpp, with libprotobuf and libonnx_proto) lives in
// the module libqcast_onnx.so (tools/qcast_onnx), loaded on the first ONNX file. Defining parse_onnx and
// load_onnx here keeps the linker from taking onnx.o out of libqcast.a, and with --as-needed libprotobuf and
// libonnx_proto leave the start-up of every command: ~3.6 ms of ~12 on the 2-core dev VM, a tenth of a
// 64 MiB `qcast cast`. Same declarations (qcast/nn/onnx.hpp), same errors.
#include <dlfcn.h>

#include <string>

#include "module_loader.hpp"

#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/nn/onnx.hpp"
#include "qcast/nn/onnx_qdq.hpp"

namespace qcast::nn {

namespace {

using ParseFn = void (*)(const std::uint8_t*, std::size_t, const std::string*, Graph*);

// Beside the executable (the build tree), then where `cmake --install` puts it relative to the executable
// (an install moved as a whole) and at the configured prefix. Loaded once, never closed.
void* module_symbol(const char* name) {
  static void* const handle = cli::open_cli_module(QCAST_ONNX_MODULE_NAME, QCAST_ONNX_MODULE_RELATIVE, QCAST_ONNX_MODULE_INSTALLED,
                                                   RTLD_NOW | RTLD_LOCAL, "the ONNX importer module");
  return cli::module_symbol(handle, name, "the ONNX module (" QCAST_ONNX_MODULE_NAME ")");
}

ParseFn importer() {
  static const ParseFn fn = reinterpret_cast<ParseFn>(module_symbol("qcast_onnx_parse"));
  return fn;
}

}  // namespace

Graph parse_onnx(const std::uint8_t* data, std::size_t size, const std::string& what) {
  Graph g;
  importer()(data, size, &what, &g);
  return g;
}

void write_onnx_qdq(const std::string& src, const std::string& out, const std::vector<QdqWeight>& weights,
                    const std::vector<QdqAct>& acts, std::vector<std::string>& notes) {
  using WriteFn = void (*)(const std::string*, const std::string*, const std::vector<QdqWeight>*, const std::vector<QdqAct>*,
                           std::vector<std::string>*, std::string*);
  static const WriteFn fn = reinterpret_cast<WriteFn>(module_symbol("qcast_onnx_write_qdq"));
  std::string error;
  fn(&src, &out, &weights, &acts, &notes, &error);
  if (!error.empty()) throw Error(error);
}

Graph load_onnx(const std::string& path) {
  MappedFile f(path);
  return parse_onnx(f.data(), f.size(), path);
}

}  // namespace qcast::nn
