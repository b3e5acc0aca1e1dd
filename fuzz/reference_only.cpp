// Fuzz builds link the model loaders without the Highway SIMD kernels (compiling them instrumented takes
// too long for CI): every quantization the loaders trigger runs the scalar reference instead, which is
// what these entry points report by returning false ("no fast path"); likewise the direct convolution.
#include "kernels/fast_path.hpp"

namespace qcast::kern {

bool fast_fake_quant(const Format&, const float*, float*, const Shape&, const QuantOptions&) { return false; }
bool fast_encode(const Format&, const float*, const Shape&, const QuantOptions&, Encoded&) { return false; }
bool fast_decode(const Format&, const Encoded&, float*, int) { return false; }
bool fast_fake_quant_stream(const Format&, const FloatSource&, const Shape&, const QuantOptions&, std::int64_t,
                            const FloatSink&) { return false; }

}  // namespace qcast::kern

// The direct-convolution kernel is Highway code too: the loaders' graphs take the im2col + sgemm path.
#include "qcast/kernels/conv_direct.hpp"

namespace qcast::kern {

bool conv_direct_applies(const ConvDirectShape&) { return false; }
void conv_direct(const ConvDirectShape&, const float*, const float*, const float*, float*) {}

}  // namespace qcast::nn
