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
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i),
                          _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll16, w, 16)), acc);
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

#if defined(__AVX512F__)
namespace decode_detail {

// r[i] = sum of the 16 lanes of v[i], i < 16: a transpose-and-add tree, about
// three instructions per row instead of a full horizontal sum each. (The
// maskz forms with all lanes set: GCC 12's plain forms trip
// -Wmaybe-uninitialized, as in vec_math.h.)
inline __m512 hsum16x16(const __m512* v) {
  __m512 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)  // 256-bit halves: rows 2i, 2i+1, 8 partial sums each
    a[i] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll16, v[2 * i], v[2 * i + 1], 0x44),
                         _mm512_maskz_shuffle_f32x4(kAll16, v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // 128-bit lanes: rows 4i .. 4i+3, 4 partial sums each
    b[i] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll16, a[2 * i], a[2 * i + 1], 0x88),
                         _mm512_maskz_shuffle_f32x4(kAll16, a[2 * i], a[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // lane l: rows 8i + l and 8i + 4 + l, 2 partial sums each
    c[i] = _mm512_add_ps(_mm512_maskz_shuffle_ps(kAll16, b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_maskz_shuffle_ps(kAll16, b[2 * i], b[2 * i + 1], 0xEE));
  // Element 4l + m now holds row l + 4m.
  const __m512 d = _mm512_add_ps(_mm512_maskz_shuffle_ps(kAll16, c[0], c[1], 0x88),
                                 _mm512_maskz_shuffle_ps(kAll16, c[0], c[1], 0xDD));
  const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_maskz_permutexvar_ps(kAll16, idx, d);
}

// A cache row's 32-element block j as two float vectors: bf16 pairs share a
// 32-bit lane (element 2m low, 2m + 1 high), so a shift gives the even
// elements and a mask the odd ones, exactly (bf16 -> f32 is a 16-bit shift).
inline __m512 bf16_even(__m512i w) {
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll16, w, 16));
}
inline __m512 bf16_odd(__m512i w) {
  return _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(int(0xFFFF0000u))));
}

// Row widths handled by the unrolled kernels (NV vectors of 16 floats, P = 16 NV).
template <int NV, class KV>
struct Rows;

// float32 rows: q and o live in NV registers each.
template <int NV>
struct Rows<NV, float> {
  __m512 q[NV];
  explicit Rows(const float* qp) {
    for (int j = 0; j < NV; ++j) q[j] = _mm512_loadu_ps(qp + 16 * j);
  }
  __m512 dot(const float* k) const {
    __m512 acc = _mm512_mul_ps(q[0], _mm512_loadu_ps(k));
    for (int j = 1; j < NV; ++j) acc = _mm512_fmadd_ps(q[j], _mm512_loadu_ps(k + 16 * j), acc);
    return acc;
  }
  // acc[r] = lanes of q . k[r], 16 rows of P: vector j of every row before
  // vector j + 1, so the 16 FMA chains interleave in program order.
  void dot16(const float* k, __m512* acc) const {
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_mul_ps(q[0], _mm512_loadu_ps(k + r * 16 * NV));
    for (int j = 1; j < NV; ++j)
      for (int r = 0; r < 16; ++r)
        acc[r] = _mm512_fmadd_ps(q[j], _mm512_loadu_ps(k + r * 16 * NV + 16 * j), acc[r]);
  }
  static void axpy(__m512 p, const float* v, __m512* o) {
    for (int j = 0; j < NV; ++j) o[j] = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16 * j), o[j]);
  }
  static void store(const __m512* o, __m512 inv, float* out) {
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(out + 16 * j, _mm512_mul_ps(o[j], inv));
  }
};

// bf16 rows: q is kept split into its even and odd elements per 32-block
// (q[2b] even, q[2b+1] odd), and o accumulates in the same split order.
template <int NV>
struct Rows<NV, uint16_t> {
  static_assert(NV % 2 == 0, "bf16 rows come in 32-element blocks");
  __m512 q[NV];
  explicit Rows(const float* qp) {
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int b = 0; b < NV / 2; ++b) {
      const __m512 lo = _mm512_loadu_ps(qp + 32 * b), hi = _mm512_loadu_ps(qp + 32 * b + 16);
      q[2 * b] = _mm512_permutex2var_ps(lo, ev, hi);
      q[2 * b + 1] = _mm512_permutex2var_ps(lo, od, hi);
    }
  }
  __m512 dot(const uint16_t* k) const {
    __m512 acc = _mm512_setzero_ps();
    for (int b = 0; b < NV / 2; ++b) {
      const __m512i w = _mm512_loadu_si512(k + 32 * b);
      acc = _mm512_fmadd_ps(q[2 * b], bf16_even(w), acc);
      acc = _mm512_fmadd_ps(q[2 * b + 1], bf16_odd(w), acc);
    }
    return acc;
  }
  void dot16(const uint16_t* k, __m512* acc) const {
    for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
    for (int b = 0; b < NV / 2; ++b)
      for (int r = 0; r < 16; ++r) {
        const __m512i w = _mm512_loadu_si512(k + r * 16 * NV + 32 * b);
        acc[r] = _mm512_fmadd_ps(q[2 * b], bf16_even(w), acc[r]);
        acc[r] = _mm512_fmadd_ps(q[2 * b + 1], bf16_odd(w), acc[r]);
      }
  }
  static void axpy(__m512 p, const uint16_t* v, __m512* o) {
    for (int b = 0; b < NV / 2; ++b) {
      const __m512i w = _mm512_loadu_si512(v + 32 * b);
      o[2 * b] = _mm512_fmadd_ps(p, bf16_even(w), o[2 * b]);
      o[2 * b + 1] = _mm512_fmadd_ps(p, bf16_odd(w), o[2 * b + 1]);
    }
  }
  static void store(const __m512* o, __m512 inv, float* out) {
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    for (int b = 0; b < NV / 2; ++b) {
      const __m512 e = _mm512_mul_ps(o[2 * b], inv), d = _mm512_mul_ps(o[2 * b + 1], inv);
      _mm512_storeu_ps(out + 32 * b, _mm512_permutex2var_ps(e, lo, d));
      _mm512_storeu_ps(out + 32 * b + 16, _mm512_permutex2var_ps(e, hi, d));
    }
  }
};

