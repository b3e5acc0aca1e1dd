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
/// (uint8 kept as 0..255). Returns the header's dims in `shape` and the values of the first
/// min(N, max_items) items (all when max_items < 0); the file is streamed, only those items are read.
std::vector<float> read_idx(const std::string& path, Shape& shape, std::int64_t max_items = -1);
/// IDX images [N, rows, cols] + labels [N] -> ImageSet with sample shape [1, rows, cols] (the first
/// max_samples samples when max_samples >= 0). Labels must be integers.
ImageSet load_idx(const std::string& images, const std::string& labels, std::int64_t max_samples = -1);
/// .npy inputs [N, ...] + labels [N] (any integer or float dtype; labels must be integers).
ImageSet load_npy_set(const std::string& inputs, const std::string& labels, std::int64_t max_samples = -1);

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
/// qcast::Error naming the file unless every file `d` refers to exists (for checking a command's inputs
/// before it does any work).
void check_dataset_files(const DatasetSpec& d);
/// Loads the first `max_samples` samples (all when < 0) of an image dataset (Idx / Npy; an IDX file named
/// X.gz may also be stored raw as X), checks that the sample shape after preprocessing matches
/// `model_sample` (the model input without its batch dimension; -1 = any; empty = no check) and only then
/// applies the declared preprocessing. `resize: model` takes H, W from a [C, H, W] `model_sample`.
ImageSet load_images(const DatasetSpec& d, const Shape& model_sample, std::int64_t max_samples);
/// The same for a model with input H x W (0 = unknown), every sample.
ImageSet load_images(const DatasetSpec& d, std::int64_t model_h = 0, std::int64_t model_w = 0);

}  // namespace qcast::nn
