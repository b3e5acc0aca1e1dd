// qcast encode IN OUT.safetensors --format F: write the true bit-level representation (packed codes + scales).
#include "command.hpp"
#include "common.hpp"
#include "qcast/error.hpp"
#include "qcast/packed.hpp"
#include "qcast/tensor_files.hpp"

namespace qcast::cli {
namespace {

struct EncodeArgs {
  std::string in, out, tensors;
  QuantFlags q;
};

void run(const EncodeArgs& a) {
  if (!has_extension(a.out, ".safetensors")) throw Error("'" + a.out + "': encode writes a .safetensors file");
  const Format f = Format::parse(a.q.format);
  const QuantOptions opt = a.q.options();
  PackedFile pf;
  auto add = [&](const std::string& name, const Tensor& t) {
    const Tensor x = t.to_f32();
    try {
      pf.quantized.emplace_back(name, encode(f, x.f32(), x.shape, opt));
    } catch (const Error& e) {
      throw Error("tensor '" + name + "': " + e.what());
    }
  };
  if (is_npy_path(a.in)) {
    Tensor t = read_npy(a.in);
    if (t.dtype != DType::F32 && t.dtype != DType::F16) throw Error("'" + a.in + "': expected a float32 or float16 array, got " + dtype_name(t.dtype));
    add("tensor", t);
    pf.metadata["qcast.source"] = "npy";
  } else {
    const SafeTensorsFile st = read_safetensors(a.in);
    pf.metadata = st.metadata;
    for (auto& nt : st.tensors) {
      if (is_float_tensor(nt.tensor) && name_matches(a.tensors, nt.name)) add(nt.name, nt.tensor);
      else pf.plain.push_back(nt);
    }
    if (pf.quantized.empty()) throw Error("no floating-point tensor of '" + a.in + "' matched '" + a.tensors + "'");
  }
  write_packed(a.out, pf);
}

Registrar reg("encode", [](CLI::App& app) {
  auto args = std::make_shared<EncodeArgs>();
  auto* sub = app.add_subcommand("encode", "quantize to packed codes + scales in a .safetensors file (docs/packed-layout.md)");
  sub->add_option("IN", args->in, ".npy or .safetensors input")->required();
  sub->add_option("OUT", args->out, "output .safetensors")->required();
  sub->add_option("--tensors", args->tensors, "only tensors whose names match this glob (others are stored as they are)");
  add_quant_flags(sub, args->q);
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
