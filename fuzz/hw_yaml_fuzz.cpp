// libFuzzer target: the hardware-model YAML readers. Every input goes to each of them: problem,
// architecture, map (against a fixed problem and architecture), mapspace constraints and ERT (applied to
// the fixed architecture), mapper settings and the NPU device (then a matmul and an attention predicted on it). Each must refuse malformed text with qcast::Error, never
// crash, hang or allocate without bound; whatever parses is then evaluated (trivial mapping, or the parsed
// one) so that the sizes it declares reach the analysis' overflow checks.
// Seeds: examples/arch, examples/problems and ../shared/conformance/timeloop* (gathered by scripts/fuzz at
// run time); fuzz/dicts/hw_yaml.dict holds the keys, so that byte mutations stay inside the grammar.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "qcast/error.hpp"
#include "qcast/hw.hpp"
#include "qcast/mapper.hpp"
#include "qcast/npu.hpp"

namespace {
const qcast::hw::Problem* g_prob = nullptr;
const qcast::hw::Architecture* g_arch = nullptr;

void eval_quietly(const qcast::hw::Problem& p, const qcast::hw::Architecture& a, const qcast::hw::Mapping& m) {
  try {
    (void)qcast::hw::evaluate(p, a, m, {"int8", "int8", ""});
  } catch (const qcast::Error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The fixed problem and architecture the map, constraints and ERT inputs apply to (run from the repo root).
  try {
    g_prob = new qcast::hw::Problem(qcast::hw::Problem::from_yaml_file("examples/problems/conv2d.prob.yaml"));
    g_arch = new qcast::hw::Architecture(qcast::hw::Architecture::from_yaml_file("examples/arch/eyeriss_like.yaml"));
  } catch (const qcast::Error& e) {
    std::fprintf(stderr, "hw_yaml_fuzz: run from the repository root (%s)\n", e.what());
    std::exit(1);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qcast::hw;
  if (size > 32768) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    Problem p = Problem::from_yaml_text(text, "fuzz.prob.yaml");
    eval_quietly(p, *g_arch, Mapping::trivial(p, *g_arch));
  } catch (const qcast::Error&) {
  }
  try {
    Architecture a = Architecture::from_yaml_text(text, "fuzz.arch.yaml");
    eval_quietly(*g_prob, a, Mapping::trivial(*g_prob, a));
  } catch (const qcast::Error&) {
  }
  try {
    Mapping m = Mapping::from_yaml_text(text, *g_prob, *g_arch, "fuzz.map.yaml");
    eval_quietly(*g_prob, *g_arch, m);
    (void)m.to_yaml(*g_prob, *g_arch);
    (void)m.loop_nest(*g_prob, *g_arch);
  } catch (const qcast::Error&) {
  }
  try {
    Architecture a = *g_arch;
    (void)a.apply_constraints_text(text, "fuzz.constraints.yaml");
  } catch (const qcast::Error&) {
  }
  try {
    Architecture a = *g_arch;
    a.apply_ert_text(text, "fuzz.ERT.yaml");
    eval_quietly(*g_prob, a, Mapping::trivial(*g_prob, a));
  } catch (const qcast::Error&) {
  }
  try {
    (void)read_mapper_yaml_text(text, "fuzz.mapper.yaml");
  } catch (const qcast::Error&) {
  }
  try {
    const npu::Device d = npu::Device::from_yaml_text(text, "fuzz.npu.yaml");
    const std::string type = d.types.front().name;
    (void)npu::predict_matmul(d, {1000, 3000, 700, type, 4}, {4, 4, 32, 256, 32, 64});
    (void)npu::predict_attention(d, {2048, 2048, 32, 8, 64, 64, true, type}, {2, 4, 4, 256, 64});
  } catch (const qcast::Error&) {
  }
  return 0;
}
