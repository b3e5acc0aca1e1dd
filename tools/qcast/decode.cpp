// qcast decode IN.safetensors OUT: restore float32 tensors from packed codes + scales.
#include <cstring>

#include "command.hpp"
#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/packed.hpp"
#include "qcast/tensor_files.hpp"

namespace qcast::cli {
namespace {

struct DecodeArgs {
  std::string in, out;
  int threads = 1;
};

void run(const DecodeArgs& a) {
  const PackedFile pf = read_packed(a.in);
  std::vector<NamedTensor> out = decode_packed(pf, a.threads, a.in);
  if (is_npy_path(a.out)) {
    if (out.size() != 1)
      throw Error("'" + a.in + "' holds " + std::to_string(out.size()) + " tensors; decode to .safetensors instead of .npy");
    write_npy(a.out, out[0].tensor);
    return;
  }
  write_safetensors(a.out, out, pf.metadata);
}

Registrar reg("decode", [](CLI::App& app) {
  auto args = std::make_shared<DecodeArgs>();
  auto* sub = app.add_subcommand("decode", "decode a packed .safetensors file (from `qcast encode`) back to float32");
  sub->add_option("IN", args->in, "packed .safetensors")->required();
  sub->add_option("OUT", args->out, ".npy (single tensor) or .safetensors")->required();
  add_threads_flag(sub, args->threads);
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
