// The portable table of the vector kernels (kernels/isa_kernels.h): plain
// loops, compiled for the build's baseline (no -march flags of its own), for
// any CPU and for RAT_ISA=generic. These are the loops the engine ran before
// it had vector kernels; the compiler may still vectorise them for the
// baseline (SSE2 on x86-64, NEON on arm64).
#define RAT_ISA_TRANSLATION_UNIT 1

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/bf16_scalar.h"
#include "kernels/decode_generic.h"
#include "kernels/isa_kernels.h"

namespace rat::generic {
namespace {

void vec_exp(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void vec_sigmoid(const float* x, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-(x[i] + (b ? b[i] : 0.f))));
}

float vec_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

float vec_exp_affine_sum(float* x, int64_t n, float a, float b) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(a * x[i] - b);
    s += x[i];
  }
  return s;
}

void vec_exp_affine(float* x, int64_t n, float a, float b) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(a * x[i] - b);
}

void vec_softmax_grad(const float* p, float* ds, int64_t n, float d, float a) {
  for (int64_t i = 0; i < n; ++i) ds[i] = p[i] * a * (ds[i] - d);
}

float vec_dot(const float* x, const float* y, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

float dot_row_bf16(const float* q, const uint16_t* k, int64_t P) {
  float s = 0.f;
  for (int64_t i = 0; i < P; ++i) {
    const uint32_t u = uint32_t(k[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    s += q[i] * f;
  }
  return s;
}

using Vec = VecOps<vec_dot, dot_row_bf16, vec_max, vec_exp_affine_sum>;

// Eight independent sums, so the loop is not one chain of dependent adds
// (strict FP would keep `s += x[i]` serial and measure the adder, not memory).
float read_sum(const float* x, int64_t n) {
  float acc[8] = {};
  for (int64_t i = 0; i < n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[i + k];
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

}  // namespace
}  // namespace rat::generic

namespace rat {

const IsaKernels kIsaGenericKernels = {
    "generic",
    generic::vec_exp,
    generic::vec_sigmoid,
    generic::vec_max,
    generic::vec_exp_affine_sum,
    generic::vec_exp_affine,
    generic::vec_softmax_grad,
    generic::vec_dot,
    generic::dot_row_bf16,
    decode_attend_generic_with<generic::Vec, float>,
    decode_attend_generic_with<generic::Vec, uint16_t>,
    nullptr,  // gelu: libm's erf (activations.cc)
    nullptr,
    nullptr,  // gemv: oneDNN
    nullptr,
    to_bf16_scalar,
    generic::read_sum,
};

}  // namespace rat
