// The CLI's dlopen'd modules (the ONNX importer, the MPI transport): one place that knows where they are.
#pragma once
#include <string>

namespace qcast::cli {

/// dlopen()s a module of the CLI: `name` beside the executable (the build tree), then `relative` to the
/// executable's folder (an install moved as a whole), then the configured `installed` path. `flags` are
/// dlopen's. Throws qcast::Error naming `what` and every path's dlerror() when none loads.
void* open_cli_module(const char* name, const char* relative, const char* installed, int flags, const std::string& what);

/// dlsym() of `symbol` in a module opened above; throws qcast::Error naming `what` when it is missing.
void* module_symbol(void* module, const char* symbol, const std::string& what);

}  // namespace qcast::cli
