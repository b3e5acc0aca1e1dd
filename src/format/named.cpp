// The table of named formats: the one list that the parser, `qcast formats`, GGUF, the hardware bit
// widths, study, bench and the generated tests read. Adding a named format is adding a row here.
#include <algorithm>
#include <cctype>

#include "format/text.hpp"
#include "qcast/format.hpp"

namespace qcast {

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const std::vector<NamedFormat>& format_table() {
  // name, composition, aliases, ggml type, storage bits, fast (SIMD kernels claimed), description.
  // ml_dtypes names (float8_e4m3fn, ...) and ggml names are aliases of the row with the same values.
  static const std::vector<NamedFormat> t = {
      {"fp32", "fp32", {"float32", "f32"}, "F32", 0, false, "IEEE binary32"},
      {"tf32", "tf32", {"tensorfloat32"}, "", 32, false, "NVIDIA TensorFloat-32 (1+8+10 bits, stored in 32)"},
      {"bf16", "bf16", {"bfloat16"}, "BF16", 0, true, "bfloat16"},
      {"fp16", "fp16", {"float16", "half", "f16"}, "F16", 0, true, "IEEE binary16"},
      {"e5m2", "e5m2", {"float8_e5m2", "fp8_e5m2"}, "", 0, true, "OCP FP8 E5M2 (IEEE-style inf / NaN)"},
      {"e4m3", "e4m3", {"float8_e4m3fn", "fp8", "fp8_e4m3"}, "", 0, true, "OCP FP8 E4M3 (no inf, NaN = S.1111.111)"},
      {"e4m3ieee", "e4m3ieee", {"float8_e4m3"}, "", 0, true, "IEEE-style FP8 E4M3 (inf and NaN in the top binade)"},
      {"e4m3fnuz", "e4m3fnuz", {"float8_e4m3fnuz"}, "", 0, false, "FP8 E4M3, bias 8, no inf, no -0 (NaN = 0x80)"},
      {"e4m3b11fnuz", "e4m3b11fnuz", {"float8_e4m3b11fnuz"}, "", 0, false, "FP8 E4M3, bias 11, no inf, no -0 (NaN = 0x80)"},
      {"e5m2fnuz", "e5m2fnuz", {"float8_e5m2fnuz"}, "", 0, false, "FP8 E5M2, bias 16, no inf, no -0 (NaN = 0x80)"},
      {"e3m4", "e3m4", {"float8_e3m4"}, "", 0, true, "IEEE-style FP8 E3M4"},
      {"e3m2", "e3m2", {"float6_e3m2fn", "fp6_e3m2"}, "", 0, true, "OCP FP6 E3M2 (every code finite)"},
      {"e2m3", "e2m3", {"float6_e2m3fn", "fp6_e2m3"}, "", 0, true, "OCP FP6 E2M3 (every code finite)"},
      {"e2m1", "e2m1", {"float4_e2m1fn", "fp4", "fp4_e2m1"}, "", 0, true, "OCP FP4 E2M1 (every code finite)"},
      {"e8m0", "e8m0", {"float8_e8m0fnu"}, "", 0, false, "OCP E8M0 scale (unsigned power of two, NaN = 0xff)"},
      {"ue4m3", "ue4m3", {}, "", 0, false, "unsigned E4M3 (NVFP4 block scales)"},
      {"int8", "int8", {}, "", 0, true, "two's-complement int8, unscaled"},
      {"int4", "int4", {}, "", 0, true, "two's-complement int4, unscaled"},
      {"int2", "int2", {}, "", 0, true, "two's-complement int2, unscaled"},
      {"uint8", "uint8", {}, "", 0, false, "unsigned int8, unscaled"},
      {"uint4", "uint4", {}, "", 0, false, "unsigned int4, unscaled"},
      {"uint2", "uint2", {}, "", 0, false, "unsigned int2, unscaled"},
      {"mxfp8", "e4m3@e8m0/b32/floor", {"mxfp8_e4m3"}, "", 0, true, "OCP MXFP8 (E4M3, E8M0 scale per 32)"},
      {"mxfp8_e5m2", "e5m2@e8m0/b32/floor", {}, "", 0, true, "OCP MXFP8 (E5M2, E8M0 scale per 32)"},
      {"mxfp6_e3m2", "e3m2@e8m0/b32/floor", {}, "", 0, true, "OCP MXFP6 (E3M2, E8M0 scale per 32)"},
      {"mxfp6_e2m3", "e2m3@e8m0/b32/floor", {"mxfp6"}, "", 0, true, "OCP MXFP6 (E2M3, E8M0 scale per 32)"},
      {"mxfp4", "e2m1@e8m0/b32/floor", {}, "MXFP4", 0, true, "OCP MXFP4 (E2M1, E8M0 scale per 32)"},
      {"mxint8", "int8f6@e8m0/b32/floor", {}, "", 0, true, "OCP MXINT8 (int8 with 6 fraction bits, E8M0 scale per 32)"},
      {"mxfp8_rceil", "e4m3@e8m0/b32/rceil", {"mxfp8_e4m3_rceil"}, "", 0, true,
       "MXFP8 with the RCEIL scale (torchao / cuBLAS: ceil of the float32 amax / 448)"},
      {"mxfp8_e5m2_rceil", "e5m2@e8m0/b32/rceil", {}, "", 0, true, "MXFP8 E5M2 with the RCEIL scale"},
      {"mxfp6_e3m2_rceil", "e3m2@e8m0/b32/rceil", {}, "", 0, true, "MXFP6 E3M2 with the RCEIL scale"},
      {"mxfp6_e2m3_rceil", "e2m3@e8m0/b32/rceil", {}, "", 0, true, "MXFP6 E2M3 with the RCEIL scale"},
      {"mxfp4_rceil", "e2m1@e8m0/b32/rceil", {}, "MXFP4", 0, true, "MXFP4 with the RCEIL scale (torchao / cuBLAS)"},
      {"nvfp4", "e2m1@ue4m3+fp32/b16/amax", {}, "", 0, true, "NVIDIA NVFP4 (E2M1, UE4M3 scale per 16, fp32 tensor scale)"},
      {"nf4", "nf4@fp32/b64/amax", {}, "", 0, true, "QLoRA NormalFloat4 (codebook, fp32 absmax per 64)"},
      {"q8_0", "int8@fp16/b32", {}, "Q8_0", 0, true,
       "int8 with an fp16 scale per 32 (stored as ggml Q8_0; qcast's round-to-nearest-even quantizer)"},
      {"q4_0", "int4@fp16/b32", {}, "Q4_0", 0, true,
       "symmetric int4 with an fp16 scale per 32 (stored as ggml Q4_0; codes -7..7)"},
      // llama.cpp's own quantizers (quantize_row_*_ref, the ggml scale rule), bit for bit (tests/llamacpp).
      {"q8_0_ggml", "int8@fp16/b32/ggml", {}, "Q8_0", 0, false, "ggml Q8_0 as llama.cpp quantizes it (d = amax / 127, roundf)"},
      {"q4_0_ggml", "int4@fp16/b32/ggml", {}, "Q4_0", 0, false,
       "ggml Q4_0 as llama.cpp quantizes it (d = signed max / -8, codes -8..7)"},
      {"q4_1", "int4@fp16/b32/asym/ggml", {}, "Q4_1", 0, false,
       "ggml Q4_1: 4-bit codes, fp16 scale and fp16 minimum per 32 (llama.cpp's quantizer)"},
      {"q5_0", "int5@fp16/b32/ggml", {}, "Q5_0", 0, false,
       "ggml Q5_0: 5-bit codes -16..15, fp16 scale per 32 (d = signed max / -16, llama.cpp's quantizer)"},
      {"q5_1", "int5@fp16/b32/asym/ggml", {}, "Q5_1", 0, false,
       "ggml Q5_1: 5-bit codes, fp16 scale and fp16 minimum per 32 (llama.cpp's quantizer)"},
      // llama.cpp's k-quants (quantize_row_q*_K_ref) over 256-blocks of a row; rows that are not whole
      // 256-blocks are stored as llama.cpp stores them (kern::ggml_quant_row_format).
      {"q2_k", "int2@fp16/b256/asym/ggml", {}, "Q2_K", 0, false,
       "ggml Q2_K: 2-bit codes; 16 sub-blocks of 16 with 4-bit scales and minimums under fp16 d and dmin (2.625 bits); "
       "ragged rows: IQ4_NL"},
      {"q3_k", "int3@fp16/b256/ggml", {}, "Q3_K", 0, false,
       "ggml Q3_K: 3-bit codes -4..3; 16 sub-blocks of 16 with 6-bit scales under an fp16 d (3.4375 bits); ragged rows: IQ4_NL"},
      {"q4_k", "int4@fp16/b256/asym/ggml", {}, "Q4_K", 0, false,
       "ggml Q4_K: 4-bit codes; 8 sub-blocks of 32 with 6-bit scales and minimums under fp16 d and dmin (4.5 bits); "
       "rows that are not whole 256-blocks: Q5_0, as llama.cpp"},
      {"q5_k", "int5@fp16/b256/asym/ggml", {}, "Q5_K", 0, false,
       "ggml Q5_K: 5-bit codes; 8 sub-blocks of 32 with 6-bit scales and minimums under fp16 d and dmin (5.5 bits); "
       "ragged rows: Q5_1"},
      {"mxfp4_ggml", "e2m1@e8m0/b32/ggml", {}, "MXFP4", 0, false,
       "MXFP4 as llama.cpp quantizes it: OCP's floor scale, ties toward zero and never -0 (OCP mxfp4 rounds ties to even)"},
      {"nvfp4_ggml", "e2m1@ue4m3/b16/ggml", {}, "NVFP4", 0, false,
       "NVFP4 as upstream ggml stores it: UE4M3 scale per 16 (ggml's rounding), no fp32 tensor scale; rows of whole 64-blocks"},
      {"iq4_nl", "cb:-127,-104,-83,-65,-49,-35,-22,-10,1,13,25,38,53,69,89,113@fp16/b32/ggml", {}, "IQ4_NL", 0, false,
       "ggml IQ4_NL: a 16-value non-linear codebook under an fp16 scale per 32, found by llama.cpp's 15-step search (4.5 bits)"},
      {"q6_k", "int6@fp16/b256/ggml", {}, "Q6_K", 0, false,
       "ggml Q6_K: 6-bit codes -32..31; 16 sub-blocks of 16 with int8 scales under an fp16 d (6.5625 bits); ragged rows: Q8_0"},
  };
  return t;
}

const NamedFormat* find_named_format(std::string_view name) {
  const std::string n = detail::ascii_lower(name);
  for (const auto& r : format_table()) {
    if (r.name == n) return &r;
    for (const auto& a : r.aliases)
      if (a == n) return &r;
  }
  return nullptr;
}

const NamedFormat* named_row_of(const Format& f) {
  static const std::vector<Format> parsed = [] {
    std::vector<Format> v;
    for (const auto& r : format_table()) v.push_back(Format::parse(r.composition));
    return v;
  }();
  for (std::size_t i = 0; i < parsed.size(); ++i)
    if (parsed[i] == f) return &format_table()[i];
  return nullptr;
}

std::vector<std::string> named_formats() {
  std::vector<std::string> v;
  for (const auto& r : format_table()) v.push_back(r.name);
  return v;
}

std::vector<std::string> nearest_format_names(std::string_view name, std::size_t n) {
  const std::string q = detail::ascii_lower(name);
  std::vector<std::pair<std::size_t, std::string>> scored;
  auto consider = [&](const std::string& cand) {
    const std::size_t d = edit_distance(q, cand);
    // A prefix match ("mxfp" -> mxfp4) counts as close whatever the length difference.
    const bool prefix = !q.empty() && cand.compare(0, q.size(), q) == 0;
    if (d <= std::max<std::size_t>(2, q.size() / 3) || prefix) scored.emplace_back(prefix ? std::min<std::size_t>(d, 1) : d, cand);
  };
  for (const auto& r : format_table()) {
    consider(r.name);
    for (const auto& a : r.aliases) consider(a);
  }
  std::stable_sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& [d, s] : scored) {
    if (out.size() >= n) break;
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

}  // namespace qcast
