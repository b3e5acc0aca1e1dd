// Private text helpers of the format layer.
#pragma once
#include <string>
#include <string_view>

namespace qcast::detail {

/// ASCII lower case: format names, aliases and compositions compare case-insensitively.
inline std::string ascii_lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return r;
}

}  // namespace qcast::detail
