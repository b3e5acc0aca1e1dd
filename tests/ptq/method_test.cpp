// The PTQ method table and the --method grammar: parsed once, every row reachable by its name, bad
// strings refused with the list of methods.
#include <gtest/gtest.h>

#include <set>

#include "qcast/error.hpp"
#include "qcast/ptq/method.hpp"

using namespace qcast;

TEST(PtqMethod, EveryRowParsesByNameWithItsModifiers) {
  std::set<std::string> names;
  for (const auto& row : ptq::methods()) {
    EXPECT_TRUE(names.insert(row.name).second) << "duplicate row " << row.name;
    EXPECT_TRUE(row.run) << row.name;
    EXPECT_FALSE(row.summary.empty()) << row.name;
    const std::string text = row.name == "mixed" ? "mixed@4.5" : row.name;
    const ptq::Method m = ptq::parse_method(text);
    EXPECT_EQ(m.name(), row.name);
    EXPECT_FALSE(m.quarot);
    EXPECT_FALSE(m.bias);
    const ptq::Method q = ptq::parse_method("quarot+" + text + "+bias");
    EXPECT_EQ(q.name(), row.name);
    EXPECT_TRUE(q.quarot);
    EXPECT_TRUE(q.bias);
  }
  EXPECT_EQ(names, (std::set<std::string>{"rtn", "search", "gptq", "rotate+gptq", "lowrank", "ed", "mixed"}));
}

TEST(PtqMethod, ModifiersBudgetsAndWhatEachNeeds) {
  const ptq::Method b = ptq::parse_method("bias");
  EXPECT_EQ(b.name(), "rtn");
  EXPECT_TRUE(b.bias);
  EXPECT_DOUBLE_EQ(ptq::parse_method("mixed@4.25").mixed_bits, 4.25);
  EXPECT_TRUE(ptq::parse_method("gptq").needs(ptq::kNeedsHessian));
  EXPECT_TRUE(ptq::parse_method("rotate+gptq").needs(ptq::kNeedsHessian));
  EXPECT_TRUE(ptq::parse_method("search").needs(ptq::kNeedsInputStats));
  EXPECT_TRUE(ptq::parse_method("ed").needs(ptq::kNeedsFloatInputs));
  EXPECT_FALSE(ptq::parse_method("rtn").needs(ptq::kNeedsHessian));
  EXPECT_FALSE(ptq::parse_method("ed").needs(ptq::kNeedsHessian));
}

TEST(PtqMethod, BadStringsNameTheMethods) {
  auto msg = [](const std::string& t) {
    try {
      ptq::parse_method(t);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  for (const char* bad : {"", "gtpq", "rtn+bais", "quarot+", "+bias", "mixed", "mixed@", "mixed@0", "mixed@nan", "mixed@40", "mixed@4x"}) {
    const std::string m = msg(bad);
    EXPECT_NE(m, "(accepted)") << bad;
  }
  EXPECT_NE(msg("gtpq").find("rtn, search, gptq, rotate+gptq, lowrank, ed, mixed@BITS"), std::string::npos) << msg("gtpq");
  EXPECT_NE(msg("mixed").find("mixed@BITS"), std::string::npos);
  EXPECT_NE(msg("mixed@40").find("(0, 32]"), std::string::npos);
}
