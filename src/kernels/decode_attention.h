// One query head against a cache, for decode steps (SPEC.md "Generation
// state"): o = sum_j softmax_j(scale * q . k_j) v_j over n cached rows, plus an
// optional extra (key, value) term that joins the same softmax (RAT's own
// running state). Runs on the calling thread; callers parallelise over
// (sequence, head). The cache is read once, K then V: this is the memory-bound
// part of a decode step.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/vec_math.h"

namespace rat {

// q: [P]; k, v: [n, P] contiguous rows; k_extra, v_extra: [P] or null.
// scores: scratch of n + 1 floats. o: [P] written.
inline void decode_attend(const float* q, const float* k, const float* v, int64_t n,
                          const float* k_extra, const float* v_extra, int64_t P, float scale,
                          float* scores, float* o) {
  const int64_t m = n + (k_extra ? 1 : 0);
  for (int64_t j = 0; j < n; ++j) scores[j] = vec_dot(q, k + j * P, P);
  if (k_extra) scores[n] = vec_dot(q, k_extra, P);
  // Softmax of scale * s: the maximum is taken on the raw scores (scale > 0).
  const float mx = vec_max(scores, m);
  const float sum = vec_exp_affine_sum(scores, m, scale, scale * mx);
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < P; ++i) o[i] = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    const float p = scores[j];
    const float* vr = v + j * P;
#pragma omp simd
    for (int64_t i = 0; i < P; ++i) o[i] += p * vr[i];
  }
  if (v_extra) {
    const float p = scores[n];
#pragma omp simd
    for (int64_t i = 0; i < P; ++i) o[i] += p * v_extra[i];
  }
#pragma omp simd
  for (int64_t i = 0; i < P; ++i) o[i] *= inv;
}

}  // namespace rat
