// TEMPORARY: placeholders for the number-format core, which lands on main separately. Removed when
// main is merged into this branch (the real definitions live in src/format/).
#include "qcast/error.hpp"
#include "qcast/format.hpp"
#include "qcast/quantize.hpp"

namespace qcast {
Format Format::parse(std::string_view name) { throw Error("number formats are not available in this build ('" + std::string(name) + "')"); }
std::string Format::canonical() const { return name; }
double Format::bits_per_element() const { return 32.0; }
void fake_quant(const Format&, const float*, float*, const Shape&, const QuantOptions&) {
  throw Error("number formats are not available in this build");
}
}  // namespace qcast
