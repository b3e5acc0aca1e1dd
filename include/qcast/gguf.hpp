// GGUF (versions 2 and 3): the one GGUF module of qcast - the ggml type table, a memory-mapped reader,
// dequantization of ggml's block types, and the writer used by `qcast quantize --out x.gguf`.
// Written from the published specification (ggml docs/gguf.md) and ggml's block layouts (ggml-common.h,
// dequantize_row_* in ggml-quants.c):
//   header: magic "GGUF" (u32 0x46554747 LE), u32 version, u64 tensor_count, u64 metadata_kv_count;
//   metadata KVs: gguf string key (u64 length + UTF-8 bytes), u32 value type, value
//     (arrays: u32 element type, u64 count, elements);
//   tensor infos: name, u32 n_dims, u64 ne[n_dims] (ne[0] = fastest-varying = in_features), u32 ggml type,
//     u64 offset relative to the tensor data section (a multiple of the alignment);
//   padding to `general.alignment` (default 32), then the tensor data (each tensor padded to the alignment).
// All little-endian. The reader checks every count, length, dimension and offset against the file's real
// size before it allocates or touches anything, and throws qcast::Error naming the file and the field.
//
// qcast format -> ggml type on writing (exact, lossless re-encoding of qcast's codes and scales):
//   int8 symmetric, fp16 scales, blocks of 32 along in_features  -> Q8_0  (d = scale, qs = code)
//   int4 symmetric, fp16 scales, blocks of 32 along in_features  -> Q4_0  (d = scale, q = code + 8)
//   int5 symmetric, fp16 scales, blocks of 32                      -> Q5_0  (d = scale, q = code + 16, bit 4 in qh)
//   int4 / int5 with the ggml rule's asym (fp16 scale + fp16 min)   -> Q4_1 / Q5_1 (d, m = min, q = code)
//   mxfp4 (e2m1, e8m0 scales, blocks of 32)                       -> MXFP4 (e = scale code, q = e2m1 code)
//   anything else (or a row length not divisible by 32)           -> F32 of the fake-quantized values
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/quantize.hpp"
#include "qcast/tensor.hpp"

namespace qcast {
class MappedFile;
}

namespace qcast::gguf {

enum class ValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10,
  I64 = 11, F64 = 12
};

/// ggml's tensor types (ggml.h `enum ggml_type`; ids 4, 5, 31-33 and 36-38 were removed from ggml).
enum class GgmlType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11, Q4_K = 12,
  Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21,
  IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34,
  TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41
};

/// One row of the type table: ggml's name, elements per block, bytes per block, and the dequantizer
/// (null for the types qcast does not decode: IQ* but IQ4_NL, TQ*, Q8_1, Q1_0, the integer types and F64).
struct TypeTraits {
  GgmlType type;
  const char* name;
  std::uint32_t block;  ///< elements per block
  std::uint32_t bytes;  ///< bytes per block
  void (*dequantize)(const std::uint8_t* blocks, float* out, std::int64_t nblocks);
};

/// The table row of ggml type id `id`, or nullptr for an id ggml does not define.
const TypeTraits* find_type(std::uint32_t id);
/// The table row of `t` (asserts that `t` is in the table).
const TypeTraits& traits(GgmlType t);
/// ggml's name of the type ("Q4_K"), or "type N" for an unknown id.
std::string type_name(GgmlType t);
/// Decodes `n` elements (a multiple of the block size) of type `t` stored at `data` into `out`, exactly as
/// ggml's dequantize_row_*. Throws qcast::Error naming the type when qcast has no decoder for it.
void dequantize_row(GgmlType t, const std::uint8_t* data, float* out, std::int64_t n);

using Scalar = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t, std::int32_t, float,
                            bool, std::string, std::uint64_t, std::int64_t, double>;

