// The one GEMM wrapper: every matrix product of the engine goes through here.
// Row-major throughout. C[M,N] = beta * C + op(A)[M,K] * op(B)[K,N], where
// op(A) = A (A stored [M,K], leading dim lda) or A^T (A stored [K,M]).
//
// Large products use oneDNN's matmul primitive, whose plans are cached by
// shape; bf16 products round A and B to bf16 and accumulate in fp32 (output is
// always fp32). Small products inside tiled kernels (attention blocks) call
// gemm_small, which runs on the calling thread only and needs no plan.
#pragma once

#include <cstdint>

#include "kernels/types.h"

namespace rat {

const char* precision_name(Precision p);

struct GemmShape {
  int64_t M, N, K;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;  // 0: packed (K or M for A, N or K for B, N for C)
};

// Multi-threaded (OpenMP, all threads). Call from outside parallel regions.
void gemm(const GemmShape& s, const float* A, const float* B, float* C, float beta,
          Precision p = Precision::kF32);

// gemm(s, A, B, C, beta, kBF16) with B already rounded to bf16 (uint16 bits,
// stored as B would be: ldb applies), e.g. from Bf16WeightCache; only A is
// rounded per call. Bit for bit the same result when ldb is B's packed width.
void gemm_bf16_weights(const GemmShape& s, const float* A, const uint16_t* B16, float* C,
                       float beta);

// Batch invariance (`--batch-invariant` of generate, chat, serve, eval):
// oneDNN picks its kernel and blocking by M, so a row of x W^T computed among
// 63 others can differ in the last bits from the same row alone, and a greedy
// choice between near-tied tokens can flip (docs/reliability.md). While a
// RowInvariantProducts is alive (any thread; it nests), gemm and
// gemm_bf16_weights compute every row of C exactly as a one-row product would:
// x W^T shapes through gemv's row-invariant kernel when it takes K, every
// other shape one row at a time. Costs time from three rows on (gemv reads the
// weights once per 16 rows; oneDNN once); the default keeps oneDNN's speed.
class RowInvariantProducts {
 public:
  explicit RowInvariantProducts(bool on = true);
  ~RowInvariantProducts();
  RowInvariantProducts(const RowInvariantProducts&) = delete;
  RowInvariantProducts& operator=(const RowInvariantProducts&) = delete;

 private:
  bool on_;
};
bool row_invariant_products();

// Same maths, single-threaded, for use inside an OpenMP parallel region.
// fp32 only (oneDNN's sgemm, which has no plan to build for each new shape).
void gemm_small(const GemmShape& s, const float* A, const float* B, float* C, float beta);

// Same maths, single-threaded, through a cached oneDNN plan (one per shape):
// for a few shapes run many times, such as a decode step's weight slices,
// where oneDNN's matmul runs one core at 220 GFLOP/s against 160 for its
// sgemm (f32, weight rows 256 x 1024 from memory, 64 columns).
void gemm_small_planned(const GemmShape& s, const float* A, const float* B, float* C, float beta);

// bf16 variant for inside parallel regions: A and B already bf16 (uint16 bits).
void gemm_small_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C,
                     float beta);

// Whether oneDNN multiplies bf16 itself here; false (no AVX-512 bf16 kernels,
// or RAT_ISA=avx2): bf16 products widen both operands to f32 first, into
// per-thread buffers twice the size of the bf16 ones (the memory plan counts them).
bool gemm_has_native_bf16();

// Reference triple loop in double precision: the oracle for tests and benches.
void gemm_naive(const GemmShape& s, const float* A, const float* B, float* C, float beta);

// Round-to-nearest-even fp32 -> bf16 (as uint16 bits) and back. NaN stays NaN
// (quieted); fp32 subnormals become signed zero on every path (the AVX512-BF16
// conversion flushes them), so all three functions agree bit for bit.
void to_bf16(const float* x, uint16_t* y, int64_t n);
void from_bf16(const uint16_t* x, float* y, int64_t n);
// Rounds in place: x = float(bf16(x)). Used to emulate bf16 inputs exactly.
void round_bf16(float* x, int64_t n);

}  // namespace rat
