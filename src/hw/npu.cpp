// The spatial NPU template (MLIR-AIR): see include/qcast/npu.hpp and docs/cost.md ("A spatial NPU").
#include "qcast/npu.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

#include "hw/yaml_util.hpp"
#include "qcast/error.hpp"

namespace qcast::hw::npu {

namespace {

// The built-in devices. Every number has its source in docs/cost.md ("A spatial NPU"); the ones marked
// "calibrated" were fitted to one published measurement each and the rest of the measurements are then
// predictions.
const char* kNpu1 = R"(# Ryzen AI NPU1 (Phoenix / Hawk Point, AIE-ML): 4 columns x 4 rows of compute tiles.
npu:
  name: npu1
  columns: 4
  rows: 4
  l1_bytes: 64512              # 64 KB data memory per core (mlir-aie AIE2TargetModel) less the 1 KB stack
  l2_bytes: 524288             # per memory tile, one per column (mlir-aie AIE2TargetModel)
  clock_ghz: 1.0               # xdna-driver: 2 TOPS per column at ~1.03 GHz
  stream_bytes_per_cycle: 4    # 32-bit streams (AM020)
  core_in_channels: 2
  core_out_channels: 2
  l1_load_bytes_per_cycle: 64  # 512-bit load (AM020)
  l1_store_bytes_per_cycle: 32 # 256-bit store (AM020)
  l3_gbps: 32                  # upper bound: 4 columns x 2 shim MM2S channels x 4 B x 1 GHz (not measured)
  launch_us: 64                # npu2's (the same XRT runtime); no npu1 measurement
  kernel_call_cycles: 0
  attention_iteration_cycles: 107575  # npu2's FlashAttention figures; no npu1 measurement
  attention_launch_us: 576
  types:
    bf16:  {bytes: 2, macs_per_cycle: 128, mmul: [4, 8, 4], kernel_efficiency: 0.81, acc_bytes: 4, attention_efficiency: 0.0653}
    int8:  {bytes: 1, macs_per_cycle: 256, mmul: [4, 8, 8], kernel_efficiency: 0.81, acc_bytes: 4}
    int16: {bytes: 2, macs_per_cycle: 64,  mmul: [4, 4, 4], kernel_efficiency: 0.81, acc_bytes: 4}
)";

const char* kNpu2 = R"(# Ryzen AI NPU2 (Strix, AIE2P): 8 columns x 4 rows of compute tiles.
npu:
  name: npu2
  columns: 8
  rows: 4
  l1_bytes: 64512              # 64 KB data memory per core less the 1 KB stack
  l2_bytes: 524288             # per memory tile, one per column
  clock_ghz: 1.8               # xdna-driver npu4: top H-clock 1800 MHz (4096 ops per column per cycle)
  stream_bytes_per_cycle: 4    # 32-bit streams
  core_in_channels: 2
  core_out_channels: 2
  l1_load_bytes_per_cycle: 64
  l1_store_bytes_per_cycle: 32
  l3_gbps: 41.3                # calibrated with launch_us on two MLIR-AIR bf16 GEMMs: 2048x8192x2048 at
  launch_us: 64                #   9797 GFLOPS and 512x512x512 at 1791 GFLOPS (docs/cost.md)
  kernel_call_cycles: 0
  attention_iteration_cycles: 107575  # calibrated with attention_launch_us and bf16 attention_efficiency on three
  attention_launch_us: 576            #   MLIR-AIR FlashAttention runs (docs/cost.md)
  types:
    # bf16 runs on the 8x8x8 block-float (BFP16) matrix unit: operands are converted in the kernel.
    bf16:  {bytes: 2, macs_per_cycle: 512, mmul: [8, 8, 8], kernel_efficiency: 0.5, acc_bytes: 4, attention_efficiency: 0.0653}
    int8:  {bytes: 1, macs_per_cycle: 512, mmul: [8, 8, 8], kernel_efficiency: 0.81, acc_bytes: 4}
    int16: {bytes: 2, macs_per_cycle: 128, mmul: [8, 2, 8], kernel_efficiency: 0.81, acc_bytes: 4}
)";

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

