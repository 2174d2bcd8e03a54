// Linear layer y = x W^T (+ b), W [out, in] as in PyTorch (SPEC.md). All three
// products of forward and backward go through the GEMM wrapper.
#pragma once

#include <cstdint>

#include "kernels/gemm.h"

namespace rat {

// x: [N, in] (row stride ldx); W: [out, in]; b: [out] or null; y: [N, out] (stride ldy).
// y = beta * y + x W^T + b: beta 1 adds the layer's output onto a residual in y.
// W16: W already rounded to bf16 (Bf16WeightCache) or null; used only with
// p == kBF16, where it gives the same result as rounding W on this call.
void linear_forward(const float* x, int64_t ldx, const float* W, const float* b, float* y,
                    int64_t ldy, int64_t N, int64_t in, int64_t out, Precision p, float beta = 0.f,
                    const uint16_t* W16 = nullptr);

// dy: [N, out] (stride ldy). dx: [N, in] written (beta 0) or accumulated
// (beta 1), null to skip. dW [out, in], db [out]: accumulated (db may be null).
void linear_backward(const float* x, int64_t ldx, const float* W, const float* dy, int64_t ldy,
                     float* dx, int64_t lddx, float dx_beta, float* dW, float* db, int64_t N,
                     int64_t in, int64_t out, Precision p);

// out[d] += sum_n x[n*ld + d] over N rows (bias gradients).
void colsum_accumulate(const float* x, int64_t ld, int64_t N, int64_t D, float* out);

}  // namespace rat
