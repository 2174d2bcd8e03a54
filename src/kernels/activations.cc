#include "kernels/activations.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/vec_math.h"
#include "util/error.h"

namespace rat {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluC = 0.044715f;

// gelu(x) = x * Phi(x), Phi the normal CDF (erf form).
inline float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * kInvSqrt2)); }
inline float gelu_grad(float x) {
  return 0.5f * (1.0f + std::erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * std::exp(-0.5f * x * x);
}
// tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline float fastgelu(float x) {
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + kGeluC * x * x * x)));
}
inline float fastgelu_grad(float x) {
  float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
  float t = std::tanh(u);
  float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluC * x * x);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}
inline float silu(float x) { return x * sigmoidf(x); }

// The elementwise ones other than gelu's vector path, value and derivative
// (torch's: relu' and relusquared' are 0 at 0).
inline float act_value(Activation act, float x) {
  switch (act) {
    case Activation::kGelu: return gelu(x);
    case Activation::kFastGelu: return fastgelu(x);
    case Activation::kRelu: return x > 0.f ? x : 0.f;
    case Activation::kTanh: return std::tanh(x);
    case Activation::kSilu: return silu(x);
    case Activation::kSigmoid: return sigmoidf(x);
    case Activation::kExp: return std::exp(x);
    case Activation::kReluSquared: return x > 0.f ? x * x : 0.f;
    default: return x;  // identity (swiglu and softmax are not elementwise)
  }
}
inline float act_grad(Activation act, float x) {
  switch (act) {
    case Activation::kGelu: return gelu_grad(x);
    case Activation::kFastGelu: return fastgelu_grad(x);
    case Activation::kRelu: return x > 0.f ? 1.f : 0.f;
    case Activation::kTanh: {
      const float t = std::tanh(x);
      return 1.f - t * t;
    }
    case Activation::kSilu: {
      const float s = sigmoidf(x);
      return s * (1.f + x * (1.f - s));
    }
    case Activation::kSigmoid: {
      const float s = sigmoidf(x);
      return s * (1.f - s);
    }
    case Activation::kExp: return std::exp(x);
    case Activation::kReluSquared: return x > 0.f ? 2.f * x : 0.f;
    default: return 1.f;  // identity
  }
}

// Softmax of one row of F, max-subtracted so no exp overflows.
void softmax_row(const float* h, float* a, int64_t F) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t f = 0; f < F; ++f) m = std::max(m, h[f]);
  float sum = 0.f;
  for (int64_t f = 0; f < F; ++f) sum += a[f] = std::exp(h[f] - m);
  const float inv = 1.f / sum;
  for (int64_t f = 0; f < F; ++f) a[f] *= inv;
}

#if defined(__AVX512F__)
// The normal CDF Phi(x) of 16 floats, through erfc on both sides, so that
// neither tail cancels: Phi(x) = erfc(z) / 2 for x < 0 and 1 - erfc(z) / 2 for
// x >= 0, z = |x| / sqrt(2). erfc(z) = t exp(-z^2 + p(t)), t = 1 / (1 + z/2),
// with the degree-9 Chebyshev-fitted p of Numerical Recipes' erfcc (relative
// error < 1.2e-7 for every z >= 0). exp(-z^2) is taken as exp(-hi) exp(p - lo)
// with z^2 = x^2 / 2 = hi + lo exactly (FMA), so large z lose nothing to
// rounding z^2.
// Why: libm's scalar erff made gelu ~4 ns per element, an eighth of a
// batch-717 decode step of the hybrid model; this is ~0.3 ns.
// x is clamped to [-20, 20] first (Phi is exactly 0 or 1 in float32 beyond):
// past |x| ~ 6.5e4 the exact split of x^2 overflows exp(p - lo) while
// exp(-hi) underflows, and their product would be NaN. NaN stays NaN (the
// constant is the first operand of max/min, which return the second on NaN).
inline __m512 clamp20(__m512 x) {
  return _mm512_maskz_min_ps(kAll16, _mm512_set1_ps(20.f),
                             _mm512_maskz_max_ps(kAll16, _mm512_set1_ps(-20.f), x));
}
inline __m512 phi16(__m512 x) {
  x = clamp20(x);
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(kInvSqrt2));
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), one));
  static const float c[] = {0.17087277f,  -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                            -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f,  -1.26551223f};
  __m512 p = _mm512_set1_ps(c[0]);
  for (int i = 1; i < 10; ++i) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c[i]));
  // z^2 = x^2 / 2 from x itself (z is rounded: 2 z^2 ulp of error in erfc).
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 xx = _mm512_mul_ps(x, x);
  const __m512 hi = _mm512_mul_ps(xx, half);
  const __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(x, x, xx), half);
  const __m512 erfc = _mm512_mul_ps(
      t, _mm512_mul_ps(exp16(_mm512_sub_ps(_mm512_setzero_ps(), hi)), exp16(_mm512_sub_ps(p, lo))));
  const __m512 half_erfc = _mm512_mul_ps(erfc, half);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, half_erfc), half_erfc);
}

