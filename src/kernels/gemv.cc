#include "kernels/gemv.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/decode_attention.h"
#include "kernels/gemm.h"
#include "kernels/vec_math.h"
#include "util/error.h"

namespace rat {

bool gemv_bf16_supported(int64_t M, int64_t K) {
#if defined(__AVX512F__)
  // Three and four rows: oneDNN's 26-30 GB/s beat this kernel's 18-28.
  return M >= 1 && M <= 2 && K % 32 == 0 && K > 0;
#else
  (void)M, (void)K;
  return false;
#endif
}

#if defined(__AVX512F__)
namespace {

using decode_detail::bf16_even;
using decode_detail::bf16_odd;
using decode_detail::hsum16x16;

// Bytes ahead of the row position to prefetch (each row is its own stream).
constexpr int64_t kAhead = 512;

// One 16-lane (float32) or 32-lane (bf16, as even and odd lanes) block of a
// weight row, and the matching x block. xs holds x per block in that layout.
struct F32Rows {
  using T = float;
  static constexpr int64_t kBlock = 16;
  static void fma(const float* xs, const float* w, __m512& acc) {
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(xs), _mm512_loadu_ps(w), acc);
  }
};
struct Bf16Rows {
  using T = uint16_t;
  static constexpr int64_t kBlock = 32;
  static void fma(const float* xs, const uint16_t* w, __m512& acc) {
    const __m512i v = _mm512_loadu_si512(w);
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(xs), bf16_even(v), acc);
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(xs + 16), bf16_odd(v), acc);
  }
};

// R = 16 / M rows at a time: M * R <= 16 accumulators (row r, input m at
// m * R + r), one reduction tree for all. xs: [M, K] in Rows' block layout.
template <class Rows, int M>
void rows_block(const float* xs, const typename Rows::T* W, int64_t ldw, int64_t n0, int64_t K,
                float* y, int64_t ldy, float beta) {
  constexpr int R = 16 / M;
  __m512 acc[16];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += Rows::kBlock)
    for (int r = 0; r < R; ++r) {
      const typename Rows::T* row = W + (n0 + r) * ldw + k;
      _mm_prefetch(reinterpret_cast<const char*>(row) + kAhead, _MM_HINT_T0);
      for (int m = 0; m < M; ++m) Rows::fma(xs + m * K + k, row, acc[m * R + r]);
    }
  alignas(64) float sums[16];
  _mm512_store_ps(sums, hsum16x16(acc));
  for (int m = 0; m < M; ++m)
    for (int r = 0; r < R; ++r) {
      float& out = y[m * ldy + n0 + r];
      out = (beta == 0.f ? 0.f : beta * out) + sums[m * R + r];
    }
}

// One row (the N % R tail).
template <class Rows>
void one_row(const float* xs, int64_t M, const typename Rows::T* W, int64_t ldw, int64_t n,
             int64_t K, float* y, int64_t ldy, float beta) {
  for (int64_t m = 0; m < M; ++m) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += Rows::kBlock) Rows::fma(xs + m * K + k, W + n * ldw + k, acc);
    float& out = y[m * ldy + n];
    out = (beta == 0.f ? 0.f : beta * out) + hsum16(acc);
  }
}

template <class Rows, int M>
void run(const float* xs, const typename Rows::T* W, int64_t ldw, int64_t N, int64_t K, float* y,
         int64_t ldy, float beta) {
  constexpr int R = 16 / M;
  const int64_t groups = N / R;
  // Parallel only when the weights are worth a region (>= 256 KiB of bf16).
#pragma omp parallel for schedule(static) if (N * K >= (int64_t(1) << 17))
  for (int64_t g = 0; g < groups; ++g) rows_block<Rows, M>(xs, W, ldw, g * R, K, y, ldy, beta);
  for (int64_t n = groups * R; n < N; ++n) one_row<Rows>(xs, M, W, ldw, n, K, y, ldy, beta);
}

}  // namespace
#endif

void gemv_bf16(const float* x, int64_t ldx, int64_t M, const uint16_t* W, int64_t ldw, int64_t N,
               int64_t K, float* y, int64_t ldy, float beta) {
  RAT_ASSERT(x != nullptr && W != nullptr && y != nullptr);
  RAT_ASSERT(gemv_bf16_supported(M, K) && N >= 0 && ldx >= K && ldw >= K && ldy >= N);
#if defined(__AVX512F__)
  // x rounded to bf16 (as gemm_bf16_weights rounds A), widened, and split into
  // the even/odd lanes that a 32-element block of a weight row widens into.
  thread_local std::vector<float> xs;
  thread_local std::vector<uint16_t> tmp;
  const int64_t nb = K / 32;
  xs.resize(size_t(M * K));
  tmp.resize(size_t(K));
  for (int64_t m = 0; m < M; ++m) {
    to_bf16(x + m * ldx, tmp.data(), K);
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t j = 0; j < 16; ++j) {
        xs[size_t(m * K + 32 * b + j)] = bf16_to_f32(tmp[size_t(32 * b + 2 * j)]);
        xs[size_t(m * K + 32 * b + 16 + j)] = bf16_to_f32(tmp[size_t(32 * b + 2 * j + 1)]);
      }
  }
  switch (M) {
    case 1: return run<Bf16Rows, 1>(xs.data(), W, ldw, N, K, y, ldy, beta);
    default: return run<Bf16Rows, 2>(xs.data(), W, ldw, N, K, y, ldy, beta);
  }
#else
  (void)x, (void)ldx, (void)M, (void)W, (void)ldw, (void)N, (void)K, (void)y, (void)ldy, (void)beta;
#endif
}

bool gemv_f32_supported(int64_t M, int64_t K) {
#if defined(__AVX512F__)
  return M >= 1 && M <= 2 && K % 16 == 0 && K > 0;
#else
  (void)M, (void)K;
  return false;
#endif
}

void gemv_f32(const float* x, int64_t ldx, int64_t M, const float* W, int64_t ldw, int64_t N,
              int64_t K, float* y, int64_t ldy, float beta) {
  RAT_ASSERT(x != nullptr && W != nullptr && y != nullptr);
  RAT_ASSERT(gemv_f32_supported(M, K) && N >= 0 && ldx >= K && ldw >= K && ldy >= N);
#if defined(__AVX512F__)
  thread_local std::vector<float> xs;  // x packed to [M, K]
  xs.resize(size_t(M * K));
  for (int64_t m = 0; m < M; ++m) std::copy(x + m * ldx, x + m * ldx + K, xs.begin() + m * K);
  if (M == 1) return run<F32Rows, 1>(xs.data(), W, ldw, N, K, y, ldy, beta);
  return run<F32Rows, 2>(xs.data(), W, ldw, N, K, y, ldy, beta);
#else
  (void)x, (void)ldx, (void)M, (void)W, (void)ldw, (void)N, (void)K, (void)y, (void)ldy, (void)beta;
#endif
}

}  // namespace rat
