// qcast::Error — the one exception type the library throws for bad input.
// The message names what is at fault (file, tensor, shape, format); the CLI prints it and exits with 2.
#pragma once
#include <stdexcept>
#include <string>

namespace qcast {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace qcast
