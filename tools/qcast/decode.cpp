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
  std::vector<std::shared_ptr<std::vector<float>>> bufs;
  std::vector<NamedTensor> out;
  for (auto& [name, e] : pf.quantized) {
    auto buf = std::make_shared<std::vector<float>>(static_cast<std::size_t>(shape_numel(e.shape)));
    try {
      decode(e, buf->data(), a.threads);
    } catch (const Error& ex) {
      throw Error(a.in + ": tensor '" + name + "': " + ex.what());
    }
    Tensor t;
    t.dtype = DType::F32;
    t.shape = e.shape;
    t.data = buf->data();
    t.owner = buf;
    out.push_back({name, t});
  }
  if (is_npy_path(a.out)) {
    if (out.size() != 1 || !pf.plain.empty())
      throw Error("'" + a.in + "' holds " + std::to_string(out.size() + pf.plain.size()) + " tensors; decode to .safetensors instead of .npy");
    write_npy(a.out, out[0].tensor);
    return;
  }
  for (auto& p : pf.plain) out.push_back(p);
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
