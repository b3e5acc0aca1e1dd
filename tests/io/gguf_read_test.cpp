// The GGUF reader: every metadata type (arrays included), tensor infos, alignment, data pointers into the
// mapping, typed accessors; and hostile files (truncated at every byte, huge counts and lengths, bad
// alignment, offsets outside the file, unknown types) rejected with qcast::Error before any allocation.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "qcast/error.hpp"
#include "qcast/gguf.hpp"
#include "test_support.hpp"

using namespace qcast;
namespace gg = qcast::gguf;

namespace {

gg::File sample_file() {
  gg::File f;
  f.metadata.emplace_back("general.architecture", gg::Value::of("llama"));
  f.metadata.emplace_back("t.u8", gg::Value{gg::ValueType::U8, std::uint8_t{200}, {}, {}});
  f.metadata.emplace_back("t.i8", gg::Value{gg::ValueType::I8, std::int8_t{-3}, {}, {}});
  f.metadata.emplace_back("t.u16", gg::Value{gg::ValueType::U16, std::uint16_t{60000}, {}, {}});
  f.metadata.emplace_back("t.i16", gg::Value{gg::ValueType::I16, std::int16_t{-300}, {}, {}});
  f.metadata.emplace_back("t.u32", gg::Value::of(std::uint32_t{4000000000u}));
  f.metadata.emplace_back("t.i32", gg::Value::of(std::int32_t{7}));
  f.metadata.emplace_back("t.f32", gg::Value::of(1.5f));
  f.metadata.emplace_back("t.bool", gg::Value::of(true));
  f.metadata.emplace_back("t.str", gg::Value::of("h\xc3\xa9llo"));
  f.metadata.emplace_back("t.u64", gg::Value::of(std::uint64_t{1} << 40));
  f.metadata.emplace_back("t.i64", gg::Value{gg::ValueType::I64, std::int64_t{-9}, {}, {}});
  f.metadata.emplace_back("t.f64", gg::Value{gg::ValueType::F64, 0.25, {}, {}});
  f.metadata.emplace_back("t.astr", gg::Value::array_of(gg::ValueType::String, {std::string("a"), std::string(""), std::string("xyz")}));
  f.metadata.emplace_back("t.af32", gg::Value::array_of(gg::ValueType::F32, {1.0f, -2.0f}));
  f.metadata.emplace_back("t.ai32", gg::Value::array_of(gg::ValueType::I32, {std::int32_t{1}, std::int32_t{-1}}));
  f.metadata.emplace_back("t.aempty", gg::Value::array_of(gg::ValueType::U8, {}));
  gg::TensorData a{"a", {32, 2}, gg::GgmlType::Q8_0, std::vector<std::uint8_t>(68, 0x11)};
  gg::TensorData b{"b", {5}, gg::GgmlType::F32, std::vector<std::uint8_t>(20, 0x22)};
  gg::TensorData c{"c", {256}, gg::GgmlType::Q4_K, std::vector<std::uint8_t>(144, 0x33)};
  f.tensors = {a, b, c};
  return f;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    gg::Reader::parse(u8(bytes), bytes.size(), nullptr, "bad.gguf");
    ADD_FAILURE() << "accepted a bad file (expected: " << needle << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

template <class T>
void poke(std::string& s, std::size_t at, T v) {
  std::memcpy(&s[at], &v, sizeof(T));
}

}  // namespace

TEST(GgufRead, MetadataTensorsAndAlignment) {
  test::TempDir dir;
  gg::File f = sample_file();
  for (std::uint32_t align : {32u, 64u, 256u}) {
    f.alignment = align;
    const std::string path = dir.file("s.gguf");
    gg::write(path, f);
    const gg::Reader r = gg::Reader::open(path);
    EXPECT_EQ(r.version(), 3u);
    EXPECT_EQ(r.alignment(), align);
    EXPECT_EQ(r.data_offset() % align, 0u);
    for (const auto& [k, v] : f.metadata) {
      ASSERT_NE(r.find(k), nullptr) << k;
      EXPECT_EQ(*r.find(k), v) << k;
    }
    EXPECT_EQ(*r.get_uint("t.u8"), 200u);
    EXPECT_EQ(*r.get_uint("t.u16"), 60000u);
    EXPECT_EQ(*r.get_uint("t.u32"), 4000000000u);
    EXPECT_EQ(*r.get_uint("t.u64"), std::uint64_t{1} << 40);
    EXPECT_EQ(*r.get_uint("t.i32"), 7u);
    EXPECT_THROW(r.get_uint("t.i64"), Error);  // negative
    EXPECT_THROW(r.get_uint("t.str"), Error);  // wrong type
    EXPECT_FALSE(r.get_uint("absent").has_value());
    EXPECT_EQ(*r.get_float("t.f32"), 1.5f);
    EXPECT_EQ(*r.get_float("t.f64"), 0.25f);
    EXPECT_EQ(*r.get_string("t.str"), "h\xc3\xa9llo");
    EXPECT_TRUE(*r.get_bool("t.bool"));
    ASSERT_NE(r.get_array("t.astr", gg::ValueType::String), nullptr);
    EXPECT_EQ(std::get<std::string>((*r.get_array("t.astr", gg::ValueType::String))[2]), "xyz");
    EXPECT_THROW(r.get_array("t.astr", gg::ValueType::F32), Error);
    EXPECT_TRUE(r.get_array("t.aempty", gg::ValueType::U8)->empty());

    ASSERT_EQ(r.tensors().size(), 3u);
    const std::string bytes = slurp(path);
    for (std::size_t i = 0; i < 3; ++i) {
      const gg::TensorInfo& t = r.tensors()[i];
      EXPECT_EQ(t.name, f.tensors[i].name);
      EXPECT_EQ(t.ne, f.tensors[i].ne);
      EXPECT_EQ(t.type, f.tensors[i].type);
      EXPECT_EQ(t.offset % align, 0u);
      ASSERT_EQ(t.nbytes, f.tensors[i].data.size());
      EXPECT_EQ(0, std::memcmp(t.data, f.tensors[i].data.data(), t.nbytes));
      // The data pointer lies at data_offset + offset in the file.
      EXPECT_EQ(0, std::memcmp(bytes.data() + r.data_offset() + t.offset, f.tensors[i].data.data(), t.nbytes));
    }
    EXPECT_EQ(r.tensor("a")->shape(), (Shape{2, 32}));
    EXPECT_EQ(r.tensor("missing"), nullptr);
    const auto deq = r.dequantize(*r.tensor("c"));
    EXPECT_EQ(deq.size(), 256u);
  }
}

TEST(GgufRead, TruncatedAtEveryByte) {
  test::TempDir dir;
  gg::File f = sample_file();
  gg::write(dir.file("s.gguf"), f);
  const std::string bytes = slurp(dir.file("s.gguf"));
  for (std::size_t cut = 0; cut + 1 < bytes.size(); ++cut) {
    try {
      const gg::Reader r = gg::Reader::parse(u8(bytes), cut, nullptr, "cut.gguf");
      // Accepted only when every tensor still lies inside the cut file (a cut in the final padding).
      for (const auto& t : r.tensors()) ASSERT_LE(r.data_offset() + t.offset + t.nbytes, cut) << cut;
    } catch (const Error&) {
    }
  }
  // A cut anywhere before the end of the last tensor's data is an error.
  const gg::Reader full = gg::Reader::parse(u8(bytes), bytes.size(), nullptr, "full.gguf");
  const auto& last = full.tensors().back();
  const std::size_t data_end = full.data_offset() + last.offset + last.nbytes;
  for (std::size_t cut = 0; cut < data_end; cut += 7)
    EXPECT_THROW(gg::Reader::parse(u8(bytes), cut, nullptr, "cut.gguf"), Error) << cut;
}

TEST(GgufRead, HostileHeadersAreErrorsNotAllocations) {
  test::TempDir dir;
  gg::File f;
  f.metadata.emplace_back("k", gg::Value::of(std::uint32_t{1}));
  f.tensors.push_back({"t", {32}, gg::GgmlType::F32, std::vector<std::uint8_t>(128, 0)});
  gg::write(dir.file("m.gguf"), f);
  const std::string good = slurp(dir.file("m.gguf"));
  // Layout: magic 0, version 4, n_tensors 8, n_kv 16, key "k" at 24 (u64 len + 1 byte), type at 33, u32 at 37,
  // tensor name at 41 (u64 len + 1), n_dims at 50, ne[0] at 54, type at 62, offset at 66.
  ASSERT_EQ(good.substr(33, 4), std::string("\x04\0\0\0", 4));
  {
    std::string s = good;
    s[0] = 'X';
    expect_error(s, "not a GGUF file");
  }
  {
    std::string s = good;
    poke<std::uint32_t>(s, 4, 1);
    expect_error(s, "unsupported GGUF version 1");
    poke<std::uint32_t>(s, 4, 0x03000000u);
    expect_error(s, "big-endian");
  }
  {
    std::string s = good;
    poke<std::uint64_t>(s, 8, std::uint64_t{1} << 60);
    expect_error(s, "cannot fit");
    s = good;
    poke<std::uint64_t>(s, 16, ~std::uint64_t{0});
    expect_error(s, "cannot fit");
  }
  {
    std::string s = good;
    poke<std::uint64_t>(s, 24, std::uint64_t{1} << 62);  // key length
    expect_error(s, "truncated");
  }
  {
    std::string s = good;
    poke<std::uint32_t>(s, 33, 99);
    expect_error(s, "unknown value type 99");
  }
  {
    std::string s = good;
    poke<std::uint64_t>(s, 54, std::uint64_t{1} << 63);
    expect_error(s, "implausibly large");
    poke<std::uint64_t>(s, 54, std::uint64_t{1} << 62);  // 2^62 F32 elements: 2^64 bytes would wrap to 0
    expect_error(s, "implausibly large");
    poke<std::uint64_t>(s, 54, 33);
    poke<std::uint32_t>(s, 62, 8);  // Q8_0 with a row of 33
    expect_error(s, "not a multiple");
  }
  {
    std::string s = good;
    poke<std::uint32_t>(s, 62, 4);  // a removed type id
    expect_error(s, "unknown ggml type 4");
    poke<std::uint32_t>(s, 62, 777);
    expect_error(s, "unknown ggml type 777");
  }
  {
    std::string s = good;
    poke<std::uint64_t>(s, 66, 8);  // unaligned offset
    expect_error(s, "not aligned");
    poke<std::uint64_t>(s, 66, 1ull << 40);
    expect_error(s, "outside the file");
    poke<std::uint64_t>(s, 66, ~std::uint64_t{31});
    expect_error(s, "outside the file");
  }
  {
    std::string s = good;
    poke<std::uint32_t>(s, 50, 5);
    expect_error(s, "dimensions (1..4 allowed)");
  }
  {  // An array claiming 2^61 elements in a small file.
    gg::File a;
    a.metadata.emplace_back("arr", gg::Value::array_of(gg::ValueType::U64, {std::uint64_t{1}}));
    gg::write(dir.file("a.gguf"), a);
    std::string s = slurp(dir.file("a.gguf"));
    // key "arr" at 24 (8 + 3 bytes), type at 35, elem type at 39, count at 43.
    poke<std::uint64_t>(s, 43, std::uint64_t{1} << 61);
    expect_error(s, "exceeds the file");
    s = slurp(dir.file("a.gguf"));
    poke<std::uint32_t>(s, 39, 9);
    expect_error(s, "array of arrays");
  }
  {  // general.alignment that is not a power of two.
    gg::File a;
    a.alignment = 64;
    gg::write(dir.file("al.gguf"), a);
    std::string s = slurp(dir.file("al.gguf"));
    const std::size_t at = s.find("general.alignment");
    ASSERT_NE(at, std::string::npos);
    poke<std::uint32_t>(s, at + 17 + 4, 48);
    expect_error(s, "not a power of two");
  }
  {  // Duplicate keys and tensor names.
    gg::File a;
    a.metadata.emplace_back("k", gg::Value::of(std::uint32_t{1}));
    a.metadata.emplace_back("k", gg::Value::of(std::uint32_t{2}));
    gg::write(dir.file("d.gguf"), a);
    expect_error(slurp(dir.file("d.gguf")), "appears twice");
    gg::File b;
    b.tensors.push_back({"t", {1}, gg::GgmlType::F32, std::vector<std::uint8_t>(4, 0)});
    b.tensors.push_back({"t", {1}, gg::GgmlType::F32, std::vector<std::uint8_t>(4, 0)});
    gg::write(dir.file("t.gguf"), b);
    expect_error(slurp(dir.file("t.gguf")), "appears twice");
  }
}

TEST(GgufRead, EmptyTensors) {
  // A zero dimension is legal: no bytes, no values (found by fuzzing: the decoder must not touch null).
  test::TempDir dir;
  gg::File f;
  f.tensors.push_back({"empty", {32, 0}, gg::GgmlType::Q8_0, {}});
  f.tensors.push_back({"e2", {0}, gg::GgmlType::F32, {}});
  gg::write(dir.file("e.gguf"), f);
  const gg::Reader r = gg::Reader::open(dir.file("e.gguf"));
  ASSERT_EQ(r.tensors().size(), 2u);
  for (const auto& t : r.tensors()) {
    EXPECT_EQ(t.nbytes, 0u);
    EXPECT_TRUE(r.dequantize(t).empty());
  }
}
