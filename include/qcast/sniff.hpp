// What a model or tensor file is, decided by its content (magic bytes and structure), never by its name.
// Used by every model command to pick a loader and to refuse files it cannot take with a message that
// names what the file is and which command takes it.
#pragma once
#include <string>

namespace qcast {

enum class FileKind {
  Onnx,            ///< ONNX ModelProto (protobuf with a graph field)
  Llama2c,         ///< llama2.c checkpoint (legacy 7-int header or v1 "ak42" header)
  HfDir,           ///< Hugging Face checkpoint: a directory with config.json, or that config.json
  Gguf,            ///< GGUF ("GGUF" magic)
  Safetensors,     ///< plain safetensors
  QcastPacked,     ///< qcast packed safetensors (qcast encode)
  QcastQuantized,  ///< qcast quantize output (packed safetensors naming its base model)
  Npy,             ///< NumPy .npy
  LayersJson,      ///< layer-shape JSON ({"layers": [...]}, qcast inspect --json)
  Tokenizer,       ///< llama2.c tokenizer (tok*.bin)
  Missing,         ///< no such file or directory
  Unknown
};

/// Sniffs `path` by content. Never throws for unreadable or odd content (Missing / Unknown instead).
FileKind sniff_model_file(const std::string& path);

/// A short description of the kind ("GGUF model", ".npy tensor file", ...).
std::string file_kind_name(FileKind k);

/// Throws qcast::Error (exit 2 in the CLI) when `command` cannot take a file of kind `k`:
/// "<path>: <what it is>; <which commands take it>; <command> takes <accepted>".
/// `accepted` lists what the command takes (e.g. "ONNX, llama2.c, HF, GGUF models").
void refuse_file(const std::string& path, FileKind k, const std::string& command, const std::string& accepted);

}  // namespace qcast
