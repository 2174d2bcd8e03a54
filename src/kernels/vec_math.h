// Vectorised elementwise maths for the softmax-style inner loops of the tiled
// kernels (attention, RAT attention, and anyone else who needs a fast exp).
// Each function runs the kernel of the instruction set chosen at start
// (kernels/isa.h: AVX-512, AVX2+FMA, or plain loops); the vector paths agree
// with std::exp within their exp approximation (<= 2 ulp, see
// tests/cpp/kernels/test_attention.cc). In an -march=native build for an
// AVX-512 machine the AVX-512 bodies are also inlined here, taken when that
// table is in use: one predictable branch instead of an indirect call, so the
// short rows of the tiled kernels keep today's inlined code.
#pragma once

#include <cstdint>

#include "kernels/isa_kernels.h"

#if defined(__AVX512F__) && !defined(RAT_ISA_TRANSLATION_UNIT)
#include "kernels/vec_avx512.h"
#define RAT_VEC_INLINE_AVX512 1
#else
#define RAT_VEC_INLINE_AVX512 0
#endif

namespace rat {

#if RAT_VEC_INLINE_AVX512
#define RAT_VEC_CALL(fn, ...)                              \
  if (isa_avx512_in_use()) return avx512::fn(__VA_ARGS__); \
  return isa_kernels().fn(__VA_ARGS__)
#else
#define RAT_VEC_CALL(fn, ...) return isa_kernels().fn(__VA_ARGS__)
#endif

// y[i] = exp(x[i]). x and y may alias.
inline void vec_exp(const float* x, float* y, int64_t n) { RAT_VEC_CALL(vec_exp, x, y, n); }

// y[i] = sigmoid(x[i] + b[i]) (b may be null). x and y may alias. Through the
// vector exp (<= 2 ulp), so within a few ulp of 1 / (1 + expf(-x)); every
// gate of the engine goes through this one function, so the chunked forward
// and any token-by-token path agree bit for bit (on one instruction set).
inline void vec_sigmoid(const float* x, const float* b, float* y, int64_t n) {
  RAT_VEC_CALL(vec_sigmoid, x, b, y, n);
}

// max_i x[i]; -inf for n == 0.
inline float vec_max(const float* x, int64_t n) { RAT_VEC_CALL(vec_max, x, n); }

// x[i] = exp(a * x[i] - b); returns the sum of the new x (float accumulation in
// vector lanes). The softmax step: a is the score scale, b the running row
// maximum (already scaled).
inline float vec_exp_affine_sum(float* x, int64_t n, float a, float b) {
  RAT_VEC_CALL(vec_exp_affine_sum, x, n, a, b);
}

// x[i] = exp(a * x[i] - b), no sum (backward's probability recomputation).
inline void vec_exp_affine(float* x, int64_t n, float a, float b) {
  RAT_VEC_CALL(vec_exp_affine, x, n, a, b);
}

// ds[i] = p[i] * (ds[i] - d) * a: softmax backward, dS = P o (dP - rowsum(dO o O)), scaled.
inline void vec_softmax_grad(const float* p, float* ds, int64_t n, float d, float a) {
  RAT_VEC_CALL(vec_softmax_grad, p, ds, n, d, a);
}

// sum_i x[i] * y[i] (float, in vector lanes).
inline float vec_dot(const float* x, const float* y, int64_t n) { RAT_VEC_CALL(vec_dot, x, y, n); }

#undef RAT_VEC_CALL

// y[i] = a * x[i] + b * y[i]  (b == 0 overwrites y, even if it held NaN).
inline void vec_axpby(float a, const float* x, float b, float* y, int64_t n) {
  if (b == 0.f) {
    for (int64_t i = 0; i < n; ++i) y[i] = a * x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = a * x[i] + b * y[i];
  }
}

// x[i] *= a.
inline void vec_scale(float* x, int64_t n, float a) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

}  // namespace rat
