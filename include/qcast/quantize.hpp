// Quantization of float32 tensors: fake-quant (quantize-dequantize) and encode/decode to packed codes.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "qcast/format.hpp"
#include "qcast/tensor.hpp"

namespace qcast {

/// std::allocator whose value-less construct() default-initialises: a resize() of a byte vector leaves
/// the new bytes unwritten. The encoders write every byte of their packed output, and zero-filling it
/// first (and faulting its pages in twice) cost a third of an MX encode.
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  using value_type = T;
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <class U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... A>
  void construct(U* p, A&&... a) {
    ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
  }
};
/// Packed bytes (codes, scales, zero points). resize() does not zero; assign(n, 0) does.
using Bytes = std::vector<std::uint8_t, DefaultInitAllocator<std::uint8_t>>;

struct QuantOptions {
  RoundMode round = RoundMode::Even;
  Overflow overflow = Overflow::Saturate;
  std::uint64_t seed = 0;  // stochastic rounding
  int axis = -1;           // block / channel axis when the format does not fix it (-1 = last)
  int threads = 1;         // results are bit-identical for any value
};

/// Fake-quant: out[i] = dequant(quant(in[i])) for a row-major float32 tensor of `shape`.
/// `out` may alias `in`. Throws qcast::Error for bad shapes / axes / block sizes.
void fake_quant(const Format& f, const float* in, float* out, const Shape& shape, const QuantOptions& opt = {});
/// A streamed input: source(offset, count, dst) writes input elements [offset, offset + count) to dst
/// (e.g. a pread from a file, or a copy). Called concurrently from worker threads for disjoint windows.
using FloatSource = std::function<void(std::int64_t, std::int64_t, float*)>;
/// A streamed output: sink(offset, values, count) receives output elements [offset, offset + count).
/// Called concurrently from worker threads for disjoint windows, in no particular order.
using FloatSink = std::function<void(std::int64_t, const float*, std::int64_t)>;

/// fake_quant from a streamed input to a streamed output, in windows: sink(offset, values, count) receives output elements [offset,
/// offset + count), each window whole scale groups of about `chunk_elems` values, the windows covering the
/// output exactly once. Up to opt.threads workers each read a window from `source` into their own
/// buffer, fake-quantize it there and pass it to sink, so that a large tensor goes file to file (pread,
/// pwrite) without full-size buffers and with the copies split between the threads. A format with a
/// tensor scale (nvfp4) reads the input twice (the global amax first). Bit-identical to fake_quant for
/// any thread count. Formats whose groups are not contiguous runs (blocks along an inner axis, tiles,
/// stochastic rounding, ...) are read and computed whole, then delivered in windows.
void fake_quant_streamed(const Format& f, const FloatSource& source, const Shape& shape, const QuantOptions& opt,
                         const FloatSink& sink, std::int64_t chunk_elems = 1 << 20);

/// A fixed clipping range per scale group, for static (calibrated) quantization: group g is quantized
/// with the scale (and zero point) that the format's scale rule picks for a group whose values span
/// [lo[g], hi[g]] (a symmetric format uses max(|lo|, |hi|)); values outside the range saturate.
struct StaticRange {
  std::vector<float> lo, hi;  // one entry per group: 1 for /tensor (and the +fp32 scale of nvfp4), len(axis) for /ch
  bool operator==(const StaticRange&) const = default;
};

/// Fake-quant with fixed ranges instead of ranges measured on `in` (same element rounding as fake_quant).
/// Tensor scaling: one range; Channel scaling: one range per channel of the format's axis; block-scaled
/// formats with a second-level fp32 scale (nvfp4): one range, which fixes the fp32 tensor scale while the
/// block scales stay dynamic. Other formats (no scale, blocks without +fp32, tiles) and a range count that
/// does not match the shape: qcast::Error. Results do not depend on opt.threads.
void fake_quant_static(const Format& f, const StaticRange& r, const float* in, float* out, const Shape& shape,
                       const QuantOptions& opt = {});
/// Why `f` cannot take a static range ("" if it can).
std::string static_range_unsupported(const Format& f);

/// A quantized tensor: codes packed tightly (LSB-first bitstream), scales as scale-element codes.
/// Layout documented in docs/packed-layout.md.
struct Encoded {
  std::string format;          // canonical format name
  Shape shape;                 // original tensor shape
  int axis = -1;               // resolved block/channel axis (non-negative), -1 if none
  Bytes codes;   // element codes, bit-packed
  Bytes scales;  // scale codes, bit-packed with scale_elem.bits (fp32 scales: little-endian)
  Bytes zeros;   // zero points (asym), bit-packed with elem.bits
  float tensor_scale = 1.0f;   // NVFP4 second level
  std::int64_t num_groups = 0; // number of scale groups
};

Encoded encode(const Format& f, const float* in, const Shape& shape, const QuantOptions& opt = {});
/// Decodes into `out` (numel floats). Throws if the sizes in `e` are inconsistent.
void decode(const Encoded& e, float* out);
/// As above, on up to `threads` threads (results do not depend on it).
void decode(const Encoded& e, float* out, int threads);

/// The scalar reference implementations (no SIMD, same threading): the oracle of the fast kernels that
/// fake_quant / encode / decode pick when a format has one. Same results, bit for bit, by contract.
void reference_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, const QuantOptions& opt = {});
Encoded reference_encode(const Format& f, const float* in, const Shape& shape, const QuantOptions& opt = {});
void reference_decode(const Encoded& e, float* out);

/// Packs `n` codes of `bits` bits each (LSB-first) into bytes; unpack is the inverse.
Bytes pack_bits(const std::uint32_t* codes, std::size_t n, int bits);
void unpack_bits(const std::uint8_t* bytes, std::size_t nbytes, std::size_t n, int bits, std::uint32_t* codes);

}  // namespace qcast
