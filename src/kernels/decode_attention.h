// One query head against a cache, for decode steps (SPEC.md "Generation
// state"): o = sum_j softmax_j(scale * q . k_j) v_j over n cached rows, plus an
// optional extra (key, value) term that joins the same softmax (RAT's own
// running state). Runs on the calling thread; callers parallelise over
// (sequence, head). The cache is read once, K then V: this is the memory-bound
// part of a decode step. The cache rows may be float32 or bf16 (uint16 bits,
// widened exactly to float32 on load); the extra term is always float32.
//
// decode_attend runs the kernel of the instruction set chosen at start
// (kernels/isa.h): AVX-512 unrolls the widths models use (P 64 and 128,
// kernels/vec_avx512.h); every other case is decode_attend_generic_with
// (kernels/decode_generic.h) over that instruction set's vector primitives.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/decode_generic.h"
#include "kernels/isa_kernels.h"
#include "kernels/vec_math.h"

namespace rat {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The dispatched primitives of vec_math.h, as a V for the template above.
struct DispatchedVec {
  static float dot(const float* x, const float* y, int64_t n) { return vec_dot(x, y, n); }
  static float dot_row(const float* q, const float* k, int64_t P) { return vec_dot(q, k, P); }
  static float dot_row(const float* q, const uint16_t* k, int64_t P) {
    return isa_kernels().dot_row_bf16(q, k, P);
  }
  static float max(const float* x, int64_t n) { return vec_max(x, n); }
  static float exp_affine_sum(float* x, int64_t n, float a, float b) {
    return vec_exp_affine_sum(x, n, a, b);
  }
};

// The generic path on the selected instruction set's primitives (bench/decode_lab
// compares it with decode_attend).
template <class KV>
inline void decode_attend_generic(const float* q, const KV* k, const KV* v, int64_t n,
                                  const float* k_extra, const float* v_extra, int64_t P,
                                  float scale, float* scores, float* o) {
  decode_attend_generic_with<DispatchedVec>(q, k, v, n, k_extra, v_extra, P, scale, scores, o);
}

// q: [P]; k, v: [n, P] contiguous rows (float or bf16 bits); k_extra, v_extra:
// [P] float or null. scores: scratch of n + 1 floats. o: [P] written.
inline void decode_attend(const float* q, const float* k, const float* v, int64_t n,
                          const float* k_extra, const float* v_extra, int64_t P, float scale,
                          float* scores, float* o) {
  isa_kernels().decode_attend_f32(q, k, v, n, k_extra, v_extra, P, scale, scores, o);
}
inline void decode_attend(const float* q, const uint16_t* k, const uint16_t* v, int64_t n,
                          const float* k_extra, const float* v_extra, int64_t P, float scale,
                          float* scores, float* o) {
  isa_kernels().decode_attend_bf16(q, k, v, n, k_extra, v_extra, P, scale, scores, o);
}

}  // namespace rat