// x Phi(x) over n floats.
void gelu_vec(const float* h, float* a, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(h + i);
    _mm512_storeu_ps(a + i, _mm512_mul_ps(x, phi16(x)));
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, h + i);
    _mm512_mask_storeu_ps(a + i, m, _mm512_mul_ps(x, phi16(x)));
  }
}

// d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi); times da.
void gelu_grad_vec(const float* h, const float* da, float* dh, int64_t n) {
  auto grad = [](__m512 x) {
    x = clamp20(x);  // beyond, x phi(x) is 0 and Phi 0 or 1 in float32
    // exp(-x^2 / 2) with x^2 / 2 = hi + lo exactly, as in phi16: e^-hi (1 - lo).
    const __m512 half = _mm512_set1_ps(0.5f), xx = _mm512_mul_ps(x, x);
    const __m512 hi = _mm512_mul_ps(xx, half);
    const __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(x, x, xx), half);
    const __m512 eh = exp16(_mm512_sub_ps(_mm512_setzero_ps(), hi));
    const __m512 e = _mm512_fnmadd_ps(eh, lo, eh);
    return _mm512_fmadd_ps(_mm512_mul_ps(x, _mm512_set1_ps(kInvSqrt2Pi)), e, phi16(x));
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dh + i, _mm512_mul_ps(_mm512_loadu_ps(da + i), grad(_mm512_loadu_ps(h + i))));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(
        dh + i, m,
        _mm512_mul_ps(_mm512_maskz_loadu_ps(m, da + i), grad(_mm512_maskz_loadu_ps(m, h + i))));
  }
}
#endif

// Splits [0, total) over the threads in whole cache lines (16 floats).
template <class F>
void parallel_chunks(int64_t total, F&& f) {
  const int64_t chunk = 16 * 1024;
#pragma omp parallel for schedule(static) if (total >= 16384)
  for (int64_t i = 0; i < total; i += chunk) f(i, std::min(chunk, total - i));
}

}  // namespace

void activation_forward(Activation act, const float* h, float* a, int64_t N, int64_t F) {
  RAT_ASSERT(h != nullptr && a != nullptr && N >= 0 && F >= 0);
  // Decode steps (a few rows): no parallel region; see rmsnorm_forward.
  if (act == Activation::kSwiglu) {
#pragma omp parallel for schedule(static) if (N * F >= 16384)
    for (int64_t n = 0; n < N; ++n) {
      const float* hr = h + n * 2 * F;
      float* ar = a + n * F;
      for (int64_t f = 0; f < F; ++f) ar[f] = hr[f] * silu(hr[F + f]);
    }
    return;
  }
  if (act == Activation::kSoftmax) {
#pragma omp parallel for schedule(static) if (N * F >= 16384)
    for (int64_t n = 0; n < N; ++n) softmax_row(h + n * F, a + n * F, F);
    return;
  }
  int64_t total = N * F;
#if defined(__AVX512F__)
  if (act == Activation::kGelu)
    return parallel_chunks(total, [&](int64_t i, int64_t n) { gelu_vec(h + i, a + i, n); });
#endif
#pragma omp parallel for schedule(static) if (total >= 16384)
  for (int64_t i = 0; i < total; ++i) a[i] = act_value(act, h[i]);
}

void activation_backward(Activation act, const float* h, const float* da, float* dh, int64_t N,
                         int64_t F) {
  RAT_ASSERT(h != nullptr && da != nullptr && dh != nullptr && N >= 0 && F >= 0);
  if (act == Activation::kSwiglu) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const float* hr = h + n * 2 * F;
      const float* dar = da + n * F;
      float* dhr = dh + n * 2 * F;
      for (int64_t f = 0; f < F; ++f) {
        float av = hr[f], gv = hr[F + f];
        float s = sigmoidf(gv);
        dhr[f] = dar[f] * gv * s;
        dhr[F + f] = dar[f] * av * s * (1.0f + gv * (1.0f - s));
      }
    }
    return;
  }
  if (act == Activation::kSoftmax) {
    // dh = a (da - <da, a>), a recomputed from h into dh itself (no buffer).
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      float* dhr = dh + n * F;
      const float* dar = da + n * F;
      softmax_row(h + n * F, dhr, F);
      double dot = 0;
      for (int64_t f = 0; f < F; ++f) dot += double(dar[f]) * dhr[f];
      for (int64_t f = 0; f < F; ++f) dhr[f] *= dar[f] - float(dot);
    }
    return;
  }
  int64_t total = N * F;
#if defined(__AVX512F__)
  if (act == Activation::kGelu)
    return parallel_chunks(total,
                           [&](int64_t i, int64_t n) { gelu_grad_vec(h + i, da + i, dh + i, n); });
#endif
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) dh[i] = da[i] * act_grad(act, h[i]);
}

}  // namespace rat
