// The AVX-512 bodies of the vector kernels (vec_math.h, decode_attention.h):
// compiled into kernels/isa_avx512.cc (the runtime-dispatched AVX-512 path,
// src/kernels/isa.h) and, in an -march=native build for an AVX-512 machine,
// also inlined at the call sites of vec_math.h behind one predictable branch,
// so the native build keeps its inlining. Include only where AVX-512 is
// enabled (the header refuses otherwise).
#pragma once

#if !defined(__AVX512F__)
#error "kernels/vec_avx512.h needs AVX-512 enabled (isa_avx512.cc's flags or -march=native)"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace rat::avx512 {

// GCC 12 warns (-Wmaybe-uninitialized, falsely) on every intrinsic whose unmasked form passes
// _mm512_undefined_ps() as the merge source; the all-ones zero-masked forms below compile to
// the same instructions without it.
constexpr __mmask16 kAll16 = 0xFFFF;

// e^x for 16 floats. x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2, ln2 split in a
// hi part exact in float and a lo correction (Cody-Waite); e^r by its degree-7 Taylor
// polynomial (truncation error r^8/8! < 5.2e-9, under 0.1 ulp); 2^n applied by vscalefps,
// which also handles overflow (+inf) and underflow (0, gradually) without branches.
// x is clamped below at -104 so that -inf (a masked score) gives exactly 0, not NaN;
// the clamp keeps NaN inputs NaN (vmaxps returns its second operand on NaN).
inline __m512 exp16(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 ln2_hi = _mm512_set1_ps(0.693145751953125f);
  const __m512 ln2_lo = _mm512_set1_ps(1.42860682030941723212e-6f);
  x = _mm512_maskz_max_ps(kAll16, _mm512_set1_ps(-104.f), x);
  __m512 n = _mm512_maskz_roundscale_ps(kAll16, _mm512_mul_ps(x, log2e),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
  r = _mm512_fnmadd_ps(n, ln2_lo, r);
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_maskz_scalef_ps(kAll16, p, n);
}

inline __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1u); }

// Horizontal sum / max of 16 lanes (GCC 12's _mm512_reduce_* trip -Wmaybe-uninitialized).
inline float hsum16(__m512 v) {
  __m256 a = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0),
                           _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
inline float hmax16(__m512 v) {
  __m256 a = _mm256_max_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0),
                           _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

// y[i] = exp(x[i]). x and y may alias.
inline void vec_exp(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// y[i] = sigmoid(x[i] + b[i]) (b may be null). x and y may alias. Through exp16 (<= 2 ulp), so
// within a few ulp of 1 / (1 + expf(-x)); every gate of the engine goes through this one
// function, so the chunked forward and any token-by-token path agree bit for bit.
inline void vec_sigmoid(const float* x, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  const __m512 one = _mm512_set1_ps(1.f);
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? kAll16 : tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b + i));
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
    _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(one, _mm512_add_ps(one, e)));
  }
}

// max_i x[i]; -inf for n == 0.
inline float vec_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  __m512 acc = _mm512_set1_ps(m);
  for (; i + 16 <= n; i += 16) acc = _mm512_maskz_max_ps(kAll16, acc, _mm512_loadu_ps(x + i));
  if (i < n)
    acc = _mm512_mask_max_ps(acc, tail_mask(n - i), acc,
                             _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
  return hmax16(acc);
}

// x[i] = exp(a * x[i] - b); returns the sum of the new x (float accumulation in 16 lanes).
// The softmax step: a is the score scale, b the running row maximum (already scaled).
inline float vec_exp_affine_sum(float* x, int64_t n, float a, float b) {
  int64_t i = 0;
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp16(_mm512_fmsub_ps(va, _mm512_loadu_ps(x + i), vb));
    _mm512_storeu_ps(x + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    __m512 e = exp16(_mm512_fmsub_ps(va, _mm512_maskz_loadu_ps(m, x + i), vb));
    _mm512_mask_storeu_ps(x + i, m, e);
    acc = _mm512_mask_add_ps(acc, m, acc, e);
  }
  return hsum16(acc);
}

// x[i] = exp(a * x[i] - b), no sum (backward's probability recomputation).
inline void vec_exp_affine(float* x, int64_t n, float a, float b) {
  int64_t i = 0;
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, exp16(_mm512_fmsub_ps(va, _mm512_loadu_ps(x + i), vb)));
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m,
                          exp16(_mm512_fmsub_ps(va, _mm512_maskz_loadu_ps(m, x + i), vb)));
  }
}

// ds[i] = p[i] * (ds[i] - d) * a: softmax backward, dS = P o (dP - rowsum(dO o O)), scaled.
inline void vec_softmax_grad(const float* p, float* ds, int64_t n, float d, float a) {
  int64_t i = 0;
  const __m512 vd = _mm512_set1_ps(d), va = _mm512_set1_ps(a);
  for (; i + 16 <= n; i += 16) {
    __m512 g = _mm512_sub_ps(_mm512_loadu_ps(ds + i), vd);
    _mm512_storeu_ps(ds + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(p + i), va), g));
  }
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    __m512 g = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, ds + i), vd);
    _mm512_mask_storeu_ps(ds + i, m,
                          _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, p + i), va), g));
  }
}

// sum_i x[i] * y[i] (float, 16 lanes).
inline float vec_dot(const float* x, const float* y, int64_t n) {
  int64_t i = 0;
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc);
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), acc);
  }
  return hsum16(acc);
}

// q . k for a bf16 row k (uint16 bits, widened exactly): 16 lanes, scalar tail.
inline float dot_row(const float* q, const uint16_t* k, int64_t P) {
  int64_t i = 0;
  float s = 0.f;
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= P; i += 16) {
    __m512i w = _mm512_maskz_cvtepu16_epi32(
        kAll16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + i)));
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i),
                          _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll16, w, 16)), acc);
  }
  s = hsum16(acc);
  for (; i < P; ++i) {
    const uint32_t u = uint32_t(k[i]) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    s += q[i] * f;
  }
  return s;
}
inline float dot_row(const float* q, const float* k, int64_t P) { return vec_dot(q, k, P); }

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

}  // namespace rat::avx512
