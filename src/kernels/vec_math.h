// Vectorised elementwise maths for the softmax-style inner loops of the tiled
// kernels (attention, RAT attention, and anyone else who needs a fast exp).
// AVX-512 when the build targets it, plain loops otherwise; same results up to
// the exp approximation (<= 2 ulp against std::exp, see tests/cpp/test_attention.cc).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace rat {

#if defined(__AVX512F__)

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

#endif

// y[i] = exp(x[i]). x and y may alias.
inline void vec_exp(const float* x, float* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
#else
  for (; i < n; ++i) y[i] = std::exp(x[i]);
#endif
}

// y[i] = sigmoid(x[i] + b[i]) (b may be null). x and y may alias. Through exp16 (<= 2 ulp), so
// within a few ulp of 1 / (1 + expf(-x)); every gate of the engine goes through this one
// function, so the chunked forward and any token-by-token path agree bit for bit.
inline void vec_sigmoid(const float* x, const float* b, float* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.f);
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? kAll16 : tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, b + i));
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
    _mm512_mask_storeu_ps(y + i, m, _mm512_div_ps(one, _mm512_add_ps(one, e)));
  }
#else
  for (; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-(x[i] + (b ? b[i] : 0.f))));
#endif
}

// max_i x[i]; -inf for n == 0.
inline float vec_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 acc = _mm512_set1_ps(m);
  for (; i + 16 <= n; i += 16) acc = _mm512_maskz_max_ps(kAll16, acc, _mm512_loadu_ps(x + i));
  if (i < n)
    acc = _mm512_mask_max_ps(acc, tail_mask(n - i), acc,
                             _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
  return hmax16(acc);
#else
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
#endif
}

// x[i] = exp(a * x[i] - b); returns the sum of the new x (float accumulation in 16 lanes).
// The softmax step: a is the score scale, b the running row maximum (already scaled).
inline float vec_exp_affine_sum(float* x, int64_t n, float a, float b) {
  int64_t i = 0;
#if defined(__AVX512F__)
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
#else
  float s = 0.f;
  for (; i < n; ++i) {
    x[i] = std::exp(a * x[i] - b);
    s += x[i];
  }
  return s;
#endif
}

// x[i] = exp(a * x[i] - b), no sum (backward's probability recomputation).
inline void vec_exp_affine(float* x, int64_t n, float a, float b) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, exp16(_mm512_fmsub_ps(va, _mm512_loadu_ps(x + i), vb)));
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m,
                          exp16(_mm512_fmsub_ps(va, _mm512_maskz_loadu_ps(m, x + i), vb)));
  }
#else
  for (; i < n; ++i) x[i] = std::exp(a * x[i] - b);
#endif
}

// ds[i] = p[i] * (ds[i] - d) * a: softmax backward, dS = P o (dP - rowsum(dO o O)), scaled.
inline void vec_softmax_grad(const float* p, float* ds, int64_t n, float d, float a) {
  int64_t i = 0;
#if defined(__AVX512F__)
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
#else
  for (; i < n; ++i) ds[i] = p[i] * a * (ds[i] - d);
#endif
}

// sum_i x[i] * y[i] (float, 16 lanes).
inline float vec_dot(const float* x, const float* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc);
  if (i < n) {
    __mmask16 m = tail_mask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), acc);
  }
  return hsum16(acc);
#else
  float s = 0.f;
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
#endif
}

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
