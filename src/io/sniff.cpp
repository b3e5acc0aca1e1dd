// File kinds by content: magic bytes where the format has them (GGUF, .npy, llama2.c v1), structure where
// it does not (the top-level protobuf fields of an ONNX ModelProto, the llama2.c legacy header, the
// safetensors header JSON and its qcast metadata, the llama2.c tokenizer's records).
#include "qcast/sniff.hpp"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/file.hpp"

namespace qcast {

namespace fs = std::filesystem;

namespace {

std::int32_t i32_at(const std::uint8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// An ONNX ModelProto: a sequence of well-formed top-level protobuf fields that ends exactly at the end of
// the file, has a graph (field 7, length-delimited) and, if present, a small varint ir_version (field 1).
bool looks_onnx(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  auto varint = [&](std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= n) return false;
      const std::uint8_t b = p[i++];
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  bool graph = false;
  int fields = 0;
  while (i < n) {
    std::uint64_t tag, v;
    if (!varint(tag)) return false;
    const std::uint64_t field = tag >> 3, wire = tag & 7;
    if (field == 0 || field > 64) return false;
    switch (wire) {
      case 0:
        if (!varint(v)) return false;
        if (field == 1 && (v == 0 || v > 64)) return false;
        break;
      case 1: if (n - i < 8) return false; i += 8; break;
      case 5: if (n - i < 4) return false; i += 4; break;
      case 2:
        if (!varint(v) || v > n - i) return false;
        if (field == 7) graph = true;
        i += static_cast<std::size_t>(v);
        break;
      default: return false;
    }
    if (field == 1 && wire != 0) return false;
    if (field == 7 && wire != 2) return false;
    ++fields;
  }
  return graph && fields >= 1;
}

// llama2.c: the v1 header ("ak42" magic) or a legacy header of seven plausible int32 (dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, +-vocab, seq_len). Truncated bodies still count (the loader says so).
bool looks_llama2c(const std::uint8_t* p, std::size_t n) {
  if (n >= 8 && i32_at(p) == 0x616b3432) return true;
  if (n < 28) return false;
  const int dim = i32_at(p), hid = i32_at(p + 4), nl = i32_at(p + 8), nh = i32_at(p + 12), nkv = i32_at(p + 16),
            voc = i32_at(p + 20), seq = i32_at(p + 24);
  if (dim <= 0 || dim > (1 << 16) || hid <= 0 || hid > (1 << 18) || nl <= 0 || nl > 1024 || nh <= 0 || nh > dim || nkv <= 0 ||
      nkv > nh || seq <= 0 || seq > (1 << 20))
    return false;
  if (voc == 0 || voc < -(1 << 22) || voc > (1 << 22)) return false;
  return dim % nh == 0 && nh % nkv == 0;
}

// llama2.c tokenizer: int32 max_token_length, then (f32 score, int32 length, bytes) records that end
// exactly at the end of the file, every length within max_token_length.
bool looks_tokenizer(const std::uint8_t* p, std::size_t n) {
  if (n < 4) return false;
  const std::int32_t mtl = i32_at(p);
  if (mtl <= 0 || mtl > (1 << 16)) return false;
  std::size_t i = 4;
  int records = 0;
  while (i < n) {
    if (n - i < 8) return false;
    const std::int32_t len = i32_at(p + i + 4);
    if (len < 0 || len > mtl || static_cast<std::size_t>(len) > n - i - 8) return false;
    i += 8 + static_cast<std::size_t>(len);
    ++records;
  }
  return records >= 3;
}

FileKind sniff_json(const std::uint8_t* p, std::size_t n) {
  nlohmann::json j = nlohmann::json::parse(p, p + n, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return FileKind::Unknown;
  if (j.contains("layers") && j["layers"].is_array()) return FileKind::LayersJson;
  if (j.contains("hidden_size") || j.contains("model_type") || j.contains("architectures")) return FileKind::HfDir;
  return FileKind::Unknown;
}

FileKind sniff_safetensors(const std::uint8_t* p, std::size_t n) {
  if (n < 10) return FileKind::Unknown;
  std::uint64_t hlen = 0;
  for (int k = 7; k >= 0; --k) hlen = (hlen << 8) | p[k];
  if (hlen < 2 || hlen > n - 8 || hlen > (std::uint64_t{100} << 20) || p[8] != '{') return FileKind::Unknown;
  nlohmann::json j = nlohmann::json::parse(p + 8, p + 8 + hlen, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return FileKind::Unknown;
  if (j.contains("__metadata__") && j["__metadata__"].is_object()) {
    const auto& m = j["__metadata__"];
    if (m.contains("qcast.layout") && m["qcast.layout"] == "packed-v1")
      return m.contains("quantize.model") ? FileKind::QcastQuantized : FileKind::QcastPacked;
  }
  return FileKind::Safetensors;
}

}  // namespace

FileKind sniff_model_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return FileKind::Missing;
  if (fs::is_directory(path, ec)) return fs::exists(fs::path(path) / "config.json", ec) ? FileKind::HfDir : FileKind::Unknown;
  try {
    MappedFile m(path);
    const std::uint8_t* p = m.data();
    const std::size_t n = m.size();
    if (n >= 4 && std::memcmp(p, "GGUF", 4) == 0) return FileKind::Gguf;
    if (n >= 6 && std::memcmp(p, "\x93NUMPY", 6) == 0) return FileKind::Npy;
    std::size_t first = 0;
    while (first < n && first < 64 && std::isspace(p[first])) ++first;
    if (first < n && p[first] == '{') return sniff_json(p, n);
    if (const FileKind k = sniff_safetensors(p, n); k != FileKind::Unknown) return k;
    if (looks_llama2c(p, n)) return FileKind::Llama2c;
    if (looks_onnx(p, n)) return FileKind::Onnx;
    if (looks_tokenizer(p, n)) return FileKind::Tokenizer;
  } catch (const Error&) {
  }
  return FileKind::Unknown;
}

std::string file_kind_name(FileKind k) {
  switch (k) {
    case FileKind::Onnx: return "ONNX model";
    case FileKind::Llama2c: return "llama2.c checkpoint";
    case FileKind::HfDir: return "Hugging Face checkpoint";
    case FileKind::Gguf: return "GGUF model";
    case FileKind::Safetensors: return "safetensors tensor file";
    case FileKind::QcastPacked: return "qcast packed tensor file (qcast encode output)";
    case FileKind::QcastQuantized: return "quantized model (qcast quantize output)";
    case FileKind::Npy: return ".npy tensor file";
    case FileKind::LayersJson: return "layer-shape JSON";
    case FileKind::Tokenizer: return "llama2.c tokenizer";
    case FileKind::Missing: return "no such file or directory";
    case FileKind::Unknown: break;
  }
  return "file of unknown kind (by content: not ONNX, llama2.c, HF, GGUF, safetensors or .npy)";
}

namespace {
std::string takers(FileKind k) {
  switch (k) {
    case FileKind::Onnx: return "use qcast inspect / eval / infer / quantize / cost --model";
    case FileKind::Llama2c:
    case FileKind::HfDir:
    case FileKind::Gguf: return "use qcast inspect / eval / generate / quantize / cost --model";
    case FileKind::Safetensors:
    case FileKind::Npy: return "use qcast cast / stats / encode";
    case FileKind::QcastPacked: return "use qcast decode";
    case FileKind::QcastQuantized: return "use qcast eval";
    case FileKind::LayersJson: return "use qcast cost --model";
    case FileKind::Tokenizer: return "pass it as --tokenizer to eval / generate / quantize";
    case FileKind::Missing:
    case FileKind::Unknown: break;
  }
  return "";
}
}  // namespace

void refuse_file(const std::string& path, FileKind k, const std::string& command, const std::string& accepted) {
  if (k == FileKind::Missing) throw Error(path + ": no such file or directory");
  std::string msg = path + ": " + file_kind_name(k);
  const std::string t = takers(k);
  if (!t.empty()) msg += ": " + t;
  throw Error(msg + "; qcast " + command + " takes " + accepted);
}

}  // namespace qcast
