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
  EXPECT_EQ(names, (std::set<std::string>{"rtn", "search", "gptq", "rotate+gptq", "lowrank", "ed", "imatrix", "mixed"}));
}

TEST(PtqMethod, ModifiersBudgetsAndWhatEachNeeds) {
  const ptq::Method b = ptq::parse_method("bias");
  EXPECT_EQ(b.name(), "rtn");
  EXPECT_TRUE(b.bias);
  EXPECT_DOUBLE_EQ(ptq::parse_method("mixed@4.25").mixed_bits, 4.25);
  EXPECT_TRUE(ptq::parse_method("gptq").needs(ptq::kNeedsHessian));
  EXPECT_TRUE(ptq::parse_method("rotate+gptq").needs(ptq::kNeedsHessian));
  EXPECT_TRUE(ptq::parse_method("search").needs(ptq::kNeedsInputStats));
  EXPECT_TRUE(ptq::parse_method("imatrix").needs(ptq::kNeedsInputStats));
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
  EXPECT_NE(msg("gtpq").find("rtn, search, gptq, rotate+gptq, lowrank, ed, imatrix, mixed@BITS"), std::string::npos) << msg("gtpq");
  EXPECT_NE(msg("mixed").find("mixed@BITS"), std::string::npos);
  EXPECT_NE(msg("mixed@40").find("(0, 32]"), std::string::npos);
  for (const char* bad : {"mixed@energy=", "mixed@energy=0", "mixed@energy=1.5", "mixed@energy=120%", "mixed@energy=3kJ",
                          "mixed@energy=12cycles", "mixed@cycles=12uJ", "mixed@cycles=-3cycles", "mixed@energy=nan", "mixed@power=0.5"})
    EXPECT_NE(msg(bad), "(accepted)") << bad;
  EXPECT_NE(msg("mixed@energy=2").find("fraction of the fp32 model's energy"), std::string::npos) << msg("mixed@energy=2");
}

// Hardware budgets: a fraction of the fp32 model (bare or %) or an absolute energy / cycle count.
TEST(PtqMethod, HardwareBudgetsTakeFractionsAndUnits) {
  const ptq::Method e = ptq::parse_method("mixed@energy=0.4");
  EXPECT_EQ(e.name(), "mixed");
  EXPECT_EQ(e.budget, ptq::Method::Budget::Energy);
  EXPECT_TRUE(e.mixed_fraction);
  EXPECT_DOUBLE_EQ(e.mixed_budget, 0.4);
  EXPECT_DOUBLE_EQ(ptq::parse_method("mixed@energy=40%").mixed_budget, 0.4);
  const ptq::Method u = ptq::parse_method("mixed@energy=12.5uJ+bias");
  EXPECT_FALSE(u.mixed_fraction);
  EXPECT_TRUE(u.bias);
  EXPECT_DOUBLE_EQ(u.mixed_budget, 12.5e6);  // pJ
  EXPECT_DOUBLE_EQ(ptq::parse_method("mixed@energy=3nJ").mixed_budget, 3e3);
  const ptq::Method c = ptq::parse_method("mixed@cycles=150000cycles");
  EXPECT_EQ(c.budget, ptq::Method::Budget::Cycles);
  EXPECT_DOUBLE_EQ(c.mixed_budget, 150000);
  EXPECT_EQ(ptq::parse_method("mixed@4.5").budget, ptq::Method::Budget::Bits);
}
