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

namespace qcast::nn {

namespace fs = std::filesystem;

std::vector<float> read_idx(const std::string& path, Shape& shape) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open");
  std::string bytes;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<std::size_t>(n));
  const bool bad = n < 0;
  gzclose(f);
  if (bad) throw Error(path + ": corrupt gzip stream");
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) throw Error(path + ": not an IDX file (bad magic)");
  const auto type = static_cast<unsigned char>(bytes[2]);
  const int nd = static_cast<unsigned char>(bytes[3]);
  std::size_t es;
  switch (type) {
    case 0x08: case 0x09: es = 1; break;
    case 0x0B: es = 2; break;
    case 0x0C: case 0x0D: es = 4; break;
    case 0x0E: es = 8; break;
    default: throw Error(path + ": unknown IDX element type " + std::to_string(type));
  }
  if (nd < 1 || bytes.size() < 4 + 4 * static_cast<std::size_t>(nd)) throw Error(path + ": truncated IDX header");
  shape.clear();
  for (int k = 0; k < nd; ++k) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + 4 + 4 * k);
    shape.push_back((std::int64_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]);
  }
  const std::size_t cnt = static_cast<std::size_t>(shape_numel(shape));
  const std::size_t off = 4 + 4 * static_cast<std::size_t>(nd);
  if (bytes.size() != off + cnt * es)
    throw Error(path + ": IDX data has " + std::to_string(bytes.size() - off) + " bytes, the header " + shape_str(shape) + " implies " + std::to_string(cnt * es));
  std::vector<float> out(cnt);
  const auto* d = reinterpret_cast<const unsigned char*>(bytes.data() + off);
  for (std::size_t k = 0; k < cnt; ++k) {
    const unsigned char* p = d + k * es;
    switch (type) {
      case 0x08: out[k] = p[0]; break;
      case 0x09: out[k] = static_cast<signed char>(p[0]); break;
      case 0x0B: out[k] = static_cast<std::int16_t>((p[0] << 8) | p[1]); break;
      case 0x0C: out[k] = static_cast<float>(static_cast<std::int32_t>((std::uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3])); break;
      case 0x0D: { std::uint32_t u = (std::uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]; float v; std::memcpy(&v, &u, 4); out[k] = v; break; }
      default: { std::uint64_t u = 0; for (int j = 0; j < 8; ++j) u = (u << 8) | p[j]; double v; std::memcpy(&v, &u, 8); out[k] = static_cast<float>(v); break; }
    }
  }
  return out;
}

ImageSet load_idx(const std::string& images, const std::string& labels) {
  Shape si, sl;
  auto x = read_idx(images, si);
  auto y = read_idx(labels, sl);
  if (si.size() != 3) throw Error(images + ": expected 3-D IDX images [N, rows, cols], got " + shape_str(si));
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

ImageSet load_npy_set(const std::string& inputs, const std::string& labels) {
  Value x = Value::from_tensor(read_npy(inputs));
  Value y = Value::from_tensor(read_npy(labels));
  if (x.shape.empty()) throw Error(inputs + ": inputs must have a leading sample dimension");
  if (y.numel() != x.shape[0]) throw Error(labels + ": " + std::to_string(y.numel()) + " labels for " + std::to_string(x.shape[0]) + " inputs");
  ImageSet s;
  s.sample_shape.assign(x.shape.begin() + 1, x.shape.end());
  s.data.resize(static_cast<std::size_t>(x.numel()));
  for (std::int64_t k = 0; k < x.numel(); ++k) s.data[k] = static_cast<float>(x.at(k));
  for (std::int64_t k = 0; k < y.numel(); ++k) s.labels.push_back(static_cast<std::int64_t>(y.at(k)));
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
      throw Error(spec + ": " + e.what());
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
              auto v = floats_of(kv.second, "resize");
              if (v.size() != 2 || v[0] < 1 || v[1] < 1) throw Error(spec + ": resize must be [H, W] or 'model'");
              d.pre.resize_h = static_cast<std::int64_t>(v[0]);
              d.pre.resize_w = static_cast<std::int64_t>(v[1]);
            }
          } else if (key == "mean") d.pre.mean = floats_of(kv.second, "mean");
          else if (key == "std") d.pre.std = floats_of(kv.second, "std");
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
      throw Error(spec + ": " + e.what());
    }
  }
  if (!data_root.empty()) d.root = data_root;
  return d;
}

ImageSet load_images(const DatasetSpec& d, std::int64_t model_h, std::int64_t model_w) {
  ImageSet s;
  if (d.kind == DatasetSpec::Kind::Idx) s = load_idx(d.path_of(d.images), d.path_of(d.labels));
  else if (d.kind == DatasetSpec::Kind::Npy) s = load_npy_set(d.path_of(d.images), d.path_of(d.labels));
  else throw Error("dataset '" + d.name + "' is text, not images");
  Preprocess p = d.pre;
  if (p.resize_to_model && model_h > 0 && model_w > 0) { p.resize_h = model_h; p.resize_w = model_w; }
  preprocess(s, p);
  return s;
}

}  // namespace qcast::nn
