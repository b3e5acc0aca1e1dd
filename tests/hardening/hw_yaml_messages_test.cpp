// Issue 19: the hw YAML readers report malformed input as FILE:LINE:COLUMN, the key and what was expected,
// never yaml-cpp's own text ("operator[] call on a scalar", "bad conversion", "yaml-cpp: error at line").
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>

#include "hw/yaml_util.hpp"
#include "qcast/error.hpp"
#include "qcast/hw.hpp"
#include "qcast/mapper.hpp"
#include "hw/hw_fixtures.hpp"

using namespace qcast::hw;
using namespace qcast::hw::fixtures;

namespace {


void expect_clear(const std::string& msg, const std::string& needle) {
  EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nexpected to contain: " << needle;
  for (const char* raw : {"yaml-cpp", "operator[]", "bad conversion", "invalid node", "call on a"})
    EXPECT_EQ(msg.find(raw), std::string::npos) << "raw yaml-cpp text '" << raw << "' in: " << msg;
}

}  // namespace

TEST(HwYamlMessages, SyntaxErrorsNameFileLineAndColumn) {
  expect_clear(error_of([] { Problem::from_yaml_text("problem: [1, 2", "p.yaml"); }), "p.yaml:1:");
  expect_clear(error_of([] { Problem::from_yaml_text("problem: [1, 2", "p.yaml"); }), "invalid YAML: end of sequence");
  expect_clear(error_of([] { Architecture::from_yaml_text("architecture:\n  nodes: {a: 1\n", "a.yaml"); }), "a.yaml:");
  expect_clear(error_of([] { (void)read_mapper_yaml_text("mapper: [", "mapper.yaml"); }), "mapper.yaml:1:");
}

TEST(HwYamlMessages, MappingFactorOfAListNamesTheKeyAndLine) {
  const Problem p = Problem::from_yaml_text(kProb);
  const Architecture a = Architecture::from_yaml_text(kArch);
  expect_clear(error_of([&] { Mapping::from_yaml_text("mapping:\n  - target: Buffer\n    factors: {R: [1, 3]}", p, a, "m.yaml"); }),
               "m.yaml: mapping entry for 'Buffer': factors: the factor of 'R' (line 3, column 18) must be a single number");
}

TEST(HwYamlMessages, ConstraintFactorOfAMapNamesTheKey) {
  Architecture a = Architecture::from_yaml_text(kArch);
  const std::string msg = error_of([&] {
    (void)a.apply_constraints_text("constraints:\n  targets:\n  - target: Buffer\n    type: temporal\n    factors: {P: {x: 1}}\n", "c.yaml");
  });
  expect_clear(msg, "c.yaml");
  expect_clear(msg, "the factor of 'P' (line 5");
}

TEST(HwYamlMessages, YamlCppExceptionsAreTranslated) {
  // Every fallback the readers use: a lookup in a scalar, a conversion of a list, a key of the wrong kind.
  const YAML::Node n = YAML::Load("a: 5\nb: [1, 2]\n");
  try {
    (void)n["a"]["depth"];
    FAIL() << "yaml-cpp accepted a subscript of a scalar";
  } catch (const YAML::Exception& e) {
    expect_clear(detail::yaml_error("x.yaml", e, "architecture").what(),
                 "architecture: expected a mapping (key: value lines) holding 'depth', found a single value");
    expect_clear(detail::yaml_error("x.yaml", e, "architecture").what(), "x.yaml:1:");
  }
  try {
    (void)n["b"].as<std::string>();
    FAIL() << "yaml-cpp converted a list to a string";
  } catch (const YAML::Exception& e) {
    expect_clear(detail::yaml_error("x.yaml", e, "problem").what(), "x.yaml:2:4: problem: a value of the wrong kind");
  }
}
