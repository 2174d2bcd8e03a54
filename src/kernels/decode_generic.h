// decode_attend's generic path (decode_attention.h), as a template over the
// vector primitives of one instruction set, so that each instruction set's
// translation unit (isa_*.cc) instantiates it with its own and the header
// needs no intrinsics. Any row width P; float32 or bf16 (uint16 bits) rows.
#pragma once

#include <cstdint>
#include <cstring>

namespace rat {

namespace decode_generic {

// o[i] += p * v[i] over float or bf16 rows. static: each instruction set's
// translation unit vectorises its own copy (no shared out-of-line symbol).
static inline void axpy_row(float p, const float* v, float* o, int64_t P) {
#pragma omp simd
  for (int64_t i = 0; i < P; ++i) o[i] += p * v[i];
}

static inline void axpy_row(float p, const uint16_t* v, float* o, int64_t P) {
#pragma omp simd
  for (int64_t i = 0; i < P; ++i) {
    uint32_t u = uint32_t(v[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    o[i] += p * f;
  }
}

}  // namespace decode_generic

// The primitives decode_attend_generic_with takes, from one instruction set's
// functions: each isa_*.cc names its own (in its anonymous namespace, so each
// instantiation is that file's alone).
template <float (*Dot)(const float*, const float*, int64_t),
          float (*DotBf16)(const float*, const uint16_t*, int64_t),
          float (*Max)(const float*, int64_t),
          float (*ExpAffineSum)(float*, int64_t, float, float)>
struct VecOps {
  static float dot(const float* x, const float* y, int64_t n) { return Dot(x, y, n); }
  static float dot_row(const float* q, const float* k, int64_t P) { return Dot(q, k, P); }
  static float dot_row(const float* q, const uint16_t* k, int64_t P) { return DotBf16(q, k, P); }
  static float max(const float* x, int64_t n) { return Max(x, n); }
  static float exp_affine_sum(float* x, int64_t n, float a, float b) {
    return ExpAffineSum(x, n, a, b);
  }
};

// The generic path (any P): one horizontal sum per key row. V supplies the
// vector primitives (static dot, dot_row for float and bf16 rows, max,
// exp_affine_sum), so each instruction set instantiates it with its own.
template <class V, class KV>
inline void decode_attend_generic_with(const float* q, const KV* k, const KV* v, int64_t n,
                                       const float* k_extra, const float* v_extra, int64_t P,
                                       float scale, float* scores, float* o) {
  const int64_t m = n + (k_extra ? 1 : 0);
  for (int64_t j = 0; j < n; ++j) scores[j] = V::dot_row(q, k + j * P, P);
  if (k_extra) scores[n] = V::dot(q, k_extra, P);
  // Softmax of scale * s: the maximum is taken on the raw scores (scale > 0).
  const float mx = V::max(scores, m);
  const float sum = V::exp_affine_sum(scores, m, scale, scale * mx);
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < P; ++i) o[i] = 0.f;
  for (int64_t j = 0; j < n; ++j) decode_generic::axpy_row(scores[j], v + j * P, o, P);
  if (v_extra) decode_generic::axpy_row(scores[n], v_extra, o, P);
#pragma omp simd
  for (int64_t i = 0; i < P; ++i) o[i] *= inv;
}

}  // namespace rat