bool fits_array(const Device& d, int a, int b) {
  // A herd of a x b cores placed either way round on the columns x rows array.
  return (a <= d.columns && b <= d.rows) || (a <= d.rows && b <= d.columns);
}

double positive(const YAML::Node& n, const std::string& source, const std::string& field, bool zero_ok = false) {
  const double v = detail::as_double(n, source, field);
  // Rates below 1e-6 would make every time overflow to infinity: no device is that slow.
  if (!std::isfinite(v) || v < 0 || (!zero_ok && v < 1e-6) || v > 1e12)
    throw Error(source + ": '" + field + "' must be " + (zero_ok ? "a number in [0, 1e12]" : "a number in [1e-6, 1e12]"));
  return v;
}

std::int64_t count(const YAML::Node& n, const std::string& source, const std::string& field, std::int64_t hi) {
  const std::int64_t v = detail::as_int(n, source, field);
  if (v < 1 || v > hi) throw Error(source + ": '" + field + "' must be an integer in 1.." + std::to_string(hi));
  return v;
}

// Largest problem dimension the model takes: every product below stays far inside a double's exact range.
constexpr std::int64_t kMaxDim = std::int64_t{1} << 24;

void check_dim(std::int64_t v, const char* name) {
  if (v < 1 || v > kMaxDim)
    throw Error(std::string("npu: ") + name + " must be in 1.." + std::to_string(kMaxDim) + ", got " + std::to_string(v));
}

Prediction invalid(std::string why) {
  Prediction p;
  p.reason = std::move(why);
  return p;
}

