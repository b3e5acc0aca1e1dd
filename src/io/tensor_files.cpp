#include "qcast/tensor_files.hpp"

#include <cstring>
#include <nlohmann/json.hpp>

#include "qcast/error.hpp"
#include "qcast/file.hpp"

namespace qcast {

bool is_npy_path(const std::string& path) {
  if (has_extension(path, ".npy")) return true;
  if (has_extension(path, ".safetensors")) return false;
  throw Error("'" + path + "': unknown file type (expected .npy or .safetensors)");
}

bool is_float_tensor(const Tensor& t) { return t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16; }

namespace {

// Runs fn on one tensor and writes what it delivers to fd, checking that it delivers exactly n values.
void write_transformed(int fd, const std::string& out, const std::string& name, const Tensor& t,
                       const std::function<void(const std::string&, const Tensor&, const FloatSink&)>& fn) {
  const std::int64_t n = t.numel();
  std::int64_t written = 0;
  fn(name, t, [&](const float* v, std::int64_t count) {
    if (count < 0 || written + count > n) throw Error("internal: transform of '" + name + "' delivered too many values");
    write_all(fd, v, static_cast<std::size_t>(count) * sizeof(float), out);
    written += count;
  });
  if (written != n) throw Error("internal: transform of '" + name + "' delivered " + std::to_string(written) + " of " + std::to_string(n) + " values");
}

}  // namespace

int transform_float_tensors(const std::string& in, const std::string& out,
                            const std::function<bool(const std::string&)>& select,
                            const std::function<void(const std::string&, const Tensor&, const FloatSink&)>& fn) {
  const bool npy = is_npy_path(in);
  if (is_npy_path(out) != npy) throw Error("'" + out + "' must have the same file type as '" + in + "'");
  if (npy) {
    Tensor t = read_npy(in);
    if (t.dtype != DType::F32 && t.dtype != DType::F16)
      throw Error("'" + in + "': expected a float32 or float16 array, got " + dtype_name(t.dtype));
    const Tensor f = t.to_f32();
    const std::string h = npy_header(DType::F32, f.shape);
    write_file_atomic(out, [&](int fd) {
      write_all(fd, h.data(), h.size(), out);
      write_transformed(fd, out, "", f, fn);
    });
    return 1;
  }
  const SafeTensorsFile st = read_safetensors(in);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!st.metadata.empty()) header["__metadata__"] = st.metadata;
  std::vector<bool> chosen;
  std::uint64_t off = 0;
  for (auto& nt : st.tensors) {
    const bool c = is_float_tensor(nt.tensor) && select(nt.name);
    chosen.push_back(c);
    const std::uint64_t bytes = c ? static_cast<std::uint64_t>(nt.tensor.numel()) * 4 : nt.tensor.nbytes();
    header[nt.name] = {{"dtype", c ? "F32" : dtype_name(nt.tensor.dtype)}, {"shape", nt.tensor.shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string hs = header.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  int count = 0;
  write_file_atomic(out, [&](int fd) {
    std::uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(hs.size()) >> (8 * i));
    write_all(fd, len, 8, out);
    write_all(fd, hs.data(), hs.size(), out);
    for (std::size_t i = 0; i < st.tensors.size(); ++i) {
      const auto& nt = st.tensors[i];
      if (chosen[i]) {
        write_transformed(fd, out, nt.name, nt.tensor.to_f32(), fn);
        ++count;
      } else {
        write_all(fd, nt.tensor.data, nt.tensor.nbytes(), out);
      }
    }
  });
  return count;
}

}  // namespace qcast
