#include "qcast/tensor_files.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/file.hpp"
#include "qcast/io.hpp"

namespace qcast {

bool is_npy_path(const std::string& path) {
  if (has_extension(path, ".npy")) return true;
  if (has_extension(path, ".safetensors")) return false;
  throw Error("'" + path + "': unknown file type (expected .npy or .safetensors)");
}

void write_tensor_file(const std::string& path, const std::string& name, const Tensor& t) {
  if (is_npy_path(path)) write_npy(path, t);
  else write_safetensors(path, {{name, t}});
}

bool is_float_tensor(const Tensor& t) { return t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16; }

namespace {

using TransformFn = std::function<void(const std::string&, const Shape&, const FloatSource&, const FloatSink&)>;

// The values of tensor t (which lies in `file`) as float32 windows: pread of F32 data (no first touch of
// the mapping's pages), a copy out of a converted tensor otherwise.
FloatSource source_of(const MappedFile& file, const Tensor& t, Tensor& converted) {
  if (t.dtype == DType::F32) {
    const std::uint64_t base = static_cast<std::uint64_t>(static_cast<const std::uint8_t*>(t.data) - file.data());
    return [&file, base](std::int64_t offset, std::int64_t count, float* dst) {
      file.read_at(dst, static_cast<std::size_t>(count) * sizeof(float), base + static_cast<std::uint64_t>(offset) * sizeof(float));
    };
  }
  converted = t.to_f32();
  const float* p = converted.f32();
  return [p](std::int64_t offset, std::int64_t count, float* dst) {
    std::memcpy(dst, p + offset, static_cast<std::size_t>(count) * sizeof(float));
  };
}

// Runs fn on tensor t of `file` and writes the windows it delivers (possibly from several threads) at their
// places after the current file position, checking that they cover exactly its n values; the file
// position ends after the tensor.
void write_transformed(int fd, const std::string& out, const std::string& name, const MappedFile& file, const Tensor& t,
                       const TransformFn& fn) {
  const std::int64_t n = t.numel();
  Tensor converted;
  const FloatSource source = source_of(file, t, converted);
  const off_t base = ::lseek(fd, 0, SEEK_CUR);
  if (base < 0) throw Error("cannot write '" + out + "': " + std::strerror(errno));
  std::mutex mu;
  std::vector<std::pair<std::int64_t, std::int64_t>> windows;
  fn(name, t.shape, source, [&](std::int64_t offset, const float* v, std::int64_t count) {
    if (offset < 0 || count < 0 || count > n - offset) throw Error("internal: transform of '" + name + "' delivered a window outside the tensor");
    pwrite_all(fd, v, static_cast<std::size_t>(count) * sizeof(float), static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(offset) * sizeof(float), out);
    std::lock_guard<std::mutex> lk(mu);
    windows.emplace_back(offset, count);
  });
  std::sort(windows.begin(), windows.end());
  std::int64_t covered = 0;
  for (const auto& [offset, count] : windows) {
    if (offset != covered) throw Error("internal: transform of '" + name + "' left a gap or an overlap at value " + std::to_string(covered));
    covered += count;
  }
  if (covered != n) throw Error("internal: transform of '" + name + "' delivered " + std::to_string(covered) + " of " + std::to_string(n) + " values");
  if (::lseek(fd, base + static_cast<off_t>(n) * static_cast<off_t>(sizeof(float)), SEEK_SET) < 0)
    throw Error("cannot write '" + out + "': " + std::strerror(errno));
}

}  // namespace

int transform_float_tensors(const std::string& in, const std::string& out,
                            const std::function<bool(const std::string&)>& select, const TransformFn& fn) {
  const bool npy = is_npy_path(in);
  if (is_npy_path(out) != npy) throw Error("'" + out + "' must have the same file type as '" + in + "'");
  const auto file = std::make_shared<MappedFile>(in);
  if (npy) {
    const Tensor t = parse_npy(file->data(), file->size(), file, in);
    if (t.dtype != DType::F32 && t.dtype != DType::F16)
      throw Error("'" + in + "': expected a float32 or float16 array, got " + dtype_name(t.dtype));
    const std::string h = npy_header(DType::F32, t.shape);
    write_file_atomic(out, [&](int fd) {
      write_all(fd, h.data(), h.size(), out);
      write_transformed(fd, out, "", *file, t, fn);
    });
    return 1;
  }
  const SafeTensorsFile st = parse_safetensors(file->data(), file->size(), file, in);
  std::vector<bool> chosen;
  std::vector<SafeTensorsEntry> entries;
  for (auto& nt : st.tensors) {
    const bool c = is_float_tensor(nt.tensor) && select(nt.name);
    chosen.push_back(c);
    const std::uint64_t bytes = c ? static_cast<std::uint64_t>(nt.tensor.numel()) * 4 : nt.tensor.nbytes();
    entries.push_back({nt.name, c ? DType::F32 : nt.tensor.dtype, nt.tensor.shape, bytes});
  }
  const std::string hs = safetensors_header(entries, st.metadata, out);
  int count = 0;
  write_file_atomic(out, [&](int fd) {
    std::uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(hs.size()) >> (8 * i));
    write_all(fd, len, 8, out);
    write_all(fd, hs.data(), hs.size(), out);
    for (std::size_t i = 0; i < st.tensors.size(); ++i) {
      const auto& nt = st.tensors[i];
      if (chosen[i]) {
        write_transformed(fd, out, nt.name, *file, nt.tensor, fn);
        ++count;
      } else {
        write_all(fd, nt.tensor.data, nt.tensor.nbytes(), out);
      }
    }
  });
  return count;
}

}  // namespace qcast
