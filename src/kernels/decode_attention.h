// One query head against a cache, for decode steps (SPEC.md "Generation
// state"): o = sum_j softmax_j(scale * q . k_j) v_j over n cached rows, plus an
// optional extra (key, value) term that joins the same softmax (RAT's own
// running state). Runs on the calling thread; callers parallelise over
// (sequence, head). The cache is read once, K then V: this is the memory-bound
// part of a decode step. The cache rows may be float32 or bf16 (uint16 bits,
// widened exactly to float32 on load); the extra term is always float32.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/vec_math.h"

namespace rat {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float dot_row(const float* q, const float* k, int64_t P) { return vec_dot(q, k, P); }

inline float dot_row(const float* q, const uint16_t* k, int64_t P) {
  int64_t i = 0;
  float s = 0.f;
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= P; i += 16) {
    __m512i w = _mm512_maskz_cvtepu16_epi32(
        kAll16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + i)));
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll16, w, 16)), acc);
  }
  s = hsum16(acc);
#endif
  for (; i < P; ++i) s += q[i] * bf16_to_f32(k[i]);
  return s;
}

inline void axpy_row(float p, const float* v, float* o, int64_t P) {
#pragma omp simd
  for (int64_t i = 0; i < P; ++i) o[i] += p * v[i];
}

inline void axpy_row(float p, const uint16_t* v, float* o, int64_t P) {
#pragma omp simd
  for (int64_t i = 0; i < P; ++i) {
    uint32_t u = uint32_t(v[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    o[i] += p * f;
  }
}

// q: [P]; k, v: [n, P] contiguous rows (float or bf16 bits); k_extra, v_extra:
// [P] float or null. scores: scratch of n + 1 floats. o: [P] written.
template <class KV>
inline void decode_attend(const float* q, const KV* k, const KV* v, int64_t n,
                          const float* k_extra, const float* v_extra, int64_t P, float scale,
                          float* scores, float* o) {
  const int64_t m = n + (k_extra ? 1 : 0);
  for (int64_t j = 0; j < n; ++j) scores[j] = dot_row(q, k + j * P, P);
  if (k_extra) scores[n] = vec_dot(q, k_extra, P);
  // Softmax of scale * s: the maximum is taken on the raw scores (scale > 0).
  const float mx = vec_max(scores, m);
  const float sum = vec_exp_affine_sum(scores, m, scale, scale * mx);
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < P; ++i) o[i] = 0.f;
  for (int64_t j = 0; j < n; ++j) axpy_row(scores[j], v + j * P, o, P);
  if (v_extra) axpy_row(scores[n], v_extra, o, P);
#pragma omp simd
  for (int64_t i = 0; i < P; ++i) o[i] *= inv;
}

}  // namespace rat
