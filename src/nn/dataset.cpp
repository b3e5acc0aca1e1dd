// Datasets: IDX (MNIST family), .npy sets, text stories, YAML dataset specs and preprocessing.
#include "qcast/nn/dataset.hpp"

#include <yaml-cpp/yaml.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "qcast/error.hpp"
#include "qcast/io.hpp"
#include "qcast/nn/graph.hpp"
#include "core/yaml_error.hpp"

namespace qcast::nn {

namespace fs = std::filesystem;

namespace {

// An open IDX stream: gzread reads gzip files and passes any other file through unchanged, so raw and
// .gz IDX files take the same path.
struct GzStream {
  gzFile f = nullptr;
  std::string path;
  explicit GzStream(const std::string& p) : path(p) {
    f = gzopen(p.c_str(), "rb");
    if (!f) throw Error(p + ": cannot open");
  }
  ~GzStream() { if (f) gzclose(f); }
  GzStream(const GzStream&) = delete;
  GzStream& operator=(const GzStream&) = delete;
  /// Reads up to n bytes; returns how many were read (fewer only at the end of the data).
  std::size_t read(void* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
      const int r = gzread(f, static_cast<char*>(dst) + got, chunk);
      if (r < 0) throw Error(path + ": corrupt gzip stream");
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
};

}  // namespace

std::vector<float> read_idx(const std::string& path, Shape& shape, std::int64_t max_items) {
  // Streamed: the header says how many bytes follow, and only the first max_items items are decompressed,
  // so neither a gzip bomb behind a small header nor a --limit on a large set costs more than it asks for.
  GzStream in(path);
  unsigned char head[4];
  if (in.read(head, 4) < 4 || head[0] != 0 || head[1] != 0) throw Error(path + ": not an IDX file (bad magic)");
  const auto type = head[2];
  const int nd = head[3];
  std::size_t es;
  switch (type) {
    case 0x08: case 0x09: es = 1; break;
    case 0x0B: es = 2; break;
    case 0x0C: case 0x0D: es = 4; break;
    case 0x0E: es = 8; break;
    default: throw Error(path + ": unknown IDX element type " + std::to_string(type));
  }
  std::vector<unsigned char> dims(4 * static_cast<std::size_t>(nd));
  if (nd < 1 || in.read(dims.data(), dims.size()) < dims.size()) throw Error(path + ": truncated IDX header");
  shape.clear();
  for (int k = 0; k < nd; ++k) {
    const unsigned char* p = dims.data() + 4 * k;
    shape.push_back((std::int64_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]);
  }
  std::int64_t item = 1;  // values per item (the product of the dims after the first)
  try {
    item = shape_numel(Shape(shape.begin() + 1, shape.end()));
    shape_numel(shape);
  } catch (const Error& e) {
    throw Error(path + ": IDX header " + shape_str(shape) + ": " + e.what());
  }
  const std::int64_t items = max_items >= 0 ? std::min(shape[0], max_items) : shape[0];
  const std::size_t cnt = static_cast<std::size_t>(items * item);
  const std::size_t implied = static_cast<std::size_t>(shape_numel(shape)) * es;
  std::vector<float> out;
  // Grow with the data actually read: a header that promises more than the file holds costs nothing.
  std::vector<unsigned char> buf;
  const std::size_t chunk_vals = std::max<std::size_t>(1, (std::size_t{1} << 20) / es);
  for (std::size_t done = 0; done < cnt;) {
    const std::size_t k = std::min(chunk_vals, cnt - done);
    buf.resize(k * es);
    const std::size_t got = in.read(buf.data(), buf.size());
    if (got < buf.size())
      throw Error(path + ": IDX data has " + std::to_string(done * es + got) + " bytes, the header " + shape_str(shape) + " implies " +
                  std::to_string(implied));
    out.resize(done + k);
    for (std::size_t j = 0; j < k; ++j) {
      const unsigned char* p = buf.data() + j * es;
      float& o = out[done + j];
      switch (type) {
        case 0x08: o = p[0]; break;
        case 0x09: o = static_cast<signed char>(p[0]); break;
        case 0x0B: o = static_cast<std::int16_t>((p[0] << 8) | p[1]); break;
        case 0x0C: o = static_cast<float>(static_cast<std::int32_t>((std::uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3])); break;
        case 0x0D: { std::uint32_t u = (std::uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]; float v; std::memcpy(&v, &u, 4); o = v; break; }
        default: { std::uint64_t u = 0; for (int b = 0; b < 8; ++b) u = (u << 8) | p[b]; double v; std::memcpy(&v, &u, 8); o = static_cast<float>(v); break; }
      }
    }
    done += k;
  }
  if (items == shape[0]) {  // the whole file was asked for: it must end where its header says
    unsigned char extra;
    if (in.read(&extra, 1) != 0)
      throw Error(path + ": IDX data is longer than the " + std::to_string(implied) + " bytes its header " + shape_str(shape) + " implies");
  }
  return out;
}

ImageSet load_idx(const std::string& images, const std::string& labels, std::int64_t max_samples) {
  Shape si, sl;
  auto x = read_idx(images, si, max_samples);
  if (si.size() != 3) throw Error(images + ": expected 3-D IDX images [N, rows, cols], got " + shape_str(si));
  auto y = read_idx(labels, sl, max_samples);
  if (sl.size() != 1 || sl[0] != si[0]) throw Error(labels + ": expected " + std::to_string(si[0]) + " labels, got shape " + shape_str(sl));
  ImageSet s;
  s.sample_shape = {1, si[1], si[2]};
  s.data = std::move(x);
  for (std::size_t k = 0; k < y.size(); ++k) {
    if (!(y[k] == std::floor(y[k])) || std::fabs(y[k]) > 9.0e15f)
      throw Error(labels + ": label " + std::to_string(y[k]) + " of sample " + std::to_string(k) + " is not an integer");
    s.labels.push_back(static_cast<std::int64_t>(y[k]));
  }
  return s;
}

ImageSet load_npy_set(const std::string& inputs, const std::string& labels, std::int64_t max_samples) {
  const Tensor xt = read_npy(inputs);  // memory-mapped: only the samples converted below are read
  const Tensor yt = read_npy(labels);
  if (xt.shape.empty()) throw Error(inputs + ": inputs must have a leading sample dimension");
  if (yt.numel() != xt.shape[0]) throw Error(labels + ": " + std::to_string(yt.numel()) + " labels for " + std::to_string(xt.shape[0]) + " inputs");
  const std::int64_t n = max_samples >= 0 ? std::min(xt.shape[0], max_samples) : xt.shape[0];
  Tensor xv = xt, yv = yt;  // views of the first n samples (C order: a prefix of the data)
  xv.shape[0] = n;
  yv.shape = {n};
  const Value x = Value::from_tensor(xv), y = Value::from_tensor(yv);
  ImageSet s;
  s.sample_shape.assign(xt.shape.begin() + 1, xt.shape.end());
  s.data.resize(static_cast<std::size_t>(x.numel()));
  for (std::int64_t k = 0; k < x.numel(); ++k) s.data[k] = static_cast<float>(x.at(k));
  for (std::int64_t k = 0; k < n; ++k) {
    const double v = y.at(k);
    if (!(v == std::floor(v)) || std::fabs(v) > 9.0e15) throw Error(labels + ": label " + std::to_string(v) + " of sample " + std::to_string(k) + " is not an integer");
    s.labels.push_back(static_cast<std::int64_t>(v));
  }
  return s;
}

std::int64_t ImageSet::label(std::int64_t k, std::int64_t classes) const {
  const std::int64_t l = labels.at(static_cast<std::size_t>(k));
  if (l < 0 || l >= classes)
    throw Error("label " + std::to_string(l) + " of sample " + std::to_string(k) + " is outside [0, " + std::to_string(classes) +
                "): the model has " + std::to_string(classes) + " classes");
  return l;
}

void resize_bilinear(const float* in, std::int64_t C, std::int64_t H, std::int64_t W, float* out, std::int64_t oh, std::int64_t ow) {
  // PyTorch upsample_bilinear2d (align_corners=False): src = scale * (dst + 0.5) - 0.5, clamped at 0.
  const float sh = static_cast<float>(H) / static_cast<float>(oh), sw = static_cast<float>(W) / static_cast<float>(ow);
  for (std::int64_t y = 0; y < oh; ++y) {
    float hr = std::max(0.0f, sh * (static_cast<float>(y) + 0.5f) - 0.5f);
    const std::int64_t h1 = static_cast<std::int64_t>(hr);
    const std::int64_t h1p = h1 < H - 1 ? 1 : 0;
    const float l1 = hr - static_cast<float>(h1), l0 = 1.0f - l1;
    for (std::int64_t x = 0; x < ow; ++x) {
      float wr = std::max(0.0f, sw * (static_cast<float>(x) + 0.5f) - 0.5f);
      const std::int64_t w1 = static_cast<std::int64_t>(wr);
      const std::int64_t w1p = w1 < W - 1 ? 1 : 0;
      const float m1 = wr - static_cast<float>(w1), m0 = 1.0f - m1;
      for (std::int64_t c = 0; c < C; ++c) {
        const float* p = in + (c * H + h1) * W + w1;
        out[(c * oh + y) * ow + x] = l0 * (m0 * p[0] + m1 * p[w1p]) + l1 * (m0 * p[h1p * W] + m1 * p[h1p * W + w1p]);
      }
    }
  }
}

void preprocess(ImageSet& s, const Preprocess& p) {
  if (p.scale != 1.0f) for (float& v : s.data) v *= p.scale;
  if (p.resize_h > 0 && p.resize_w > 0) {
    if (s.sample_shape.size() != 3) throw Error("resize needs [C, H, W] samples, got " + shape_str(s.sample_shape));
    const std::int64_t C = s.sample_shape[0], H = s.sample_shape[1], W = s.sample_shape[2];
    if (H != p.resize_h || W != p.resize_w) {
      const std::int64_t n = s.size(), in_n = C * H * W, out_n = C * p.resize_h * p.resize_w;
      std::vector<float> out(static_cast<std::size_t>(n * out_n));
      for (std::int64_t k = 0; k < n; ++k) resize_bilinear(s.data.data() + k * in_n, C, H, W, out.data() + k * out_n, p.resize_h, p.resize_w);
      s.data = std::move(out);
      s.sample_shape = {C, p.resize_h, p.resize_w};
    }
  }
  if (!p.mean.empty() || !p.std.empty()) {
    const std::int64_t C = s.sample_shape.empty() ? 1 : s.sample_shape[0];
    auto per = [&](const std::vector<float>& v, float def, const char* what) {
      if (v.empty()) return std::vector<float>(static_cast<std::size_t>(C), def);
      if (v.size() == 1) return std::vector<float>(static_cast<std::size_t>(C), v[0]);
      if (static_cast<std::int64_t>(v.size()) != C) throw Error(std::string("normalize ") + what + " has " + std::to_string(v.size()) + " values for " + std::to_string(C) + " channels");
      return v;
    };
    auto mean = per(p.mean, 0.0f, "mean"), sd = per(p.std, 1.0f, "std");
    for (float v : sd) if (!(v > 0)) throw Error("normalize std must be positive");
    const std::int64_t inner = s.sample_numel() / C;
    for (std::int64_t k = 0; k < s.size(); ++k)
      for (std::int64_t c = 0; c < C; ++c) {
        float* d = s.data.data() + (k * C + c) * inner;
        for (std::int64_t j = 0; j < inner; ++j) d[j] = (d[j] - mean[c]) / sd[c];
      }
  }
}

std::vector<std::string> split_stories(const std::string& text) {
  static const std::string sep = "<|endoftext|>";
  std::vector<std::string> r;
  std::size_t b = 0;
  while (b <= text.size()) {
    std::size_t e = text.find(sep, b);
    if (e == std::string::npos) e = text.size();
    std::string s = text.substr(b, e - b);
    const auto ws = " \t\r\n\v\f";
    const auto i = s.find_first_not_of(ws);
    if (i != std::string::npos) r.push_back(s.substr(i, s.find_last_not_of(ws) - i + 1));
    b = e + sep.size();
  }
  return r;
}

std::vector<std::string> load_stories(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return split_stories(ss.str());
}

std::string DatasetSpec::path_of(const std::string& f) const {
  if (f.empty() || fs::path(f).is_absolute() || root.empty()) return f;
  return (fs::path(root) / f).string();
}

namespace {

Preprocess mnist_pre(float mean, float sd) {
  Preprocess p;
  p.scale = 1.0f / 255.0f;
  p.resize_to_model = true;
  p.mean = {mean};
  p.std = {sd};
  return p;
}

std::vector<float> floats_of(const YAML::Node& n, const std::string& what) {
  std::vector<float> r;
  if (n.IsScalar()) r.push_back(n.as<float>());
  else if (n.IsSequence()) for (const auto& x : n) r.push_back(x.as<float>());
  else throw Error(what + " must be a number or a list of numbers");
  return r;
}

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

}  // namespace

DatasetSpec parse_dataset_spec(const std::string& spec, const std::string& data_root) {
  DatasetSpec d;
  auto shorthand = [&](const std::string& prefix) { return spec.rfind(prefix, 0) == 0; };
  if (shorthand("mnist:") || spec == "mnist") {
    d.kind = DatasetSpec::Kind::Idx;
    d.name = "mnist";
    d.root = spec.size() > 6 ? spec.substr(6) : "";
    d.images = "t10k-images-idx3-ubyte.gz";
    d.labels = "t10k-labels-idx1-ubyte.gz";
    d.pre = mnist_pre(0.1307f, 0.3081f);
  } else if (shorthand("fashion-mnist:") || spec == "fashion-mnist") {
    d.kind = DatasetSpec::Kind::Idx;
    d.name = "fashion-mnist";
    d.root = spec.size() > 14 ? spec.substr(14) : kFashionDir;
    d.images = "t10k-images-idx3-ubyte.gz";
    d.labels = "t10k-labels-idx1-ubyte.gz";
    d.pre = mnist_pre(0.2860f, 0.3530f);
  } else if (shorthand("text:")) {
    d.kind = DatasetSpec::Kind::Text;
    d.name = "text";
    d.text = spec.substr(5);
  } else if (shorthand("npy:")) {
    d.kind = DatasetSpec::Kind::Npy;
    d.name = "npy";
    const std::string rest = spec.substr(4);
    const auto comma = rest.find(',');
    if (comma == std::string::npos) throw Error("--data npy:INPUTS,LABELS needs two files");
    d.images = rest.substr(0, comma);
    d.labels = rest.substr(comma + 1);
  } else {
    if (!fs::exists(spec)) throw Error("dataset spec '" + spec + "' is neither a file nor a shorthand (mnist:DIR, fashion-mnist[:DIR], text:FILE, npy:INPUTS,LABELS)");
    YAML::Node y;
    try {
      y = YAML::LoadFile(spec);
    } catch (const YAML::Exception& e) {
      throw detail::yaml_error(spec, e);
    }
    try {
      if (!y.IsMap()) throw Error(spec + ": expected a mapping");
      const std::string fmt = y["format"] ? y["format"].as<std::string>() : "idx";
      d.name = y["name"] ? y["name"].as<std::string>() : fs::path(spec).stem().string();
      const fs::path base = fs::path(spec).parent_path();
      if (y["root"]) {
        fs::path r = y["root"].as<std::string>();
        d.root = (r.is_absolute() ? r : base / r).string();
      } else {
        d.root = base.string();
      }
      if (fmt == "idx" || fmt == "npy") {
        d.kind = fmt == "idx" ? DatasetSpec::Kind::Idx : DatasetSpec::Kind::Npy;
        if (!y["images"] && !y["inputs"]) throw Error(spec + ": 'images' (or 'inputs') is required");
        d.images = (y["images"] ? y["images"] : y["inputs"]).as<std::string>();
        if (!y["labels"]) throw Error(spec + ": 'labels' is required");
        d.labels = y["labels"].as<std::string>();
      } else if (fmt == "text") {
        d.kind = DatasetSpec::Kind::Text;
        if (!y["file"]) throw Error(spec + ": 'file' is required for text datasets");
        d.text = y["file"].as<std::string>();
      } else {
        throw Error(spec + ": unknown format '" + fmt + "' (idx, npy, text)");
      }
      if (const auto p = y["preprocess"]) {
        if (!p.IsMap()) throw Error(spec + ": 'preprocess' must be a mapping");
        for (const auto& kv : p) {
          const auto key = kv.first.as<std::string>();
          if (key == "scale") d.pre.scale = kv.second.as<float>();
          else if (key == "resize") {
            if (kv.second.IsScalar() && kv.second.as<std::string>() == "model") d.pre.resize_to_model = true;
            else {
              auto v = floats_of(kv.second, spec + ": preprocess resize");
              if (v.size() != 2) throw Error(spec + ": resize must be [H, W] or 'model'");
              // Checked before the conversion to integers: a float beyond int64 (or NaN) converted is undefined.
              for (float side : v)
                if (!(side >= 1 && side <= 65536) || side != std::floor(side))
                  throw Error(spec + ": resize sides must be whole numbers from 1 to 65536, got " + std::to_string(side));
              d.pre.resize_h = static_cast<std::int64_t>(v[0]);
              d.pre.resize_w = static_cast<std::int64_t>(v[1]);
            }
          } else if (key == "mean") d.pre.mean = floats_of(kv.second, spec + ": preprocess mean");
          else if (key == "std") d.pre.std = floats_of(kv.second, spec + ": preprocess std");
          else if (key == "interpolation") {
            const auto m = kv.second.as<std::string>();
            if (m != "bilinear") throw Error(spec + ": only bilinear interpolation (align_corners=False) is supported");
          } else throw Error(spec + ": unknown preprocess key '" + key + "' (scale, resize, interpolation, mean, std)");
        }
      }
      for (const auto& kv : y) {
        const auto key = kv.first.as<std::string>();
        static const char* known[] = {"name", "format", "root", "images", "inputs", "labels", "file", "preprocess", "description"};
        if (std::find(std::begin(known), std::end(known), key) == std::end(known)) throw Error(spec + ": unknown key '" + key + "'");
      }
    } catch (const YAML::Exception& e) {
      throw detail::yaml_error(spec, e);
    }
  }
  if (!data_root.empty()) d.root = data_root;
  return d;
}

namespace {

// An IDX file named X.gz that is absent may be stored uncompressed as X (both are read the same way).
std::string idx_file(const std::string& path) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0 && !fs::exists(path)) {
    const std::string raw = path.substr(0, path.size() - 3);
    if (fs::exists(raw)) return raw;
  }
  return path;
}

}  // namespace

