// Internal helpers for the hw YAML parsers: loading with file-named errors, typed scalar access.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <vector>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "qcast/error.hpp"

namespace qcast::hw::detail {

/// ASCII lower case (class names, table names, format names and operator names compare case-insensitively).
inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(std::string("cannot open ") + what + " file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Timeloop's example files are Jinja templates whose only template code is
/// `{{include_text('relative/path')}}` (paste a file); this expands that, relative to the directory
/// of `path`, and refuses any other template code with a clear message.
inline std::string expand_includes(const std::string& text, const std::string& path, int depth = 0) {
  if (depth > 16) throw Error(path + ": include_text nested more than 16 deep");
  std::string out;
  size_t pos = 0;
  const std::string dir = path.find('/') == std::string::npos ? std::string(".") : path.substr(0, path.rfind('/'));
  for (;;) {
    size_t a = text.find("{{", pos), b = text.find("{%", pos);
    size_t open = std::min(a, b);
    if (open == std::string::npos) break;
    // Inside a quoted scalar or a comment, braces are data, not Jinja.
    size_t bol = text.rfind('\n', open);
    bol = bol == std::string::npos ? 0 : bol + 1;
    std::string before = text.substr(bol, open - bol);
    if (before.find('#') != std::string::npos || before.find('"') != std::string::npos || before.find('\'') != std::string::npos) {
      out += text.substr(pos, open + 2 - pos);
      pos = open + 2;
      continue;
    }
    size_t close = text.find(open == b ? "%}" : "}}", open);
    std::string code = text.substr(open + 2, close == std::string::npos ? std::string::npos : close - open - 2);
    auto trim = [](std::string t) {
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(t.begin());
      while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
      return t;
    };
    code = trim(code);
    std::string arg;
    bool ok = open == a && close != std::string::npos && code.rfind("include_text(", 0) == 0 && code.back() == ')';
    if (ok) {
      arg = trim(code.substr(13, code.size() - 14));
      ok = arg.size() >= 2 && (arg.front() == '\'' || arg.front() == '"') && arg.back() == arg.front();
      if (ok) arg = arg.substr(1, arg.size() - 2);
    }
    if (!ok)
      throw Error(path + ": Jinja template code '" + text.substr(open, std::min<size_t>(60, text.size() - open)) +
                  "' is not supported (only {{include_text('file')}}); render the template first");
    std::string inc = arg.front() == '/' ? arg : dir + "/" + arg;
    out += text.substr(pos, open - pos);
    out += expand_includes(read_text(inc, "included"), inc, depth + 1);
    pos = close + 2;
  }
  out += text.substr(pos);
  return out;
}

/// Resolves YAML merge keys: `<<` (shallow, YAML 1.1) and Timeloop's `<<<` (deep merge) in maps, as
/// Timeloop's front end does (yaml-cpp keeps them as ordinary keys).
/// Whether a merge key ('<<' or '<<<') occurs anywhere in `n`.
inline bool has_merges(const YAML::Node& n, int depth = 0) {
  if (depth > 256) throw Error("YAML nested more than 256 deep");
  if (n.IsSequence()) {
    for (auto x : n)
      if (has_merges(x, depth + 1)) return true;
  } else if (n.IsMap()) {
    for (auto it : n) {
      if (it.first.IsScalar() && (it.first.Scalar() == "<<" || it.first.Scalar() == "<<<")) return true;
      if (has_merges(it.second, depth + 1)) return true;
    }
  }
  return false;
}

inline YAML::Node resolve_merges(const YAML::Node& n, int depth = 0) {
  if (depth > 256) throw Error("YAML nested more than 256 deep");
  // A subtree without merge keys is returned as it is, so that its nodes keep their line numbers for
  // messages (the rebuilt nodes below have none).
  if (depth == 0 && !has_merges(n)) return n;
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    out.SetTag(n.Tag());
    for (auto x : n) out.push_back(resolve_merges(x, depth + 1));
    return out;
  }
  if (!n.IsMap()) return n;
  std::function<void(YAML::Node&, const YAML::Node&, bool)> merge = [&](YAML::Node& dst, const YAML::Node& src, bool deep) {
    if (!src.IsMap()) throw Error("a YAML merge key ('<<' or '<<<') must refer to a map");
    for (auto it : src) {
      const std::string k = it.first.as<std::string>();
      if (deep && dst[k] && dst[k].IsMap() && it.second.IsMap()) {
        YAML::Node sub = dst[k];
        YAML::Node merged(YAML::NodeType::Map);
        merge(merged, it.second, true);
        merge(merged, sub, true);
        dst[k] = merged;
      } else {
        dst[k] = it.second;
      }
    }
  };
  YAML::Node out(YAML::NodeType::Map);
  out.SetTag(n.Tag());
  for (const char* mk : {"<<", "<<<"}) {
    if (!n[mk]) continue;
    YAML::Node base = n[mk];
    if (base.IsSequence()) {
      for (auto b : base) merge(out, resolve_merges(b, depth + 1), std::string(mk) == "<<<");
    } else {
      merge(out, resolve_merges(base, depth + 1), std::string(mk) == "<<<");
    }
  }
  // The node's own keys win over merged ones (deep-merged for '<<<').
  const bool deep = static_cast<bool>(n["<<<"]);
  for (auto it : n) {
    const std::string k = it.first.as<std::string>();
    if (k == "<<" || k == "<<<") continue;
    YAML::Node v = resolve_merges(it.second, depth + 1);
    if (deep && out[k] && out[k].IsMap() && v.IsMap()) {
      YAML::Node merged(YAML::NodeType::Map);
      merge(merged, out[k], true);
      merge(merged, v, true);
      out[k] = merged;
    } else {
      out[k] = v;
    }
  }
  return out;
}

/// "SOURCE:LINE:COLUMN" of a yaml-cpp mark (just SOURCE when yaml-cpp has no position).
inline std::string yaml_where(const std::string& source, const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

/// " (line L, column C)" of a node, for messages that already name the file and the entry.
inline std::string at_line(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return "";
  return " (line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ")";
}

/// A yaml-cpp exception in the user's terms: the file, line and column, the key yaml-cpp was looking up
/// (when it says), and what the file should have there, instead of yaml-cpp's text about its C++ API
/// ("operator[] call on a scalar", "bad conversion", "invalid node"). `what` names the document
/// ("architecture", "problem", "mapping", ...).
inline Error yaml_error(const std::string& source, const YAML::Exception& e, const std::string& what) {
  const std::string& msg = e.msg;
  std::string key;
  for (const char* pre : {"(key: \"", "first invalid key: \""}) {
    const auto p = msg.find(pre);
    if (p == std::string::npos) continue;
    const auto b = p + std::char_traits<char>::length(pre);
    const auto q = msg.find('"', b);
    key = msg.substr(b, q == std::string::npos ? std::string::npos : q - b);
  }
  std::string text;
  if (msg.find("operator[] call on a scalar") != std::string::npos)
    text = "expected a mapping (key: value lines)" + (key.empty() ? std::string() : " holding '" + key + "'") +
           ", found a single value";
  else if (msg.find("bad conversion") != std::string::npos)
    text = "a value of the wrong kind: expected a single number, name or true/false here, found " +
           std::string("a list, a mapping or text that is not of the expected type");
  else if (msg.find("invalid node") != std::string::npos)
    text = "expected " + (key.empty() ? std::string("a value") : "'" + key + "'") +
           " inside a mapping, found a list or a single value where the mapping should be";
  else if (msg.find("call on a sequence") != std::string::npos || msg.find("sequence") != std::string::npos)
    text = "expected a mapping (key: value lines), found a list";
  else
    text = msg;  // yaml-cpp's parser messages ("end of map not found", "illegal map value") are about the text
  return Error(yaml_where(source, e.mark) + ": " + what + ": " + text);
}

inline YAML::Node load(const std::string& text, const std::string& source) {
  try {
    return resolve_merges(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw Error(yaml_where(source, e.mark) + ": invalid YAML: " + e.msg);
  }
}

inline std::int64_t as_int(const YAML::Node& n, const std::string& source, const std::string& field) {
  if (!n.IsScalar()) throw Error(source + ": '" + field + "' must be an integer");
  const std::string s = n.as<std::string>();
  try {
    size_t pos = 0;
    long long v = std::stoll(s, &pos);
    if (pos == s.size()) return v;
    // "16.0", "1e3": integral values written as numbers.
    double d = std::stod(s, &pos);
    if (pos != s.size() || !(std::fabs(d) < 9.2e18) || d != std::floor(d))
      throw Error(source + ": '" + field + "' must be an integer in the 64-bit range, got '" + s + "'");
    return static_cast<std::int64_t>(d);
  } catch (const Error&) {
    throw;
  } catch (const std::out_of_range&) {
    throw Error(source + ": '" + field + "' must be an integer in the 64-bit range, got '" + s + "'");
  } catch (const std::exception&) {
    throw Error(source + ": '" + field + "' must be an integer, got '" + s + "'");
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

/// a * b, or a qcast::Error naming `what` when the product leaves the int64 range.
inline std::int64_t mul_checked(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw Error(what + ": the product " + std::to_string(a) + " x " + std::to_string(b) + " overflows 64 bits");
  return r;
}

/// a + b, or a qcast::Error naming `what` on overflow.
inline std::int64_t add_checked(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw Error(what + ": the sum " + std::to_string(a) + " + " + std::to_string(b) + " overflows 64 bits");
  return r;
}

/// Splits "R=3 P=16", "R=3,P=16" or Timeloop's written form into words.
inline std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == ',' || c == '\t' || c == '\n') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

/// One factor word: "K=2" or the form Timeloop's mapper writes, "K2". `is_dim` says whether a prefix
/// names a dimension (may be null: then the letters before the trailing digits are the name).
/// Returns false when the word has neither form.
template <class IsDim>
bool split_factor(const std::string& w, IsDim is_dim, std::string& dim, std::string& value) {
  if (auto eq = w.find('='); eq != std::string::npos) {
    dim = w.substr(0, eq);
    value = w.substr(eq + 1);
    return !dim.empty() && !value.empty();
  }
  size_t k = w.size();
  while (k > 0 && std::isdigit(static_cast<unsigned char>(w[k - 1]))) --k;
  if (k == 0 || k == w.size()) return false;
  // Prefer the longest prefix that is a dimension (a dimension name may end in digits).
  for (size_t cut = w.size() - 1; cut >= k; --cut) {
    if (is_dim(w.substr(0, cut))) {
      dim = w.substr(0, cut);
      value = w.substr(cut);
      return true;
    }
    if (cut == 0) break;
  }
  dim = w.substr(0, k);
  value = w.substr(k);
  return true;
}

inline std::string as_str(const YAML::Node& n, const std::string& source, const std::string& field) {
  if (!n || !n.IsScalar()) throw Error(source + ": '" + field + "' must be a string");
  return n.as<std::string>();
}

}  // namespace qcast::hw::detail