struct Value {
  ValueType type = ValueType::U32;
  Scalar scalar;                  ///< when type != Array
  ValueType elem = ValueType::U8; ///< when type == Array
  std::vector<Scalar> array;      ///< when type == Array (nested arrays are refused)

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

using Metadata = std::vector<std::pair<std::string, Value>>;

/// A tensor in memory (what the writer takes): raw ggml bytes.
struct TensorData {
  std::string name;
  std::vector<std::uint64_t> ne;  ///< ggml dims, ne[0] fastest (a row-major [rows, cols] matrix has ne = {cols, rows})
  GgmlType type = GgmlType::F32;
  std::vector<std::uint8_t> data;
  bool operator==(const TensorData& o) const = default;
};

/// A whole GGUF file in memory (what the writer takes, and what read() returns as a copy).
struct File {
  std::uint32_t version = 3;
  std::uint32_t alignment = 32;
  Metadata metadata;                ///< in file order
  std::vector<TensorData> tensors;  ///< in file order
  const Value* find(const std::string& key) const;
};

/// A tensor of a memory-mapped GGUF file: its info and a pointer to its bytes inside the mapping.
struct TensorInfo {
  std::string name;
  std::vector<std::uint64_t> ne;
  GgmlType type = GgmlType::F32;
  std::uint64_t offset = 0;  ///< from the start of the data section
  std::uint64_t nbytes = 0;
  const std::uint8_t* data = nullptr;
  std::uint64_t numel() const;
  /// The row-major shape (ne reversed: {ne[n-1], ..., ne[0]}).
  Shape shape() const;
};

/// A GGUF file opened for reading: header, metadata and tensor infos parsed and validated; tensor data
/// stays in the memory map (shared by copies of this object).
class Reader {
 public:
  /// Memory-maps and parses `path`. Throws qcast::Error naming the file and the offending field.
  static Reader open(const std::string& path);
  /// Parses an in-memory image; `owner` keeps the bytes alive (may be null when the caller does).
  static Reader parse(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner, const std::string& what);

  std::uint32_t version() const { return version_; }
  std::uint32_t alignment() const { return alignment_; }
  const std::string& what() const { return what_; }
  const Metadata& metadata() const { return meta_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::uint64_t data_offset() const { return data_offset_; }

  const Value* find(const std::string& key) const;
  const TensorInfo* tensor(const std::string& name) const;
  /// Typed metadata access: nullopt when the key is absent; qcast::Error when it has another type.
  /// get_uint accepts every unsigned and (non-negative) signed integer type.
  std::optional<std::uint64_t> get_uint(const std::string& key) const;
  std::optional<float> get_float(const std::string& key) const;  ///< F32 or F64
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  /// The array under `key` with elements of type `elem` (nullptr when absent; Error for another type).
  const std::vector<Scalar>* get_array(const std::string& key, ValueType elem) const;

  /// All values of tensor `t` as float32, row-major in ggml order. Error for types without a decoder.
  std::vector<float> dequantize(const TensorInfo& t) const;

 private:
  std::string what_;
  std::shared_ptr<const void> owner_;
  std::uint32_t version_ = 3, alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  Metadata meta_;
  std::vector<TensorInfo> tensors_;
};

/// Writes `file` (atomically: temporary file + rename). Sets general.alignment if alignment != 32.
void write(const std::string& path, const File& file);
/// Reads a whole GGUF file into memory (tensor bytes copied). Throws qcast::Error like Reader::open.
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
/// Decodes an in-memory tensor to float32 (row-major, ggml order); Error for types without a decoder.
std::vector<float> dequantize(const TensorData& t);

/// Adds the tokenizer fields of the GGUF spec: tokenizer.ggml.model, .tokens, .scores, .token_type,
/// .bos_token_id, .eos_token_id (and .unknown_token_id when >= 0).
void add_tokenizer(File& file, const std::string& model, const std::vector<std::string>& tokens,
                   const std::vector<float>& scores, const std::vector<std::int32_t>& token_types,
                   std::uint32_t bos, std::uint32_t eos, std::int64_t unk = -1);

}  // namespace qcast::gguf
