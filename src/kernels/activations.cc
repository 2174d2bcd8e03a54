#include "kernels/activations.h"

#include <cmath>

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

}  // namespace

void activation_forward(Activation act, const float* h, float* a, int64_t N, int64_t F) {
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
  int64_t total = N * F;
#pragma omp parallel for schedule(static) if (total >= 16384)
  for (int64_t i = 0; i < total; ++i) {
    float x = h[i];
    switch (act) {
      case Activation::kGelu: a[i] = gelu(x); break;
      case Activation::kFastGelu: a[i] = fastgelu(x); break;
      default: a[i] = x > 0.f ? x : 0.f; break;
    }
  }
}

void activation_backward(Activation act, const float* h, const float* da, float* dh, int64_t N,
                         int64_t F) {
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
  int64_t total = N * F;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < total; ++i) {
    float x = h[i];
    float d;
    switch (act) {
      case Activation::kGelu: d = gelu_grad(x); break;
      case Activation::kFastGelu: d = fastgelu_grad(x); break;
      default: d = x > 0.f ? 1.f : 0.f; break;
    }
    dh[i] = da[i] * d;
  }
}

}  // namespace rat
