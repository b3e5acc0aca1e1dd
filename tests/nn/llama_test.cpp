#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/dataset.hpp"
#include "qcast/nn/llama.hpp"
#include "test_support.hpp"

using namespace qcast;
using namespace qcast::nn;

TEST(Llama, Stories260KGreedyMatchesLlama2c) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  const std::string dir = test::shared_dir() + "/models/";
  Llama m = load_llama2c(dir + "stories260K.bin");
  EXPECT_EQ(m.cfg.dim, 64);
  EXPECT_EQ(m.cfg.n_layers, 5);
  EXPECT_EQ(m.cfg.n_heads, 8);
  EXPECT_EQ(m.cfg.n_kv_heads, 4);
  EXPECT_EQ(m.cfg.vocab_size, 512);
  EXPECT_EQ(m.cfg.seq_len, 512);
  Tokenizer tok = Tokenizer::load(dir + "tok512.bin", m.cfg.vocab_size);
  const std::string text = generate(m, tok, "", 64, 0.0f, 0);
  EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", 0), 0u) << text;
}

TEST(Llama, TokenizerEncodesLikeLlama2c) {
  QCAST_REQUIRE_SHARED("models/tok512.bin");
  Tokenizer tok = Tokenizer::load(test::shared_dir() + "/models/tok512.bin", 512);
  auto t = tok.encode("Once upon a time", true, false);
  ASSERT_GE(t.size(), 2u);
  EXPECT_EQ(t[0], 1);
  std::string back;
  for (std::size_t k = 1; k < t.size(); ++k) back += tok.decode(t[k - 1], t[k]);
  EXPECT_EQ(back, "Once upon a time");
  // Byte fallback: a character outside the vocabulary becomes its UTF-8 bytes + 3.
  auto u = tok.encode("\xe2\x98\x83", false, false);  // U+2603
  std::string bytes;
  for (int id : u) if (id >= 3 && id < 259) bytes.push_back(static_cast<char>(id - 3));
  EXPECT_NE(bytes.find("\xe2\x98\x83"), std::string::npos);
  EXPECT_TRUE(tok.encode("", true, false) == std::vector<int>{1});
}

TEST(Llama, TruncatedCheckpointsAreErrors) {
  QCAST_REQUIRE_SHARED("models/stories260K.bin");
  std::ifstream f(test::shared_dir() + "/models/stories260K.bin", std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(f)), {});
  auto parse = [](const std::string& s) { return parse_llama2c(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), "m.bin"); };
  EXPECT_NO_THROW(parse(b));
  EXPECT_THROW(parse(b.substr(0, b.size() - 4)), Error);
  EXPECT_THROW(parse(b.substr(0, 20)), Error);
  std::string bad = b;
  std::int32_t heads = 7;
  std::memcpy(bad.data() + 12, &heads, 4);
  EXPECT_THROW(parse(bad), Error);
  std::string huge = b;
  std::int32_t dim = 1 << 30;
  std::memcpy(huge.data(), &dim, 4);
  EXPECT_THROW(parse(huge), Error);
}

TEST(Llama, PerplexityIsThreadIndependent) {
  QCAST_REQUIRE_SHARED("data/tinystories/valid-excerpt.txt");
  const std::string dir = test::shared_dir() + "/models/";
  Llama m = load_llama2c(dir + "stories260K.bin");
  Tokenizer tok = Tokenizer::load(dir + "tok512.bin", m.cfg.vocab_size);
  auto stories = load_stories(test::shared_dir() + "/data/tinystories/valid-excerpt.txt");
  EXPECT_EQ(stories.size(), 463u);
  stories.resize(8);
  auto a = perplexity(m, tok, stories, 1);
  auto b = perplexity(m, tok, stories, 2);
  EXPECT_EQ(a.nll, b.nll);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_GT(a.perplexity(), 1.0);
  EXPECT_LT(a.perplexity(), 20.0);
}
