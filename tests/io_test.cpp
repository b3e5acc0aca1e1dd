#include <cstring>
#include <fstream>

#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "test_support.hpp"

using namespace qcast;

TEST(Npy, RoundTripAndHeaderAlignment) {
  test::TempDir d;
  Tensor t = Tensor::zeros_f32({3, 5});
  for (int i = 0; i < 15; ++i) t.mutable_f32()[i] = static_cast<float>(i) * 0.5f - 3.0f;
  write_npy(d.file("a.npy"), t);
  Tensor r = read_npy(d.file("a.npy"));
  ASSERT_EQ(r.shape, (Shape{3, 5}));
  EXPECT_EQ(std::memcmp(r.data, t.data, 60), 0);
  EXPECT_EQ(npy_header(DType::F32, {3, 5}).size() % 64, 0u);
  EXPECT_NE(npy_header(DType::F32, {7}).find("(7,)"), std::string::npos);
  EXPECT_NE(npy_header(DType::F32, {}).find("()"), std::string::npos);
}

TEST(Npy, RejectsTruncatedAndLyingHeaders) {
  test::TempDir d;
  Tensor t = Tensor::zeros_f32({4, 4});
  write_npy(d.file("a.npy"), t);
  std::ifstream f(d.file("a.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  auto parse = [&](const std::string& b) {
    return parse_npy(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), nullptr, "x.npy");
  };
  EXPECT_NO_THROW(parse(bytes));
  EXPECT_THROW(parse(bytes.substr(0, bytes.size() - 1)), Error);
  EXPECT_THROW(parse(bytes.substr(0, 9)), Error);
  std::string lie = bytes;
  lie.replace(lie.find("(4, 4)"), 6, "(9, 4)");
  EXPECT_THROW(parse(lie), Error);
  std::string bad_dtype = bytes;
  bad_dtype.replace(bad_dtype.find("<f4"), 3, "<c8");
  try {
    parse(bad_dtype);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<c8"), std::string::npos);
  }
}

TEST(SafeTensors, RoundTripWithMetadata) {
  test::TempDir d;
  Tensor a = Tensor::zeros_f32({2, 3});
  a.mutable_f32()[4] = 7.0f;
  write_safetensors(d.file("m.safetensors"), {{"w", a}}, {{"k", "v"}});
  auto f = read_safetensors(d.file("m.safetensors"));
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].name, "w");
  EXPECT_EQ(f.tensors[0].tensor.f32()[4], 7.0f);
  EXPECT_EQ(f.metadata.at("k"), "v");
}

TEST(SafeTensors, RejectsMalformed) {
  auto parse = [](const std::string& b) {
    return parse_safetensors(reinterpret_cast<const std::uint8_t*>(b.data()), b.size(), nullptr, "x.safetensors");
  };
  auto with_header = [](const std::string& h, std::size_t body) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
    return s + h + std::string(body, '\0');
  };
  EXPECT_THROW(parse("abc"), Error);
  EXPECT_THROW(parse(with_header("{not json", 0)), Error);
  EXPECT_THROW(parse(with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)), Error);
  EXPECT_THROW(parse(with_header(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)), Error);
  EXPECT_THROW(parse(with_header(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8)), Error);
  EXPECT_THROW(parse(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)), Error);
  EXPECT_NO_THROW(parse(with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)));
}
