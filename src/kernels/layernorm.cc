#include "kernels/layernorm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/fixed_sums.h"
#include "util/error.h"

namespace rat {

void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t N, int64_t D) {
  RAT_ASSERT(x && w && b && y && mean && rstd && N >= 0 && D > 0);
#pragma omp parallel for schedule(static) if (N * D >= 16384)
  for (int64_t n = 0; n < N; ++n) {
    const float* xr = x + n * D;
    float* yr = y + n * D;
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < D; ++d) s += xr[d];
    const float m = s / float(D);
    // Two passes (centre, then square): no cancellation when |mean| >> std.
    float ss = 0.f;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; ++d) ss += (xr[d] - m) * (xr[d] - m);
    const float r = 1.0f / std::sqrt(ss / float(D) + kLayerNormEps);
    mean[n] = m;
    rstd[n] = r;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) yr[d] = (xr[d] - m) * r * w[d] + b[d];
  }
}

// With xh = (x - mean) r and g = dy w:
// dx = r (g - mean(g) - xh mean(g xh)); dw = sum_n dy xh; db = sum_n dy.
void layernorm_backward(const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, float* dw, float* db, int64_t N, int64_t D) {
  RAT_ASSERT(dy && x && w && mean && rstd && dx && dw && db && N >= 0 && D > 0);
  // dw | db by fixed row blocks: the same bits on any thread count (kernels/fixed_sums.h).
  thread_local std::vector<float> dwb;
  dwb.assign(size_t(2 * D), 0.f);
  column_sums_fixed(N, 2 * D, dwb.data(), [&](int64_t n, float* dwp) {
    float* dbp = dwp + D;
    const float* xr = x + n * D;
    const float* dyr = dy + n * D;
    float* dxr = dx + n * D;
    const float m = mean[n], r = rstd[n];
    float sg = 0.f, sgx = 0.f;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t d = 0; d < D; ++d) {
      const float g = dyr[d] * w[d];
      sg += g;
      sgx += g * (xr[d] - m) * r;
    }
    sg /= float(D);
    sgx /= float(D);
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      const float xh = (xr[d] - m) * r;
      dxr[d] += r * (dyr[d] * w[d] - sg - xh * sgx);
      dwp[d] += dyr[d] * xh;
      dbp[d] += dyr[d];
    }
  });
  for (int64_t d = 0; d < D; ++d) dw[d] += dwb[size_t(d)], db[d] += dwb[size_t(D + d)];
}

}  // namespace rat
