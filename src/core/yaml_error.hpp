// yaml-cpp's exceptions in the user's terms: "FILE:LINE:COLUMN: what is wrong" instead of yaml-cpp's own
// "yaml-cpp: error at line 0, column 0: operator[] call on a scalar" (a message about its C++ API).
#pragma once
#include <yaml-cpp/yaml.h>

#include <string>

#include "qcast/error.hpp"

namespace qcast::detail {

inline Error yaml_error(const std::string& file, const YAML::Exception& e) {
  std::string what = e.msg;
  if (what.find("operator[] call on a scalar") != std::string::npos || what.find("call on a sequence") != std::string::npos)
    what = "expected a mapping (key: value) where the file has a scalar or a list";
  else if (what.find("bad conversion") != std::string::npos)
    what = "a value has the wrong type (e.g. text where a number is expected, or a list where a single value is)";
  else if (what.find("invalid node") != std::string::npos)
    what = "a value has the wrong structure (a mapping, list or scalar where another kind is expected)";
  else if (what.find("bad file") != std::string::npos)
    what = "cannot open the file";
  std::string where = file;
  if (!e.mark.is_null()) where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
  return Error(where + ": " + what);
}

}  // namespace qcast::detail
