// qcast npu: a matmul or a LLaMA attention layer on an AIE-style spatial NPU (the MLIR-AIR template):
// every legal tiling predicted and ranked by cycles, with compute efficiency and what bounds it.
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "command.hpp"
#include "qcast/error.hpp"
#include "qcast/npu.hpp"

namespace {

using namespace qcast::hw::npu;

struct NpuArgs {
  std::string device = "npu2", print_device, matmul, herd, tiles, type = "bf16", attn_tiling, model;
  std::vector<std::string> input_shapes;
  std::int64_t seq = 512;
  bool attention = false, causal = false, json = false;
  std::int64_t lq = 0, lk = 0, heads = 0, kv_heads = 0, head_dim = 0, dv = 0;
  int out_bytes = 4, top = 10;
};

std::vector<std::int64_t> numbers(const std::string& text, const std::string& option, std::size_t n, const char* form) {
  static const std::regex re(R"(^[0-9]{1,9}([x,][0-9]{1,9})*$)");
  if (!std::regex_match(text, re)) throw qcast::Error(option + " '" + qcast::cli::printable(text) + "' is not of the form " + form);
  std::vector<std::int64_t> v;
  std::string cur;
  for (char c : text + ",") {
    if (c == 'x' || c == ',') {
      v.push_back(std::stoll(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (v.size() != n) throw qcast::Error(option + " '" + qcast::cli::printable(text) + "' is not of the form " + form);
  for (auto x : v)
    if (x < 1) throw qcast::Error(option + " '" + qcast::cli::printable(text) + "': every number must be at least 1");
  return v;
}

Device load_device(const std::string& spec) {
  for (const auto& n : Device::builtin_names())
    if (spec == n) return Device::builtin(n);
  std::FILE* f = std::fopen(spec.c_str(), "rb");
  if (!f) throw qcast::Error("--device '" + qcast::cli::printable(spec) + "' is neither a built-in device (npu1, npu2) nor a readable file");
  std::fclose(f);
  return Device::from_yaml_file(spec);
}

nlohmann::json prediction_json(const Prediction& p) {
  return {{"cycles", p.cycles},           {"seconds", p.seconds},
          {"macs", p.macs},               {"efficiency", p.efficiency},
          {"gflops", p.gflops},           {"bound", p.bound},
          {"core_cycles", p.core_cycles}, {"stream_cycles", p.stream_cycles},
          {"l3_cycles", p.l3_cycles},     {"overhead_cycles", p.overhead_cycles},
          {"l3_bytes", p.l3_bytes},       {"l1_bytes_per_core", p.l1_bytes_used},
          {"l2_bytes_per_memtile", p.l2_bytes_used}};
}

nlohmann::json tiling_json(const MatmulTiling& t) {
  return {{"herd_m", t.herd_m}, {"herd_n", t.herd_n}, {"tile_m", t.tile_m}, {"tile_k_l2", t.tile_k_l2}, {"tile_k_l1", t.tile_k_l1}, {"tile_n", t.tile_n}};
}
nlohmann::json tiling_json(const AttentionTiling& t) {
  return {{"heads_per_unroll", t.heads_per_unroll}, {"q_tiles", t.q_tiles}, {"cascade", t.cascade}, {"lqp", t.lqp}, {"lkp", t.lkp}};
}

// Puts the first --top choices into j["choices"] and `rows`; under --json prints j and returns true.
template <class Choice>
bool emit_choices(nlohmann::json& j, const std::vector<Choice>& choices, const NpuArgs& a,
                  std::vector<std::pair<std::string, Prediction>>& rows) {
  j["evaluated"] = choices.size();
  nlohmann::json arr = nlohmann::json::array();
  for (std::size_t k = 0; k < choices.size() && (a.top <= 0 || static_cast<int>(k) < a.top); ++k) {
    arr.push_back({{"tiling", tiling_json(choices[k].tiling)}, {"prediction", prediction_json(choices[k].prediction)}});
    rows.emplace_back(choices[k].tiling.text(), choices[k].prediction);
  }
  j["choices"] = arr;
  if (!a.json) return false;
  std::cout << qcast::cli::json_output(j, 2) << "\n";
  return true;
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

void print_rows(const std::vector<std::pair<std::string, Prediction>>& rows, const Device& d, int top) {
  std::cout << "  rank  tiling                                              time (us)    GFLOPS  efficiency  bound            L1 KB  L2 KB\n";
  int k = 0;
  for (const auto& [text, p] : rows) {
    if (top > 0 && k >= top) break;
    std::cout << "  " << std::setw(4) << ++k << "  " << std::left << std::setw(50) << text << std::right << std::setw(11)
              << fixed(p.seconds * 1e6, 1) << std::setw(10) << fixed(p.gflops, 0) << std::setw(11) << fixed(100 * p.efficiency, 1)
              << "%  " << std::left << std::setw(15) << p.bound << std::right << std::setw(6) << fixed(p.l1_bytes_used / 1024.0, 1)
              << std::setw(7) << fixed(p.l2_bytes_used / 1024.0, 0) << "\n";
  }
  if (rows.empty()) return;
  const Prediction& b = rows.front().second;
  const double hz = d.clock_ghz * 1e9;
  std::cout << "best: " << rows.front().first << "\n"
            << "  cores " << fixed(b.core_cycles / hz * 1e6, 1) << " us, L2->L1 streams " << fixed(b.stream_cycles / hz * 1e6, 1)
            << " us, L3 " << fixed(b.l3_cycles / hz * 1e6, 1) << " us (" << fixed(b.l3_bytes / 1e6, 2) << " MB), overlapped: the slowest ("
            << b.bound << ") counts; not overlapped " << fixed(b.overhead_cycles / hz * 1e6, 1) << " us (launch, first fill, last drain)\n";
}

// A model file: every layer's best tiling (one search per distinct shape), in model order, with its share of
// the time, then the total.
void run_model(const NpuArgs& a, const Device& d) {
  const auto work = model_work(a.model, a.seq, a.type, qcast::cli::parse_input_shapes(a.input_shapes));
  struct Row {
    std::string name, shape, tiling, why;
    Prediction p;
    std::int64_t repeat = 1;
  };
  std::map<std::string, std::pair<std::string, Prediction>> cache;  // shape key -> best tiling
  std::map<std::string, std::string> failed;                        // shape key -> why not mappable
  std::vector<Row> rows;
  double total_s = 0, total_macs = 0;
  for (const auto& w : work) {
    Row r;
    r.name = w.name;
    r.repeat = w.repeat;
    std::ostringstream key;
    if (w.attention) {
      const auto& t = w.attn;
      key << "attn " << t.lq << " " << t.lk << " " << t.heads << " " << t.kv_heads << " " << t.dk << " " << t.dv << " " << t.causal;
      r.shape = "attention lq " + std::to_string(t.lq) + ", " + std::to_string(t.heads) + "/" + std::to_string(t.kv_heads) + " heads, d " + std::to_string(t.dk);
    } else {
      const auto& m = w.matmul;
      key << "mm " << m.M << " " << m.K << " " << m.N;
      r.shape = std::to_string(m.M) + "x" + std::to_string(m.K) + "x" + std::to_string(m.N) + (w.repeat > 1 ? " x" + std::to_string(w.repeat) : "");
    }
    if (!cache.count(key.str()) && !failed.count(key.str())) {
      try {
        if (w.attention) {
          const auto best = search_attention(d, w.attn).front();
          cache[key.str()] = {best.tiling.text(), best.prediction};
        } else {
          const auto best = search_matmul(d, w.matmul).front();
          cache[key.str()] = {best.tiling.text(), best.prediction};
        }
      } catch (const qcast::Error& e) {
        failed[key.str()] = e.what();
      }
    }
    if (failed.count(key.str())) {
      r.why = failed[key.str()];
    } else {
      r.tiling = cache[key.str()].first;
      r.p = cache[key.str()].second;
      total_s += r.p.seconds * static_cast<double>(r.repeat);
      total_macs += r.p.macs * static_cast<double>(r.repeat);
    }
    rows.push_back(r);
  }
  const double total_eff = total_s > 0 ? total_macs / (d.peak_macs_per_cycle(a.type) * total_s * d.clock_ghz * 1e9) : 0;
  if (a.json) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json l = {{"name", r.name}, {"shape", r.shape}, {"repeat", r.repeat}};
      if (!r.why.empty()) {
        l["unmapped"] = r.why;
      } else {
        l["tiling"] = r.tiling;
        l["prediction"] = prediction_json(r.p);
        l["share"] = r.p.seconds * static_cast<double>(r.repeat) / total_s;
      }
      layers.push_back(l);
    }
    nlohmann::json j = {{"device", d.name}, {"model", a.model}, {"seq", a.seq}, {"type", a.type}, {"layers", layers},
                        {"total", {{"seconds", total_s}, {"macs", total_macs}, {"efficiency", total_eff}}}};
    std::cout << qcast::cli::json_output(j, 2) << "\n";
    return;
  }
  std::cout << a.model << " on " << d.name << " (" << a.type << ", " << a.seq << " tokens for a language model): best tiling per layer\n";
  std::cout << "  layer                           shape                                   time (us)   share  efficiency  bound            tiling\n";
  std::size_t unmapped = 0;
  for (const auto& r : rows) {
    std::cout << "  " << std::left << std::setw(31) << qcast::cli::printable(r.name) << " " << std::setw(38) << r.shape << std::right;
    if (!r.why.empty()) {
      ++unmapped;
      std::cout << "  not mapped: " << r.why << "\n";
      continue;
    }
    const double s = r.p.seconds * static_cast<double>(r.repeat);
    std::cout << std::setw(11) << fixed(s * 1e6, 1) << std::setw(7) << fixed(100 * s / total_s, 1) << "%" << std::setw(11)
              << fixed(100 * r.p.efficiency, 1) << "%  " << std::left << std::setw(15) << r.p.bound << std::right << "  " << r.tiling << "\n";
  }
  std::cout << "total " << fixed(total_s * 1e3, 3) << " ms, " << fixed(2 * total_macs / total_s / 1e9, 0) << " GFLOPS, efficiency "
            << fixed(100 * total_eff, 1) << "% of the array's peak (layers one after another, each with its own launch)";
  if (unmapped) std::cout << "; " << unmapped << " layers not mapped (not counted)";
  std::cout << "\n";
}

void run_npu(const NpuArgs& a) {
  if (!a.print_device.empty()) {
    std::cout << Device::builtin_yaml(a.print_device);
    return;
  }
  const Device d = load_device(a.device);
  (void)d.type(a.type);  // an unknown type is an error before any work
  if (!a.model.empty()) {
    if (!a.matmul.empty() || a.attention || !a.herd.empty() || !a.tiles.empty() || !a.attn_tiling.empty())
      throw qcast::Error("--model searches every layer; it does not take --matmul, --attention, --herd, --tiles or --attention-tiling");
    run_model(a, d);
    return;
  }
  if (!a.input_shapes.empty()) throw qcast::Error("--input-shape applies to --model");
  if (a.matmul.empty() == !a.attention)
    throw qcast::Error("give one workload: --matmul MxKxN, --attention (with --lq, --lk, --heads, --head-dim) or --model FILE");
  nlohmann::json j;
  j["device"] = d.name;
  j["peak_gmacs"] = d.peak_macs_per_cycle(a.type) * d.clock_ghz;
  if (!a.matmul.empty()) {
    if (!a.attn_tiling.empty()) throw qcast::Error("--attention-tiling is for --attention; a matmul takes --herd and --tiles");
    auto v = numbers(a.matmul, "--matmul", 3, "MxKxN, e.g. 2048x8192x2048");
    Matmul mm{v[0], v[1], v[2], a.type, a.out_bytes};
    std::vector<MatmulChoice> choices;
    if (!a.tiles.empty()) {
      if (a.herd.empty()) throw qcast::Error("--tiles needs --herd too (the tiling is evaluated as given)");
      auto h = numbers(a.herd, "--herd", 2, "AxB, e.g. 8x4");
      auto t = numbers(a.tiles, "--tiles", 4, "tile_m,tile_k_l2,tile_k_l1,tile_n, e.g. 64,256,32,128");
      MatmulTiling mt{static_cast<int>(h[0]), static_cast<int>(h[1]), t[0], t[1], t[2], t[3]};
      Prediction p = predict_matmul(d, mm, mt);
      if (!p.valid) throw qcast::Error("--tiles " + a.tiles + " on a " + a.herd + " herd: " + p.reason);
      choices.push_back({mt, p});
    } else {
      int hm = 0, hn = 0;
      if (!a.herd.empty()) {
        auto h = numbers(a.herd, "--herd", 2, "AxB, e.g. 8x4");
        if (h[0] > 64 || h[1] > 64) throw qcast::Error("--herd " + a.herd + " is larger than any array");
        hm = static_cast<int>(h[0]);
        hn = static_cast<int>(h[1]);
      }
      choices = search_matmul(d, mm, hm, hn);
    }
    j["problem"] = {{"matmul", {{"M", mm.M}, {"K", mm.K}, {"N", mm.N}}}, {"type", mm.type}, {"out_bytes", mm.out_bytes}};
    std::vector<std::pair<std::string, Prediction>> rows;
    if (emit_choices(j, choices, a, rows)) return;
    std::cout << "matmul " << mm.M << "x" << mm.K << "x" << mm.N << " (" << mm.type << " in, " << mm.out_bytes << "-byte out) on " << d.name
              << ": " << d.columns << "x" << d.rows << " cores, peak " << fixed(2 * d.peak_macs_per_cycle(a.type) * d.clock_ghz, 0)
              << " GFLOPS; " << choices.size() << " legal tilings, best first\n";
    print_rows(rows, d, a.top);
    return;
  }
  if (!a.herd.empty() || !a.tiles.empty()) throw qcast::Error("--herd / --tiles are for --matmul; attention takes --attention-tiling");
  if (a.lq < 1 || a.heads < 1 || a.head_dim < 1)
    throw qcast::Error("--attention needs --lq, --heads and --head-dim (and --lk, --kv-heads, --dv where they differ)");
  Attention at{a.lq, a.lk > 0 ? a.lk : a.lq, a.heads, a.kv_heads > 0 ? a.kv_heads : a.heads, a.head_dim, a.dv > 0 ? a.dv : a.head_dim,
               a.causal, a.type};
  std::vector<AttentionChoice> choices;
  if (!a.attn_tiling.empty()) {
    auto t = numbers(a.attn_tiling, "--attention-tiling", 5, "heads_per_unroll,q_tiles,cascade,lqp,lkp, e.g. 2,4,4,256,64");
    for (int k = 0; k < 3; ++k)
      if (t[k] > 64) throw qcast::Error("--attention-tiling " + a.attn_tiling + ": more columns or rows than any array");
    AttentionTiling tt{static_cast<int>(t[0]), static_cast<int>(t[1]), static_cast<int>(t[2]), t[3], t[4]};
    Prediction p = predict_attention(d, at, tt);
    if (!p.valid) throw qcast::Error("--attention-tiling " + a.attn_tiling + ": " + p.reason);
    choices.push_back({tt, p});
  } else {
    choices = search_attention(d, at);
  }
  j["problem"] = {{"attention",
                   {{"lq", at.lq}, {"lk", at.lk}, {"heads", at.heads}, {"kv_heads", at.kv_heads}, {"dk", at.dk}, {"dv", at.dv}, {"causal", at.causal}}},
                  {"type", at.type}};
  std::vector<std::pair<std::string, Prediction>> rows;
  if (emit_choices(j, choices, a, rows)) return;
  std::cout << "attention lq " << at.lq << ", lk " << at.lk << ", " << at.heads << " heads / " << at.kv_heads << " kv, dk " << at.dk << ", dv " << at.dv
            << (at.causal ? ", causal" : "") << " (" << at.type << ") on " << d.name << "; " << choices.size()
            << " legal tilings, best first (useful MACs: causal counts half)\n";
  print_rows(rows, d, a.top);
}

qcast::cli::Registrar reg("npu", [](CLI::App& root) {
  auto* sub = root.add_subcommand("npu", "a matmul or LLaMA attention on an AIE-style spatial NPU (MLIR-AIR template): tilings ranked by predicted cycles");
  auto a = std::make_shared<NpuArgs>();
  sub->add_option("--device", a->device, "built-in device npu1|npu2, or a device YAML (see --print-device)")->capture_default_str();
  sub->add_option("--print-device", a->print_device, "print a built-in device's YAML (npu1|npu2), to edit and pass to --device");
  sub->add_option("--matmul", a->matmul, "C[M,N] = A[M,K] B[K,N]: MxKxN, e.g. 2048x8192x2048");
  sub->add_option("--model", a->model, "a model file: every layer's best tiling (LLaMA: linear layers at --seq tokens and each layer's attention; ONNX: Conv / Gemm / MatMul at batch 1)");
  sub->add_option("--seq", a->seq, "--model, language models: tokens (prefill length)")->capture_default_str()->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  qcast::cli::add_input_shape_option(sub, a->input_shapes);
  sub->add_option("--type", a->type, "input element type (a type the device lists: bf16, int8, int16)")->capture_default_str();
  sub->add_option("--out-bytes", a->out_bytes, "bytes per output element (4: fp32 / int32 out)")->capture_default_str()->check(CLI::Range(1, 16));
  sub->add_option("--herd", a->herd, "matmul: only herds of this shape, e.g. 8x4 (default: every herd that fits)");
  sub->add_option("--tiles", a->tiles, "matmul: evaluate this tiling only: tile_m,tile_k_l2,tile_k_l1,tile_n (needs --herd)");
  sub->add_flag("--attention", a->attention, "a fused attention layer (FlashAttention as MLIR-AIR lays it out)");
  sub->add_option("--lq", a->lq, "attention: query length")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  sub->add_option("--lk", a->lk, "attention: key / value length (default: --lq)")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  sub->add_option("--heads", a->heads, "attention: query heads")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  sub->add_option("--kv-heads", a->kv_heads, "attention: key / value heads (default: --heads)")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  sub->add_option("--head-dim", a->head_dim, "attention: dk")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  sub->add_option("--dv", a->dv, "attention: dv (default: --head-dim)")->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 24));
  sub->add_flag("--causal", a->causal, "attention: causal mask (useful MACs halve; the modelled kernel masks, it does not skip)");
  sub->add_option("--attention-tiling", a->attn_tiling, "attention: evaluate this tiling only: heads_per_unroll,q_tiles,cascade,lqp,lkp");
  sub->add_option("--top", a->top, "rows of the ranking to print (0: all)")->capture_default_str()->check(CLI::Range(0, 100000000));
  sub->add_flag("--json", a->json, "print JSON");
  sub->callback([a] { run_npu(*a); });
});

}  // namespace
