// GGUF (version 3) writer and reader, written from the published specification (ggml docs/gguf.md):
//   header: magic "GGUF" (u32 0x46554747 LE), u32 version = 3, u64 tensor_count, u64 metadata_kv_count;
//   metadata KVs: gguf string key (u64 length + UTF-8 bytes), u32 value type, value
//     (arrays: u32 element type, u64 count, elements);
//   tensor infos: name, u32 n_dims, u64 ne[n_dims] (ne[0] = fastest-varying = in_features), u32 ggml type,
//     u64 offset relative to the tensor data section (a multiple of the alignment);
//   padding to `general.alignment` (default 32), then the tensor data (each tensor padded to the alignment).
// All little-endian.
//
// qcast format -> ggml type (exact, lossless re-encoding of qcast's codes and scales; see docs/algorithms.md):
//   int8 symmetric, fp16 scales, blocks of 32 along in_features  -> Q8_0  (d = scale, qs = code)
//   int4 symmetric, fp16 scales, blocks of 32 along in_features  -> Q4_0  (d = scale, q = code + 8)
//   mxfp4 (e2m1, e8m0 scales, blocks of 32)                       -> MXFP4 (e = scale code, q = e2m1 code)
//   anything else (or a row length not divisible by 32)           -> F32 of the fake-quantized values
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"
#include "qcast/tensor.hpp"

namespace qcast::ptq::gguf {

enum class ValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10,
  I64 = 11, F64 = 12
};

enum class GgmlType : std::uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, MXFP4 = 39 };

using Scalar = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t, float,
                            bool, std::string, std::uint64_t, std::int64_t, double>;

struct Value {
  ValueType type = ValueType::U32;
  Scalar scalar;                  ///< when type != Array
  ValueType elem = ValueType::U8; ///< when type == Array
  std::vector<Scalar> array;      ///< when type == Array (nested arrays are not supported)

  static Value of(std::uint32_t v) { return {ValueType::U32, v, {}, {}}; }
  static Value of(std::int32_t v) { return {ValueType::I32, v, {}, {}}; }
  static Value of(std::uint64_t v) { return {ValueType::U64, v, {}, {}}; }
  static Value of(float v) { return {ValueType::F32, v, {}, {}}; }
  static Value of(bool v) { return {ValueType::Bool, v, {}, {}}; }
  static Value of(std::string v) { return {ValueType::String, std::move(v), {}, {}}; }
  static Value of(const char* v) { return of(std::string(v)); }
  static Value array_of(ValueType elem, std::vector<Scalar> items) { return {ValueType::Array, std::uint8_t{0}, elem, std::move(items)}; }
  bool operator==(const Value& o) const = default;
};

struct TensorData {
  std::string name;
  std::vector<std::uint64_t> ne;  ///< ggml dims, ne[0] fastest (a row-major [rows, cols] matrix has ne = {cols, rows})
  GgmlType type = GgmlType::F32;
  std::vector<std::uint8_t> data;
  bool operator==(const TensorData& o) const = default;
};

struct File {
  std::uint32_t version = 3;
  std::uint32_t alignment = 32;
  std::vector<std::pair<std::string, Value>> metadata;  ///< in file order
  std::vector<TensorData> tensors;                      ///< in file order
  const Value* find(const std::string& key) const;
};

/// Writes `file` (atomically: temporary file + rename). Sets general.alignment if alignment != 32.
void write(const std::string& path, const File& file);
/// Parses a GGUF v2/v3 file. Throws qcast::Error naming the file and the offending field.
File read(const std::string& path);
File parse(const std::uint8_t* data, std::size_t size, const std::string& what = "gguf");

/// The ggml type qcast uses for a format and a row-major tensor shape (see the table above).
GgmlType ggml_type_for(const Format& f, const Shape& shape);
/// Encodes a row-major float tensor: fake-quantized with `f` and stored as ggml_type_for(f, shape)
/// (the stored values decode to exactly fake_quant(f, data)).
TensorData make_tensor(const std::string& name, const float* data, const Shape& shape, const Format& f);
/// Stores qcast's own codes and scales (QuantizedWeight::encode() / qcast::encode with axis -1) in the
/// ggml block type of e.format; throws qcast::Error when the format / shape has none (ggml_mapping()).
/// Unlike the float overload this never re-derives scales, so GPTQ / search results keep theirs.
TensorData make_tensor(const std::string& name, const Encoded& e);
/// A plain F32 tensor (row-major `shape`, stored with ne reversed).
TensorData f32_tensor(const std::string& name, const float* data, const Shape& shape);
/// One line naming which qcast formats map to which ggml types (for error messages and docs).
std::string ggml_mapping();
/// Decodes F32 / F16 / Q8_0 / Q4_0 / MXFP4 tensor data to float32 (row-major, ggml order).
std::vector<float> dequantize(const TensorData& t);

/// Adds the tokenizer fields of the GGUF spec: tokenizer.ggml.model, .tokens, .scores, .token_type,
/// .bos_token_id, .eos_token_id (and .unknown_token_id when >= 0).
void add_tokenizer(File& file, const std::string& model, const std::vector<std::string>& tokens,
                   const std::vector<float>& scores, const std::vector<std::int32_t>& token_types,
                   std::uint32_t bos, std::uint32_t eos, std::int64_t unk = -1);

}  // namespace qcast::ptq::gguf