void finish(const Device& d, const std::string& type, Prediction& p, double launch_us) {
  const double launch = launch_us * 1e-6 * d.clock_ghz * 1e9;
  p.overhead_cycles += launch;
  const double pipe = std::max({p.core_cycles, p.stream_cycles, p.l3_cycles});
  p.bound = pipe == p.core_cycles ? "compute" : pipe == p.stream_cycles ? "L2->L1 streams" : "L3";
  p.cycles = pipe + p.overhead_cycles;
  p.seconds = p.cycles / (d.clock_ghz * 1e9);
  p.efficiency = p.macs / (d.peak_macs_per_cycle(type) * p.cycles);
  p.gflops = 2 * p.macs / p.seconds / 1e9;
  p.valid = true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Device
// ---------------------------------------------------------------------------------------------

const ElementType& Device::type(const std::string& name) const {
  for (const auto& t : types)
    if (t.name == name) return t;
  std::string known;
  for (const auto& t : types) known += (known.empty() ? "" : ", ") + t.name;
  throw Error("npu: device '" + this->name + "' has no element type '" + name + "' (it has: " + known + ")");
}

double Device::peak_macs_per_cycle(const std::string& t) const {
  return static_cast<double>(type(t).macs_per_cycle) * static_cast<double>(cores());
}

Device Device::from_yaml_text(const std::string& text, const std::string& source) {
  YAML::Node root = detail::load(text, source);
  try {
    if (!root.IsMap() || !root["npu"] || !root["npu"].IsMap())
      throw Error(source + ": an NPU device file has a top-level 'npu:' mapping (see `qcast npu --print-device npu2`)");
    const YAML::Node n = root["npu"];
    static const std::set<std::string> known = {
        "name", "columns", "rows", "l1_bytes", "l2_bytes", "clock_ghz", "stream_bytes_per_cycle", "core_in_channels",
        "core_out_channels", "l1_load_bytes_per_cycle", "l1_store_bytes_per_cycle", "l3_gbps", "launch_us",
        "kernel_call_cycles", "attention_iteration_cycles", "attention_launch_us", "types"};
    for (auto it : n) {
      const std::string k = it.first.as<std::string>();
      if (!known.count(k)) throw Error(source + ": unknown key 'npu." + k + "'" + detail::at_line(it.first.Mark()));
    }
    Device d;
    d.name = n["name"] ? n["name"].as<std::string>() : source;
    auto need = [&](const char* k) {
      if (!n[k]) throw Error(source + ": 'npu." + k + "' is missing");
      return n[k];
    };
    d.columns = static_cast<int>(count(need("columns"), source, "columns", 64));
    d.rows = static_cast<int>(count(need("rows"), source, "rows", 64));
    d.l1_bytes = count(need("l1_bytes"), source, "l1_bytes", std::int64_t{1} << 30);
    d.l2_bytes = count(need("l2_bytes"), source, "l2_bytes", std::int64_t{1} << 34);
    d.clock_ghz = positive(need("clock_ghz"), source, "clock_ghz");
    if (d.clock_ghz > 100) throw Error(source + ": 'clock_ghz' above 100 GHz is not a clock");
    d.stream_bytes_per_cycle = positive(need("stream_bytes_per_cycle"), source, "stream_bytes_per_cycle");
    d.core_in_channels = static_cast<int>(count(need("core_in_channels"), source, "core_in_channels", 64));
    d.core_out_channels = static_cast<int>(count(need("core_out_channels"), source, "core_out_channels", 64));
    d.l1_load_bytes_per_cycle = positive(need("l1_load_bytes_per_cycle"), source, "l1_load_bytes_per_cycle");
    d.l1_store_bytes_per_cycle = positive(need("l1_store_bytes_per_cycle"), source, "l1_store_bytes_per_cycle");
    d.l3_gbps = positive(need("l3_gbps"), source, "l3_gbps");
    if (n["launch_us"]) d.launch_us = positive(n["launch_us"], source, "launch_us", true);
    if (n["kernel_call_cycles"]) d.kernel_call_cycles = positive(n["kernel_call_cycles"], source, "kernel_call_cycles", true);
    if (n["attention_iteration_cycles"])
      d.attention_iteration_cycles = positive(n["attention_iteration_cycles"], source, "attention_iteration_cycles", true);
    if (n["attention_launch_us"]) d.attention_launch_us = positive(n["attention_launch_us"], source, "attention_launch_us", true);
    const YAML::Node types = need("types");
    if (!types.IsMap() || types.size() == 0) throw Error(source + ": 'npu.types' must map element types to their costs");
    for (auto it : types) {
      ElementType t;
      t.name = it.first.as<std::string>();
      const std::string w = source + ": types." + t.name;
      const YAML::Node v = it.second;
      if (!v.IsMap()) throw Error(w + " must be a mapping {bytes, macs_per_cycle, mmul, ...}");
      static const std::set<std::string> tk = {"bytes", "macs_per_cycle", "mmul", "kernel_efficiency", "acc_bytes",
                                               "attention_efficiency"};
      for (auto f : v)
        if (!tk.count(f.first.as<std::string>())) throw Error(w + ": unknown key '" + f.first.as<std::string>() + "'");
      if (!v["bytes"] || !v["macs_per_cycle"]) throw Error(w + " needs 'bytes' and 'macs_per_cycle'");
      t.bytes = static_cast<int>(count(v["bytes"], w, "bytes", 16));
      t.macs_per_cycle = count(v["macs_per_cycle"], w, "macs_per_cycle", 1 << 20);
      if (v["mmul"]) {
        if (!v["mmul"].IsSequence() || v["mmul"].size() != 3) throw Error(w + ": 'mmul' must be [r, s, t]");
        t.mmul_r = static_cast<int>(count(v["mmul"][0], w, "mmul r", 256));
        t.mmul_s = static_cast<int>(count(v["mmul"][1], w, "mmul s", 256));
        t.mmul_t = static_cast<int>(count(v["mmul"][2], w, "mmul t", 256));
      }
      if (v["kernel_efficiency"]) {
        t.kernel_efficiency = positive(v["kernel_efficiency"], w, "kernel_efficiency");
        if (t.kernel_efficiency > 1) throw Error(w + ": 'kernel_efficiency' is a fraction of the peak, in (0, 1]");
      }
      if (v["acc_bytes"]) t.acc_bytes = static_cast<int>(count(v["acc_bytes"], w, "acc_bytes", 16));
      if (v["attention_efficiency"]) {
        t.attention_efficiency = positive(v["attention_efficiency"], w, "attention_efficiency");
        if (t.attention_efficiency > 1) throw Error(w + ": 'attention_efficiency' is a fraction of the peak, in (0, 1]");
      }
      for (const auto& o : d.types)
        if (o.name == t.name) throw Error(w + " is given twice");
      d.types.push_back(t);
    }
    return d;
  } catch (const YAML::Exception& e) {
    throw detail::yaml_error(source, e, "NPU device");
  }
}

Device Device::from_yaml_file(const std::string& path) { return from_yaml_text(detail::read_text(path, "NPU device"), path); }

std::vector<std::string> Device::builtin_names() { return {"npu1", "npu2"}; }

std::string Device::builtin_yaml(const std::string& name) {
  if (name == "npu1") return kNpu1;
  if (name == "npu2") return kNpu2;
  throw Error("npu: no built-in device '" + name + "' (built in: npu1, npu2; or give a device YAML file)");
}

Device Device::builtin(const std::string& name) { return from_yaml_text(builtin_yaml(name), name); }

// ---------------------------------------------------------------------------------------------
// Matmul
// ---------------------------------------------------------------------------------------------

std::string MatmulTiling::text() const {
  std::ostringstream s;
  s << "herd " << herd_m << "x" << herd_n << ", tiles m" << tile_m << " kL2 " << tile_k_l2 << " kL1 " << tile_k_l1 << " n" << tile_n;
  return s.str();
}

Prediction predict_matmul(const Device& d, const Matmul& mm, const MatmulTiling& t) {
  check_dim(mm.M, "M");
  check_dim(mm.K, "K");
  check_dim(mm.N, "N");
  const ElementType& et = d.type(mm.type);
  if (mm.out_bytes < 1 || mm.out_bytes > 16) throw Error("npu: output bytes per element must be in 1..16");
  for (std::int64_t v : {t.tile_m, t.tile_k_l2, t.tile_k_l1, t.tile_n})
    if (v < 1 || v > kMaxDim) return invalid("tile sizes must be in 1.." + std::to_string(kMaxDim));
  if (t.herd_m < 1 || t.herd_n < 1 || !fits_array(d, t.herd_m, t.herd_n))
    return invalid("a " + std::to_string(t.herd_m) + "x" + std::to_string(t.herd_n) + " herd does not fit the " +
                   std::to_string(d.columns) + "x" + std::to_string(d.rows) + " array");
  if (t.tile_m % (2 * et.mmul_r) || t.tile_n % (2 * et.mmul_t) || t.tile_k_l1 % et.mmul_s)
    return invalid("tile_m / tile_n must be multiples of " + std::to_string(2 * et.mmul_r) + " / " + std::to_string(2 * et.mmul_t) +
                   " and tile_k_l1 of " + std::to_string(et.mmul_s) + " (the " + mm.type + " micro-kernel's 2x2 blocks of mmul<" +
                   std::to_string(et.mmul_r) + "," + std::to_string(et.mmul_s) + "," + std::to_string(et.mmul_t) + ">)");
  if (t.tile_k_l2 % t.tile_k_l1) return invalid("tile_k_l2 must be a multiple of tile_k_l1");
  const double ib = et.bytes, ab = et.acc_bytes, ob = mm.out_bytes;
  const double tm = static_cast<double>(t.tile_m), tn = static_cast<double>(t.tile_n);
  const double k1 = static_cast<double>(t.tile_k_l1), k2 = static_cast<double>(t.tile_k_l2);
  const double hm = t.herd_m, hn = t.herd_n;

  Prediction p;
  // L1 per core: A and B tiles double-buffered, the accumulator tile once (it stays until the K loop ends).
  const double l1 = 2 * (tm * k1 + k1 * tn) * ib + tm * tn * ab;
  p.l1_bytes_used = static_cast<std::int64_t>(l1);
  if (l1 > static_cast<double>(d.l1_bytes))
    return invalid("L1: " + std::to_string(p.l1_bytes_used) + " bytes per core (A, B double-buffered, C) > " + std::to_string(d.l1_bytes));
  // L2: the herd's A and B blocks double-buffered and its C block on the way out, over the memory tiles of
  // the columns the herd occupies.
  const int herd_cols = std::min<int>(d.columns, static_cast<int>(ceil_div(static_cast<std::int64_t>(t.herd_m) * t.herd_n, d.rows)));
  const double l2 = (2 * (hm * tm * k2 + k2 * hn * tn) * ib + hm * tm * hn * tn * ob) / herd_cols;
  p.l2_bytes_used = static_cast<std::int64_t>(std::ceil(l2));
  if (l2 > static_cast<double>(d.l2_bytes))
    return invalid("L2: " + std::to_string(p.l2_bytes_used) + " bytes per memory tile > " + std::to_string(d.l2_bytes));

  // Padded problem: MLIR-AIR needs M, N multiples of the herd's block and K of tile_k_l2; qcast pads and
  // counts the padding as work done.
  const double bm = hm * tm, bn = hn * tn;
  const double Mp = static_cast<double>(ceil_div(mm.M, t.herd_m * t.tile_m)) * bm;
  const double Np = static_cast<double>(ceil_div(mm.N, t.herd_n * t.tile_n)) * bn;
  const double Kp = static_cast<double>(ceil_div(mm.K, t.tile_k_l2)) * k2;
  const double blocks = (Mp / bm) * (Np / bn);
  const double steps = Kp / k1;  // kernel calls per output block per core

  // One kernel call: the MACs at the kernel's rate, plus loading and storing the accumulator tile.
  const double call = tm * k1 * tn / (static_cast<double>(et.macs_per_cycle) * et.kernel_efficiency) +
                      tm * tn * ab * (1 / d.l1_load_bytes_per_cycle + 1 / d.l1_store_bytes_per_cycle) + d.kernel_call_cycles;
  // Its inputs over the core's input streams (A and B on their own channels when there are two).
  const double a_bytes = tm * k1 * ib, b_bytes = k1 * tn * ib;
  const double stream = d.core_in_channels >= 2 ? std::max(a_bytes, b_bytes) / d.stream_bytes_per_cycle
                                                : (a_bytes + b_bytes) / d.stream_bytes_per_cycle;
  // The accumulator tile leaves once per block; it is single-buffered, so the next block waits for it.
  const double drain = tm * tn * ob / d.stream_bytes_per_cycle;
  p.core_cycles = blocks * (steps * call + drain);
  p.stream_cycles = blocks * (steps * stream + drain);
  // L3: each output block reads its A rows and B columns over the whole K; C is written once.
  p.l3_bytes = blocks * (bm * Kp + Kp * bn) * ib + Mp * Np * ob;
  const double l3_bytes_per_cycle = d.l3_gbps / d.clock_ghz;
  p.l3_cycles = p.l3_bytes / l3_bytes_per_cycle;
  // Not overlapped: the first tiles' fill (L3 -> L2 -> L1) and the last block's drain to L3.
  p.overhead_cycles = (bm * k2 + k2 * bn) * ib / l3_bytes_per_cycle + stream + bm * bn * ob / l3_bytes_per_cycle;
  p.macs = static_cast<double>(mm.M) * static_cast<double>(mm.K) * static_cast<double>(mm.N);
  finish(d, mm.type, p, d.launch_us);
  return p;
}

std::vector<MatmulChoice> search_matmul(const Device& d, const Matmul& mm, int fixed_herd_m, int fixed_herd_n) {
  const ElementType& et = d.type(mm.type);
  std::vector<std::pair<int, int>> herds;
  for (int a = 1; a <= std::max(d.columns, d.rows); ++a)
    for (int b = 1; b <= std::max(d.columns, d.rows); ++b) {
      if (!fits_array(d, a, b)) continue;
      if (fixed_herd_m > 0 && (a != fixed_herd_m || b != fixed_herd_n)) continue;
      herds.emplace_back(a, b);
    }
  if (herds.empty())
    throw Error("npu: a " + std::to_string(fixed_herd_m) + "x" + std::to_string(fixed_herd_n) + " herd does not fit the " +
                std::to_string(d.columns) + "x" + std::to_string(d.rows) + " array of '" + d.name + "'");
  std::vector<MatmulChoice> out;
  const std::int64_t sizes[] = {8, 16, 32, 64, 128, 256, 512};
  for (auto [hm, hn] : herds)
    for (std::int64_t tm : sizes)
      for (std::int64_t tn : sizes)
        for (std::int64_t k1 : sizes) {
          if (tm % (2 * et.mmul_r) || tn % (2 * et.mmul_t) || k1 % et.mmul_s) continue;
          for (std::int64_t k2 = k1; k2 <= 4096; k2 *= 2) {
            if (k2 > k1 && k2 / 2 >= mm.K) break;  // deeper L2 blocks than K only pad
            MatmulTiling t{hm, hn, tm, k2, k1, tn};
            Prediction p = predict_matmul(d, mm, t);
            if (p.valid) out.push_back({t, p});
          }
        }
  if (out.empty()) throw Error("npu: no tiling of this matmul fits '" + d.name + "' (L1 " + std::to_string(d.l1_bytes) + " bytes per core)");
  // Best first. Within 0.1 % (one bucket of a log scale) the model cannot tell tilings apart; there the one
  // with fewer, larger L3 -> L2 transfers (deeper tile_k_l2) ranks first, as the safer choice on hardware
  // whose per-transfer costs the model does not carry.
  auto bucket = [](double cycles) { return std::llround(std::log(cycles) / std::log1p(1e-3)); };
  std::stable_sort(out.begin(), out.end(), [&](const MatmulChoice& a, const MatmulChoice& b) {
    const auto ba = bucket(a.prediction.cycles), bb = bucket(b.prediction.cycles);
    if (ba != bb) return ba < bb;
    return a.tiling.tile_k_l2 > b.tiling.tile_k_l2;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------

std::string AttentionTiling::text() const {
  std::ostringstream s;
  s << "heads/unroll " << heads_per_unroll << ", q tiles " << q_tiles << ", cascade " << cascade << ", lqp " << lqp << ", lkp " << lkp;
  return s.str();
}

Prediction predict_attention(const Device& d, const Attention& a, const AttentionTiling& t) {
  check_dim(a.lq, "lq");
  check_dim(a.lk, "lk");
  check_dim(a.heads, "heads");
  check_dim(a.kv_heads, "kv_heads");
  check_dim(a.dk, "dk");
  check_dim(a.dv, "dv");
  if (a.heads % a.kv_heads) throw Error("npu: heads (" + std::to_string(a.heads) + ") must be a multiple of kv_heads (" + std::to_string(a.kv_heads) + ")");
  const ElementType& et = d.type(a.type);
  if (t.heads_per_unroll < 1 || t.q_tiles < 1 || t.cascade < 1 || t.lqp < 1 || t.lkp < 1 || t.lqp > kMaxDim || t.lkp > kMaxDim)
    return invalid("attention tiling parameters must be positive");
  const std::int64_t cols = static_cast<std::int64_t>(t.heads_per_unroll) * t.q_tiles;
  if (cols > d.columns || t.cascade > d.rows)
    return invalid("heads_per_unroll x q_tiles (" + std::to_string(cols) + ") columns by cascade (" + std::to_string(t.cascade) +
                   ") rows does not fit the " + std::to_string(d.columns) + "x" + std::to_string(d.rows) + " array");
  // Each column's shim DMA has two input channels: more heads per unroll than that run out of channels.
  if (t.heads_per_unroll > d.core_in_channels) return invalid("heads_per_unroll above the shim's input channels per column");
  if (t.lqp % t.q_tiles) return invalid("lqp must be a multiple of q_tiles");
  const std::int64_t tile_q = t.lqp / t.q_tiles;
  if (a.causal && tile_q != t.lkp) return invalid("causal masking works on square blocks: lqp / q_tiles must equal lkp");
  if (tile_q % (2 * et.mmul_r) || t.lkp % (2 * et.mmul_t)) return invalid("tile_q / lkp must be multiples of the micro-kernel's blocks");
  const double ib = et.bytes;
  const double tq = static_cast<double>(tile_q), lkp = static_cast<double>(t.lkp);
  // MLIR-AIR's kernel takes head dimensions in multiples of lkp; others are padded up to them (the padding
  // counts as work, not as useful MACs).
  const double dk = std::ceil(static_cast<double>(a.dk) / lkp) * lkp, dv = std::ceil(static_cast<double>(a.dv) / lkp) * lkp;
  const double dv_tile = lkp;
  const double dv_chunks = dv / lkp;

  Prediction p;
  // L1: the Q tile, one double-buffered lkp x lkp buffer that K and V pass through slab by slab (MLIR-AIR's
  // shared-buffer mode), the scores / probabilities and the output accumulator (both bf16 in its kernel).
  const double l1 = tq * dk * ib + 2 * lkp * lkp * ib + tq * lkp * ib + tq * dv_tile * ib;
  p.l1_bytes_used = static_cast<std::int64_t>(l1);
  if (l1 > static_cast<double>(d.l1_bytes))
    return invalid("L1: " + std::to_string(p.l1_bytes_used) + " bytes per core > " + std::to_string(d.l1_bytes));
  const double iterations = static_cast<double>(ceil_div(a.heads, t.heads_per_unroll)) * static_cast<double>(ceil_div(a.lq, t.lqp));
  const double chunks = std::ceil(static_cast<double>(a.lk) / t.cascade / lkp);
  // One chunk per dv pass: S = Q K^T, the online softmax on the vector unit, O += P V. The kernel masks
  // causal blocks instead of skipping them (MLIR-AIR measures 39.6 ms causal, 40.1 ms not, at 16384).
  const double rate = static_cast<double>(et.macs_per_cycle) * et.attention_efficiency;
  const double chunk = dv_chunks * ((tq * dk * lkp + tq * lkp * dv_tile) / rate + d.kernel_call_cycles);
  const double kb = lkp * dk * ib, vb = lkp * dv_tile * ib;
  const double chunk_stream = dv_chunks * (d.core_in_channels >= 2 ? std::max(kb, vb) : kb + vb) / d.stream_bytes_per_cycle;
  p.core_cycles = iterations * (chunks * chunk + d.attention_iteration_cycles);
  p.stream_cycles = iterations * chunks * chunk_stream;
  // L3 per iteration: the Q rows, K and V of its heads (K again for every dv pass), the O rows.
  const double hpu = t.heads_per_unroll, lqp = static_cast<double>(t.lqp), lk = static_cast<double>(a.lk);
  p.l3_bytes = iterations * hpu * (lqp * dk + lk * (dk * dv_chunks + dv) + lqp * dv) * ib;
  const double l3_bytes_per_cycle = d.l3_gbps / d.clock_ghz;
  p.l3_cycles = p.l3_bytes / l3_bytes_per_cycle;
  const double lqd = static_cast<double>(a.lq), causal = a.causal ? 0.5 : 1.0;
  p.macs = static_cast<double>(a.heads) * lqd * lk * static_cast<double>(a.dk + a.dv) * causal;
  finish(d, a.type, p, d.attention_launch_us);
  return p;
}

std::vector<AttentionChoice> search_attention(const Device& d, const Attention& a) {
  std::vector<AttentionChoice> out;
  for (int hpu = 1; hpu <= d.columns; ++hpu)
    for (int qt = 1; hpu * qt <= d.columns; ++qt)
      for (int cs = 1; cs <= d.rows; ++cs)
        for (std::int64_t tq : {16, 32, 64, 128, 256})
          for (std::int64_t lkp : {16, 32, 64, 128, 256}) {
            AttentionTiling t{hpu, qt, cs, tq * qt, lkp};
            Prediction p = predict_attention(d, a, t);
            if (p.valid) out.push_back({t, p});
          }
  if (out.empty()) throw Error("npu: no attention tiling fits '" + d.name + "' (L1 " + std::to_string(d.l1_bytes) + " bytes per core)");
  std::stable_sort(out.begin(), out.end(), [](const AttentionChoice& x, const AttentionChoice& y) {
    return x.prediction.cycles < y.prediction.cycles;
  });
  return out;
}

}  // namespace qcast::hw::npu
