// The GGUF module moved to the io layer (qcast/gguf.hpp, namespace qcast::gguf); this alias keeps
// ptq::gguf:: spellings working.
#pragma once
#include "qcast/gguf.hpp"

namespace qcast::ptq {
namespace gguf = ::qcast::gguf;
}  // namespace qcast::ptq
