// Skinny products for decoding one or two sequences: y[m, n] = beta * y[m, n] +
// sum_k bf16(x[m, k]) * W[n, k] for m < M, W already bf16 (frozen
// weights, Bf16WeightCache), rows of K % 32 == 0.
//
// Why not oneDNN: with one or two rows, a product reads every weight once
// for 2-4 FLOPs, so it can only run at memory speed; Debian's oneDNN 2.6
// matmul streams bf16 weights at 27 GB/s here (M 1, N 1024-32000), about half
// of what two cores read. This kernel streams 16 weight rows at a time with
// software prefetch, as the decode attends do: 38-40 GB/s at M 1 and 2. Same
// maths as gemm_bf16_weights (both operands rounded to bf16, float32 sums);
// only the order of the sums differs. gemm_bf16_weights and gemm route these
// shapes here.
#pragma once

#include <cstdint>

namespace rat {

// Whether gemm routes this shape to gemv_bf16 (the AVX-512 kernels in use,
// M <= 2, K % 32 == 0).
bool gemv_bf16_supported(int64_t M, int64_t K);
// Whether gemv_bf16 takes K at all, for any M. Each row of y is then computed
// exactly as a one-row call would (the same sums in the same order), which
// gemm.h's RowInvariantProducts relies on; past two rows it reads the weights
// once per 16 rows, slower than oneDNN's matmul.
bool gemv_bf16_any_rows(int64_t K);

// x: [M, K] float (leading dim ldx), W: [N, K] bf16 bits (leading dim ldw),
// y: [M, N] (leading dim ldy). All threads; call outside parallel regions.
void gemv_bf16(const float* x, int64_t ldx, int64_t M, const uint16_t* W, int64_t ldw, int64_t N,
               int64_t K, float* y, int64_t ldy, float beta);

// The same with float32 weights (K % 16 == 0), as gemm(..., kF32) computes
// it: oneDNN's matmul reads them at 30-33 GB/s here.
bool gemv_f32_supported(int64_t M, int64_t K);
bool gemv_f32_any_rows(int64_t K);
void gemv_f32(const float* x, int64_t ldx, int64_t M, const float* W, int64_t ldw, int64_t N,
              int64_t K, float* y, int64_t ldy, float beta);

}  // namespace rat
