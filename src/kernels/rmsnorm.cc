#include "kernels/rmsnorm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/fixed_sums.h"
#include "util/error.h"

namespace rat {

void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t D) {
  RAT_ASSERT(x != nullptr && w != nullptr && y != nullptr && rstd != nullptr && N >= 0 && D > 0);
  // The few rows of a decode step: no parallel region (its barrier, with a
  // busy second core, costs more than the work).
#pragma omp parallel for schedule(static) if (N * D >= 16384)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * D;
    float* yr = y + n * D;
    float ss = 0.f;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; ++d) ss += xr[d] * xr[d];
    float r = 1.0f / std::sqrt(ss / float(D) + kRmsEps);
    rstd[n] = r;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) yr[d] = xr[d] * r * w[d];
  }
}

// With xh = x * r: dx = r * (dy*w - xh * mean(dy*w*xh)); dw = sum_n dy * xh.
void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                      float* dw, int64_t N, int64_t D) {
  RAT_ASSERT(dy && x && w && rstd && dx && dw && N >= 0 && D > 0);
  // dw by fixed row blocks: the same bits on any thread count (kernels/fixed_sums.h).
  column_sums_fixed(N, D, dw, [&](int64_t n, float* dwp) {
    const float* xr = x + n * D;
    const float* dyr = dy + n * D;
    float* dxr = dx + n * D;
    float r = rstd[n];
    float dot = 0.f;
#pragma omp simd reduction(+ : dot)
    for (int64_t d = 0; d < D; ++d) dot += dyr[d] * w[d] * xr[d];
    float m = dot * r * r / float(D);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      dxr[d] += r * (dyr[d] * w[d] - xr[d] * m);
      dwp[d] += dyr[d] * xr[d] * r;
    }
  });
}

}  // namespace rat
