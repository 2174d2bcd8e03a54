#include "kernels/dropout.h"

#include "util/error.h"

namespace rat {

void dropout_add(const float* z, const float* r, float* y, int64_t n, double p, uint64_t key) {
  RAT_ASSERT(z && r && y && n >= 0 && p >= 0.0 && p < 1.0);
  const uint32_t thr = dropout_threshold(p);
  const float scale = float(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static) if (n >= 16384)
  for (int64_t i = 0; i < n; ++i)
    y[i] = r[i] + (dropout_keep(key, uint64_t(i), thr) ? z[i] * scale : 0.f);
}

void dropout_backward(const float* dy, float* dz, int64_t n, double p, uint64_t key) {
  RAT_ASSERT(dy && dz && n >= 0 && p >= 0.0 && p < 1.0);
  const uint32_t thr = dropout_threshold(p);
  const float scale = float(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static) if (n >= 16384)
  for (int64_t i = 0; i < n; ++i) dz[i] = dropout_keep(key, uint64_t(i), thr) ? dy[i] * scale : 0.f;
}

}  // namespace rat
