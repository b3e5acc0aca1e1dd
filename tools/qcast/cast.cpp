// qcast cast IN OUT --format F: fake-quant (quantize, then dequantize to float32).
#include <iostream>

#include "command.hpp"
#include "common.hpp"
#include "qcast/error.hpp"
#include "qcast/tensor_files.hpp"

namespace qcast::cli {
namespace {

struct CastArgs {
  std::string in, out, tensors;
  QuantFlags q;
};

void run(const CastArgs& a) {
  const Format f = Format::parse(a.q.format);
  const QuantOptions opt = a.q.options();
  const int n = transform_float_tensors(
      a.in, a.out, [&](const std::string& name) { return name_matches(a.tensors, name); },
      [&](const std::string& name, const Shape& shape, const FloatSource& source, const FloatSink& sink) {
        try {
          // 1 MiB windows stay in L2 from pread through the kernel to pwrite.
          fake_quant_streamed(f, source, shape, opt, sink, 1 << 18);
        } catch (const Error& e) {
          throw Error((name.empty() ? a.in : "tensor '" + name + "'") + ": " + e.what());
        }
      });
  if (n == 0) throw Error("no floating-point tensor of '" + a.in + "' matched '" + a.tensors + "'");
}

Registrar reg("cast", [](CLI::App& app) {
  auto args = std::make_shared<CastArgs>();
  auto* sub = app.add_subcommand("cast", "fake-quant a tensor file: quantize to a format and dequantize to float32");
  sub->add_option("IN", args->in, ".npy (float32/float16) or .safetensors (F32/F16/BF16 tensors)")->required();
  sub->add_option("OUT", args->out, "output file of the same type (float32)")->required();
  sub->add_option("--tensors", args->tensors, "only tensors whose names match this glob (others are copied)");
  add_quant_flags(sub, args->q);
  sub->callback([args] { run(*args); });
});

}  // namespace
}  // namespace qcast::cli
