// Internal helpers for the hw YAML parsers: loading with file-named errors, typed scalar access.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "qcast/error.hpp"

namespace qcast::hw::detail {

inline std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(std::string("cannot open ") + what + " file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline YAML::Node load(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(source + ": invalid YAML: " + e.what());
  }
}

inline std::int64_t as_int(const YAML::Node& n, const std::string& source, const std::string& field) {
  try {
    if (!n.IsScalar()) throw Error(source + ": '" + field + "' must be an integer");
    std::string s = n.as<std::string>();
    size_t pos = 0;
    double d = std::stod(s, &pos);
    if (pos != s.size() || d != static_cast<double>(static_cast<std::int64_t>(d)))
      throw Error(source + ": '" + field + "' must be an integer, got '" + s + "'");
    return static_cast<std::int64_t>(d);
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw Error(source + ": '" + field + "' must be an integer");
  }
}

inline double as_double(const YAML::Node& n, const std::string& source, const std::string& field) {
  try {
    if (!n.IsScalar()) throw Error(source + ": '" + field + "' must be a number");
    std::string s = n.as<std::string>();
    size_t pos = 0;
    double d = std::stod(s, &pos);
    if (pos != s.size()) throw Error(source + ": '" + field + "' must be a number, got '" + s + "'");
    return d;
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {
    throw Error(source + ": '" + field + "' must be a number");
  }
}

inline std::string as_str(const YAML::Node& n, const std::string& source, const std::string& field) {
  if (!n || !n.IsScalar()) throw Error(source + ": '" + field + "' must be a string");
  return n.as<std::string>();
}

}  // namespace qcast::hw::detail
