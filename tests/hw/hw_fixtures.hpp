// Small hardware inputs shared by the hw tests: a 1-D convolution and a three-level architecture, and
// the message of the qcast::Error a call throws.
#pragma once
#include <functional>
#include <string>

#include "qcast/error.hpp"

namespace qcast::hw::fixtures {

inline constexpr const char* kProb = R"(problem:
  shape:
    name: Conv1D
    dimensions: [ R, P ]
    data_spaces:
    - name: Weights
      projection: [ [ [R] ] ]
    - name: Inputs
      projection: [ [ [R], [P] ] ]
    - name: Outputs
      projection: [ [ [P] ] ]
      read_write: True
  instance: { R: 3, P: 16 }
)";

inline constexpr const char* kArch = R"(architecture:
  version: 0.4
  nodes:
  - !Component
    name: MainMemory
    class: DRAM
    attributes: { width: 64, datawidth: 8 }
  - !Component
    name: Buffer
    class: regfile
    attributes: { depth: 64, width: 8, datawidth: 8 }
  - !Component
    name: MACC
    class: intmac
    attributes: { width: 8 }
)";

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qcast::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace qcast::hw::fixtures
