#include "kernels/linear.h"

#include <omp.h>

#include <cstddef>

#include <vector>

#include "kernels/fixed_sums.h"
#include "util/error.h"

namespace rat {

void colsum_accumulate(const float* x, int64_t ld, int64_t N, int64_t D, float* out) {
  RAT_ASSERT(x != nullptr && out != nullptr && N >= 0 && D >= 0 && ld >= D);
  // Fixed row blocks: the same bits on any thread count (kernels/fixed_sums.h).
  column_sums_fixed(N, D, out, [&](int64_t n, float* acc) {
    for (int64_t d = 0; d < D; ++d) acc[d] += x[n * ld + d];
  });
}

void linear_forward(const float* x, int64_t ldx, const float* W, const float* b, float* y,
                    int64_t ldy, int64_t N, int64_t in, int64_t out, Precision p, float beta,
                    const uint16_t* W16) {
  RAT_ASSERT(x != nullptr && W != nullptr && y != nullptr);
  RAT_ASSERT(N >= 0 && in > 0 && out > 0 && ldx >= in && ldy >= out);
  if (p == Precision::kBF16 && W16)
    gemm_bf16_weights({N, out, in, false, true, ldx, in, ldy}, x, W16, y, beta);
  else
    gemm({N, out, in, false, true, ldx, in, ldy}, x, W, y, beta, p);
  if (b) {
    // A decode step's few rows: no parallel region (its barrier costs more).
#pragma omp parallel for schedule(static) if (N * out > 65536)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < out; ++o) y[n * ldy + o] += b[o];
  }
}

void linear_backward(const float* x, int64_t ldx, const float* W, const float* dy, int64_t ldy,
                     float* dx, int64_t lddx, float dx_beta, float* dW, float* db, int64_t N,
                     int64_t in, int64_t out, Precision p) {
  RAT_ASSERT(x != nullptr && W != nullptr && dy != nullptr && dW != nullptr);
  RAT_ASSERT(N >= 0 && in > 0 && out > 0 && ldx >= in && ldy >= out && (!dx || lddx >= in));
  if (dx) gemm({N, in, out, false, false, ldy, in, lddx}, dy, W, dx, dx_beta, p);
  gemm({out, in, N, true, false, ldy, ldx, in}, dy, x, dW, 1.f, p);
  if (db) colsum_accumulate(dy, ldy, N, out, db);
}

}  // namespace rat
