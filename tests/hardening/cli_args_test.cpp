// Issue 19: arguments that used to be accepted and then hung or silently changed meaning are refused at
// parse time with exit 2: NaN / infinite / out-of-range floats, seeds beyond 64 bits (CLI11 saturated
// them to 2^64-1) or negative (wrapped), rotate blocks that are not a power of two <= 128.
#include <string>

#include "test_support.hpp"

using qcast::test::run_cli;

namespace {

void expect_refused(const std::string& args, const std::string& needle) {
  // `timeout` turns a hang (bench --min-time nan never ended) into a failure instead of a stuck test.
  auto r = qcast::test::run_binary("timeout 20 " QCAST_CLI_PATH, args);
  EXPECT_EQ(r.rc, 2) << args << "\n" << r.out << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
}

}  // namespace

TEST(HardeningArgs, NonFiniteAndOutOfRangeFloatsAreRefused) {
  expect_refused("bench --min-time nan --size 16K -f int8", "nan");
  expect_refused("bench --min-time inf --size 16K -f int8", "inf");
  expect_refused("bench --min-time -1 --size 16K -f int8", "-1");
  expect_refused("bench --size nanM -f int8", "--size");
  expect_refused("generate m.bin --temperature nan", "nan");
  expect_refused("generate m.bin --temperature 1e999", "1e999");
  expect_refused("cost --arch " QCAST_SOURCE_DIR "/CMakeLists.txt --time-limit nan", "nan");
  expect_refused("cost --arch " QCAST_SOURCE_DIR "/CMakeLists.txt --time-limit -5", "-5");
}

TEST(HardeningArgs, SeedsMustFitIn64Bits) {
  expect_refused("cast a.npy b.npy -f int8 --seed 18446744073709551616", "64 bits");
  expect_refused("cast a.npy b.npy -f int8 --seed 99999999999999999999999", "64 bits");
  expect_refused("cast a.npy b.npy -f int8 --seed -1", "-1");
  expect_refused("study --seed 18446744073709551616", "64 bits");
  expect_refused("quantize m.onnx --weights int8@fp32/ch0 --calib c --out o.safetensors --seed 1e3", "1e3");
  // The largest seed is accepted (it then fails only on the missing input file).
  auto r = run_cli("cast /nonexistent.npy b.npy -f int8 --seed 18446744073709551615");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("nonexistent"), std::string::npos) << r.err;
}

TEST(HardeningArgs, RotateBlockIsAPowerOfTwoUpTo128) {
  for (const char* b : {"0", "3", "-8", "256"}) expect_refused(std::string("quantize m.onnx --weights int8@fp32/ch0 --calib c --out o.safetensors --rotate-block ") + b, b);
}
