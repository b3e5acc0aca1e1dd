// Fuzz builds link the model loaders without the Highway SIMD kernels (compiling them instrumented takes
// too long for CI): every quantization the loaders trigger runs the scalar reference instead, which is
// what these entry points report by returning false ("no fast path").
#include "kernels/fast_path.hpp"

namespace qcast::kern {

bool fast_fake_quant(const Format&, const float*, float*, const Shape&, const QuantOptions&) { return false; }
bool fast_encode(const Format&, const float*, const Shape&, const QuantOptions&, Encoded&) { return false; }
bool fast_decode(const Format&, const Encoded&, float*, int) { return false; }
bool fast_fake_quant_stream(const Format&, const float*, const Shape&, const QuantOptions&, std::int64_t,
                            const std::function<void(const float*, std::int64_t)>&) { return false; }

}  // namespace qcast::kern
