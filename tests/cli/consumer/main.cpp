#include <cstdio>
#include <vector>

#include <qcast/format.hpp>
#include <qcast/quantize.hpp>

int main() {
  const qcast::Format f = qcast::Format::parse("mxfp4");
  std::vector<float> x = {5.0f, -0.3f, 2.6f, 0.0f}, q(4);
  qcast::fake_quant(f, x.data(), q.data(), {4});
  std::printf("%s %.2f %g %g %g\n", f.expanded().c_str(), f.bits_per_element(), q[0], q[1], q[2]);
  return 0;
}
