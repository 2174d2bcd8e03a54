#include "kernels/embedding.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace rat {

void embedding_forward(const int32_t* ids, const float* wte, float* x, int64_t N, int64_t D) {
  RAT_ASSERT(ids != nullptr && wte != nullptr && x != nullptr && N >= 0 && D > 0);
#pragma omp parallel for schedule(static) if (N * D >= 16384)  // not for a decode step's rows
  for (int64_t n = 0; n < N; ++n)
    std::memcpy(x + n * D, wte + int64_t(ids[n]) * D, size_t(D) * sizeof(float));
}

void embedding_backward(const int32_t* ids, const float* dx, float* dwte, int64_t N, int64_t D) {
  RAT_ASSERT(ids != nullptr && dx != nullptr && dwte != nullptr && N >= 0 && D > 0);
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t per = (D + nt - 1) / nt;
    const int64_t j0 = std::min(D, tid * per), j1 = std::min(D, j0 + per);
    for (int64_t n = 0; n < N; ++n) {
      float* dst = dwte + int64_t(ids[n]) * D;
      const float* src = dx + n * D;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace rat
