// Fast (SIMD + thread pool) fake-quant / encode / decode. Each function returns false, having done
// nothing, when the format / options are not covered by a kernel bit for bit; callers then use the
// scalar reference. Covered: signed minifloat (bf16, fp16, e5m2, e4m3, e3m2, e2m3, e2m1, ...) and
// signed integer elements elementwise; minifloat, integer and codebook elements in contiguous scale
// groups (blocks along the last axis, or channels along axis 0) with OCP MX floor scales in e8m0 or
// amax scales in fp32 / fp16 / bf16 / ue4m3 (with the NVFP4 fp32 tensor scale), symmetric or
// asymmetric; rounding even / away / zero / floor / ceil with saturation.
#pragma once
#include <functional>

#include "qcast/quantize.hpp"

namespace qcast::kern {

bool fast_fake_quant(const Format& f, const float* in, float* out, const Shape& shape, const QuantOptions& opt);
bool fast_encode(const Format& f, const float* in, const Shape& shape, const QuantOptions& opt, Encoded& e);
bool fast_decode(const Format& f, const Encoded& e, float* out, int threads);
/// fast_fake_quant from source to sink in windows of whole groups (about chunk_elems values each):
/// up to opt.threads workers each read a window into their own reusable buffer, fake-quantize it in
/// place and pass it to sink. False (nothing done) when not covered.
bool fast_fake_quant_stream(const Format& f, const FloatSource& source, const Shape& shape, const QuantOptions& opt,
                            std::int64_t chunk_elems, const FloatSink& sink);

}  // namespace qcast::kern
