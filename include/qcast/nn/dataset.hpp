// Evaluation datasets: IDX images + labels (MNIST, Fashion-MNIST; .gz or raw), .npy inputs + labels,
// plain text split on <|endoftext|>, and a small YAML dataset spec with declared preprocessing.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qcast/tensor.hpp"

namespace qcast::nn {

/// Labelled samples as float32 [N, C, H, W] (or any per-sample shape) plus integer labels.
struct ImageSet {
  Shape sample_shape;          // shape of one sample
  std::vector<float> data;     // N * numel(sample_shape)
  std::vector<std::int64_t> labels;
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t sample_numel() const { return shape_numel(sample_shape); }
  /// Label of sample k for a model with `classes` outputs; qcast::Error naming the label and the class
  /// count when it is outside [0, classes). Every consumer of labels reads them through this.
  std::int64_t label(std::int64_t k, std::int64_t classes) const;
};

/// Reads an IDX file (magic 0x0000080x, big-endian dims; gzip-compressed or raw) as raw values
/// (uint8 kept as 0..255). Returns the dims in `shape`.
std::vector<float> read_idx(const std::string& path, Shape& shape);
/// IDX images [N, rows, cols] + labels [N] -> ImageSet with sample shape [1, rows, cols].
ImageSet load_idx(const std::string& images, const std::string& labels);
/// .npy inputs [N, ...] + labels [N] (any integer or float dtype).
ImageSet load_npy_set(const std::string& inputs, const std::string& labels);

/// Declared preprocessing, applied in this order: x * scale, bilinear resize (align_corners=False,
/// PyTorch's upsample_bilinear2d arithmetic), (x - mean[c]) / std[c].
struct Preprocess {
  float scale = 1.0f;
  std::int64_t resize_h = 0, resize_w = 0;  // 0 = no resize
  bool resize_to_model = false;             // resize to the model's input H x W
  std::vector<float> mean, std;             // per channel (one value = all channels)
};
void preprocess(ImageSet& s, const Preprocess& p);
/// Bilinear resize of one [C, H, W] image to [C, oh, ow] (align_corners=False).
void resize_bilinear(const float* in, std::int64_t C, std::int64_t H, std::int64_t W, float* out, std::int64_t oh, std::int64_t ow);

/// Splits text on <|endoftext|>, strips each story of surrounding whitespace, drops empty ones.
std::vector<std::string> split_stories(const std::string& text);
std::vector<std::string> load_stories(const std::string& path);

/// A dataset spec (YAML file or shorthand).
struct DatasetSpec {
  enum class Kind { Idx, Npy, Text };
  Kind kind = Kind::Idx;
  std::string name;
  std::string root;            // directory the file names are relative to
  std::string images, labels;  // Idx / Npy (Npy: inputs, labels)
  std::string text;            // Text
  Preprocess pre;
  std::string path_of(const std::string& f) const;  // root-relative path (absolute f kept)
};

/// Parses `spec`: a YAML file path, or `mnist:DIR`, `fashion-mnist[:DIR]`, `text:FILE`, `npy:INPUTS,LABELS`.
/// `data_root` (if non-empty) overrides the spec's root.
DatasetSpec parse_dataset_spec(const std::string& spec, const std::string& data_root = "");
/// Loads an image dataset (Idx / Npy) and applies the declared preprocessing. `model_hw` gives the model
/// input H, W for `resize: model`.
ImageSet load_images(const DatasetSpec& d, std::int64_t model_h = 0, std::int64_t model_w = 0);

}  // namespace qcast::nn