// Prefetch distances in bytes (bench/decode_lab, one core, bf16 rows of 128).
constexpr int64_t kPrefetchK = 2048, kPrefetchV = 8192;

// decode_attend for P = 16 NV: scores of 16 rows at a time (one reduction
// tree per 16 rows), then V with o held in registers. Same maths as the
// generic path; only the summation order inside each dot product differs.
template <int NV, class KV>
inline void attend_unrolled(const float* q, const KV* k, const KV* v, int64_t n,
                            const float* k_extra, const float* v_extra, float scale, float* scores,
                            float* o) {
  constexpr int64_t P = 16 * NV;
  const Rows<NV, KV> rq(q);
  // Software prefetch ahead of the rows in use: the hardware prefetchers alone
  // keep too few lines in flight for one core to draw the read bandwidth
  // (measured with bench/decode_lab: K rows 28 -> 37 GB/s, V rows 30 -> 37).
  // Not clamped to this block: callers sweep blocks in memory order (RAT's
  // [H, S, C, P] head by head, attention's [S, H, R, P] slot by slot), so the
  // lines past the end are the next query's first rows (clamping cost 12% of
  // a RAT step's sweep time). A prefetch never faults.
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const char* pf = reinterpret_cast<const char*>(k + j * P) + kPrefetchK;
    for (int64_t l = 0; l < 16 * P * int64_t(sizeof(KV)); l += 64)
      _mm_prefetch(pf + l, _MM_HINT_T0);
    __m512 acc[16];
    rq.dot16(k + j * P, acc);
    _mm512_storeu_ps(scores + j, hsum16x16(acc));
  }
  for (; j < n; ++j) scores[j] = hsum16(rq.dot(k + j * P));
  const int64_t m = n + (k_extra ? 1 : 0);
  if (k_extra) scores[n] = vec_dot(q, k_extra, P);
  const float mx = vec_max(scores, m);
  const float sum = vec_exp_affine_sum(scores, m, scale, scale * mx);
  __m512 acc[NV];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (j = 0; j < n; ++j) {
    const char* pf = reinterpret_cast<const char*>(v + j * P) + kPrefetchV;
    for (int64_t l = 0; l < P * int64_t(sizeof(KV)); l += 64) _mm_prefetch(pf + l, _MM_HINT_T0);
    Rows<NV, KV>::axpy(_mm512_set1_ps(scores[j]), v + j * P, acc);
  }
  Rows<NV, KV>::store(acc, _mm512_set1_ps(1.f / sum), o);
  if (v_extra) {
    const float w = scores[n] / sum;
#pragma omp simd
    for (int64_t i = 0; i < P; ++i) o[i] += w * v_extra[i];
  }
}

}  // namespace decode_detail
#endif

// The generic path (any P, any ISA): one horizontal sum per key row.
template <class KV>
inline void decode_attend_generic(const float* q, const KV* k, const KV* v, int64_t n,
                                  const float* k_extra, const float* v_extra, int64_t P,
                                  float scale, float* scores, float* o) {
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

// q: [P]; k, v: [n, P] contiguous rows (float or bf16 bits); k_extra, v_extra:
// [P] float or null. scores: scratch of n + 1 floats. o: [P] written.
template <class KV>
inline void decode_attend(const float* q, const KV* k, const KV* v, int64_t n, const float* k_extra,
                          const float* v_extra, int64_t P, float scale, float* scores, float* o) {
#if defined(__AVX512F__)
  // The widths models use, unrolled: this loop is the memory-bound part of a
  // decode step, and the generic one below spends more time in horizontal sums
  // and in reloading o than memory takes to deliver the rows.
  switch (P) {
    case 64:
      return decode_detail::attend_unrolled<4>(q, k, v, n, k_extra, v_extra, scale, scores, o);
    case 128:
      return decode_detail::attend_unrolled<8>(q, k, v, n, k_extra, v_extra, scale, scores, o);
    default: break;
  }
#endif
  decode_attend_generic(q, k, v, n, k_extra, v_extra, P, scale, scores, o);
}

}  // namespace rat
