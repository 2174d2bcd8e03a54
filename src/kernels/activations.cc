#include "kernels/activations.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/isa_kernels.h"
#include "kernels/vec_math.h"
#include "util/error.h"

namespace rat {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluC = 0.044715f;

// gelu(x) = x * Phi(x), Phi the normal CDF. Phi as 0.5 erfc(-x / sqrt 2), not
// 0.5 (1 + erf(x / sqrt 2)): for x < -2 the erf form cancels (1 - 0.99...)
// and loses all relative accuracy by x = -13; erfc keeps it (the AVX2 and
// portable paths take these; AVX-512 has its own, isa_avx512.cc).
inline float gelu(float x) { return 0.5f * x * std::erfc(-x * kInvSqrt2); }
inline float gelu_grad(float x) {
  // x * pdf(x) -> 0 in both tails; at x = +-inf the product would be inf * 0.
  const float xpdf = std::isinf(x) ? 0.f : x * kInvSqrt2Pi * std::exp(-0.5f * x * x);
  return 0.5f * std::erfc(-x * kInvSqrt2) + xpdf;
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
  // The instruction set's vector gelu (AVX-512's: ~0.3 ns an element against
  // libm erff's ~4, an eighth of a batch-717 decode step of the hybrid model).
  if (const auto gelu = isa_kernels().gelu_forward; act == Activation::kGelu && gelu)
    return parallel_chunks(total, [&](int64_t i, int64_t n) { gelu(h + i, a + i, n); });
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
  if (const auto grad = isa_kernels().gelu_backward; act == Activation::kGelu && grad)
    return parallel_chunks(total, [&](int64_t i, int64_t n) { grad(h + i, da + i, dh + i, n); });
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) dh[i] = da[i] * act_grad(act, h[i]);
}

}  // namespace rat
