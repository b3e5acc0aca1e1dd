#include <cstring>
#include <string_view>

#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/io.hpp"

namespace qcast {

namespace {

// Reads the value of `key` in the python-dict header, e.g. "'descr': '<f4'"; returns the raw text.
std::string dict_value(std::string_view header, std::string_view key, const std::string& what) {
  std::string pat = "'" + std::string(key) + "'";
  auto k = header.find(pat);
  if (k == std::string_view::npos) throw Error(what + ": npy header has no '" + std::string(key) + "' entry");
  auto colon = header.find(':', k + pat.size());
  if (colon == std::string_view::npos) throw Error(what + ": malformed npy header");
  auto v = header.substr(colon + 1);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  if (v.empty()) throw Error(what + ": malformed npy header");
  if (v.front() == '\'') {
    auto end = v.find('\'', 1);
    if (end == std::string_view::npos) throw Error(what + ": malformed npy header string");
    return std::string(v.substr(1, end - 1));
  }
  if (v.front() == '(') {
    auto end = v.find(')');
    if (end == std::string_view::npos) throw Error(what + ": malformed npy shape");
    return std::string(v.substr(1, end - 1));
  }
  auto end = v.find_first_of(",}");
  return std::string(v.substr(0, end));
}

DType descr_dtype(const std::string& d, const std::string& what) {
  if (d.size() >= 2 && d[0] == '>' && d.substr(1) != "u1" && d.substr(1) != "i1" && d.substr(1) != "b1")
    throw Error(what + ": big-endian npy data ('" + d + "') is not supported");
  std::string t = (d.size() >= 2 && (d[0] == '<' || d[0] == '|' || d[0] == '=')) ? d.substr(1) : d;
  if (t == "f4") return DType::F32;
  if (t == "f2") return DType::F16;
  if (t == "f8") return DType::F64;
  if (t == "u1") return DType::U8;
  if (t == "i1") return DType::I8;
  if (t == "i2") return DType::I16;
  if (t == "u2") return DType::U16;
  if (t == "i4") return DType::I32;
  if (t == "u4") return DType::U32;
  if (t == "i8") return DType::I64;
  if (t == "u8") return DType::U64;
  if (t == "b1") return DType::Bool;
  throw Error(what + ": unsupported npy dtype '" + d + "'");
}

std::string descr_of(DType t) {
  switch (t) {
    case DType::F32: return "<f4";
    case DType::F16: return "<f2";
    case DType::F64: return "<f8";
    case DType::U8: return "|u1";
    case DType::I8: return "|i1";
    case DType::I16: return "<i2";
    case DType::U16: return "<u2";
    case DType::I32: return "<i4";
    case DType::U32: return "<u4";
    case DType::I64: return "<i8";
    case DType::U64: return "<u8";
    case DType::Bool: return "|b1";
    case DType::BF16: break;
  }
  throw Error("dtype " + dtype_name(t) + " cannot be stored in .npy");
}

}  // namespace

Tensor parse_npy(const std::uint8_t* data, std::size_t size, std::shared_ptr<const void> owner, const std::string& what) {
  static const char kMagic[] = "\x93NUMPY";
  if (size < 10 || std::memcmp(data, kMagic, 6) != 0) throw Error(what + ": not a .npy file (bad magic)");
  const int major = data[6];
  std::size_t header_len = 0, pos = 0;
  if (major == 1) {
    header_len = data[8] | (static_cast<std::size_t>(data[9]) << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) throw Error(what + ": truncated .npy header");
    header_len = data[8] | (static_cast<std::size_t>(data[9]) << 8) | (static_cast<std::size_t>(data[10]) << 16) |
                 (static_cast<std::size_t>(data[11]) << 24);
    pos = 12;
  } else {
    throw Error(what + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > size - pos) throw Error(what + ": truncated .npy header (header says " + std::to_string(header_len) + " bytes)");
  std::string_view header(reinterpret_cast<const char*>(data + pos), header_len);
  const std::string descr = dict_value(header, "descr", what);
  const std::string fortran = dict_value(header, "fortran_order", what);
  const std::string shape_txt = dict_value(header, "shape", what);
  if (fortran.rfind("False", 0) != 0) {
    if (fortran.rfind("True", 0) == 0) throw Error(what + ": Fortran-order .npy arrays are not supported; save with C order");
    throw Error(what + ": malformed fortran_order in .npy header");
  }
  Tensor t;
  t.dtype = descr_dtype(descr, what);
  std::size_t i = 0;
  while (i < shape_txt.size()) {
    while (i < shape_txt.size() && (shape_txt[i] == ' ' || shape_txt[i] == ',')) ++i;
    if (i >= shape_txt.size()) break;
    std::size_t j = i;
    std::int64_t v = 0;
    while (j < shape_txt.size() && shape_txt[j] >= '0' && shape_txt[j] <= '9') {
      if (v > (std::int64_t{1} << 50)) throw Error(what + ": npy shape dimension too large");
      v = v * 10 + (shape_txt[j] - '0');
      ++j;
    }
    if (j == i) throw Error(what + ": malformed npy shape '(" + shape_txt + ")'");
    t.shape.push_back(v);
    i = j;
  }
  const std::size_t data_off = pos + header_len;
  const std::int64_t n = shape_numel(t.shape);
  const std::size_t need = static_cast<std::size_t>(n) * dtype_size(t.dtype);
  if (static_cast<std::uint64_t>(n) > (std::uint64_t{1} << 60) / dtype_size(t.dtype) || size - data_off < need)
    throw Error(what + ": truncated .npy data: shape " + shape_str(t.shape) + " needs " + std::to_string(need) +
                " bytes, file has " + std::to_string(size - data_off));
  if (size - data_off != need)
    throw Error(what + ": .npy file has " + std::to_string(size - data_off - need) + " trailing bytes after the data");
  t.data = data + data_off;
  t.owner = std::move(owner);
  return t;
}

Tensor read_npy(const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  return parse_npy(file->data(), file->size(), file, path);
}

std::string npy_header(DType dtype, const Shape& shape) {
  std::string dict = "{'descr': '" + descr_of(dtype) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1) dict += ",";
    else if (i + 1 < shape.size()) dict += ", ";
  }
  dict += "), }";
  std::size_t total = 10 + dict.size() + 1;
  std::size_t pad = (64 - total % 64) % 64;
  dict.append(pad, ' ');
  dict += '\n';
  std::string h = std::string("\x93NUMPY\x01\x00", 8);
  h += static_cast<char>(dict.size() & 0xff);
  h += static_cast<char>((dict.size() >> 8) & 0xff);
  return h + dict;
}

void write_npy(const std::string& path, const Tensor& t) {
  const std::string h = npy_header(t.dtype, t.shape);
  write_file_atomic(path, [&](int fd) {
    write_all(fd, h.data(), h.size(), path);
    write_all(fd, t.data, t.nbytes(), path);
  });
}

bool has_extension(const std::string& path, const std::string& ext) {
  return path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
}

}  // namespace qcast