void check_dataset_files(const DatasetSpec& d) {
  auto need = [&](const std::string& f) {
    if (!fs::is_regular_file(f)) throw Error("dataset '" + d.name + "': " + f + ": no such file");
  };
  if (d.kind == DatasetSpec::Kind::Text) need(d.path_of(d.text));
  else if (d.kind == DatasetSpec::Kind::Idx) { need(idx_file(d.path_of(d.images))); need(idx_file(d.path_of(d.labels))); }
  else { need(d.path_of(d.images)); need(d.path_of(d.labels)); }
}

ImageSet load_images(const DatasetSpec& d, const Shape& model_sample, std::int64_t max_samples) {
  ImageSet s;
  if (d.kind == DatasetSpec::Kind::Idx) s = load_idx(idx_file(d.path_of(d.images)), idx_file(d.path_of(d.labels)), max_samples);
  else if (d.kind == DatasetSpec::Kind::Npy) s = load_npy_set(d.path_of(d.images), d.path_of(d.labels), max_samples);
  else throw Error("dataset '" + d.name + "' is text, not images");
  Preprocess p = d.pre;
  if (p.resize_to_model && model_sample.size() == 3 && model_sample[1] > 0 && model_sample[2] > 0) {
    p.resize_h = model_sample[1];
    p.resize_w = model_sample[2];
  }
  // The sample shape after preprocessing is known before any of it runs: check it against the model first.
  Shape after = s.sample_shape;
  if (p.resize_h > 0 && p.resize_w > 0) {
    if (after.size() != 3) throw Error("resize needs [C, H, W] samples, got " + shape_str(after));
    after = {after[0], p.resize_h, p.resize_w};
  }
  for (std::size_t k = 0; k < model_sample.size(); ++k)
    if (model_sample[k] >= 0 && (model_sample.size() != after.size() || after[k] != model_sample[k]))
      throw Error("dataset samples have shape " + shape_str(after) + ", the model expects " + shape_str(model_sample) +
                  " per sample (declare a resize in the dataset spec?)");
  preprocess(s, p);
  return s;
}

ImageSet load_images(const DatasetSpec& d, std::int64_t model_h, std::int64_t model_w) {
  Shape sample;
  if (model_h > 0 && model_w > 0) sample = {-1, model_h, model_w};
  return load_images(d, sample, -1);
}

}  // namespace qcast::nn
