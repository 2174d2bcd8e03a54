#include "kernels/gemv_bf16.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/decode_attention.h"
#include "kernels/gemm.h"
#include "kernels/vec_math.h"

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

// R = 16 / M rows at a time: M * R <= 16 accumulators (row r, input m at
// m * R + r), one reduction tree for all. xs: x rounded to bf16 and split, per 32-block b,
// into even (xs[(m * nb + b) * 32 ..+16)) and odd (..+16 .. +32) elements.
template <int M>
void rows_block(const float* xs, const uint16_t* W, int64_t ldw, int64_t n0, int64_t K,
                float* y, int64_t ldy, float beta) {
  constexpr int R = 16 / M;
  const int64_t nb = K / 32;
  __m512 acc[16];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512 xe[M], xo[M];
    for (int m = 0; m < M; ++m) {
      xe[m] = _mm512_loadu_ps(xs + (m * nb + b) * 32);
      xo[m] = _mm512_loadu_ps(xs + (m * nb + b) * 32 + 16);
    }
    for (int r = 0; r < R; ++r) {
      const uint16_t* row = W + (n0 + r) * ldw + 32 * b;
      _mm_prefetch(reinterpret_cast<const char*>(row) + kAhead, _MM_HINT_T0);
      const __m512i w = _mm512_loadu_si512(row);
      const __m512 e = bf16_even(w), o = bf16_odd(w);
      for (int m = 0; m < M; ++m) {
        acc[m * R + r] = _mm512_fmadd_ps(xe[m], e, acc[m * R + r]);
        acc[m * R + r] = _mm512_fmadd_ps(xo[m], o, acc[m * R + r]);
      }
    }
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
void one_row(const float* xs, int64_t M, const uint16_t* W, int64_t ldw, int64_t n, int64_t K,
             float* y, int64_t ldy, float beta) {
  const int64_t nb = K / 32;
  for (int64_t m = 0; m < M; ++m) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m512i w = _mm512_loadu_si512(W + n * ldw + 32 * b);
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(xs + (m * nb + b) * 32), bf16_even(w), acc);
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(xs + (m * nb + b) * 32 + 16), bf16_odd(w), acc);
    }
    float& out = y[m * ldy + n];
    out = (beta == 0.f ? 0.f : beta * out) + hsum16(acc);
  }
}

template <int M>
void run(const float* xs, const uint16_t* W, int64_t ldw, int64_t N, int64_t K, float* y,
         int64_t ldy, float beta) {
  constexpr int R = 16 / M;
  const int64_t groups = N / R;
  // Parallel only when the weights are worth a region (>= 256 KiB).
#pragma omp parallel for schedule(static) if (N * K >= (int64_t(1) << 17))
  for (int64_t g = 0; g < groups; ++g) rows_block<M>(xs, W, ldw, g * R, K, y, ldy, beta);
  for (int64_t n = groups * R; n < N; ++n) one_row(xs, M, W, ldw, n, K, y, ldy, beta);
}

}  // namespace
#endif

void gemv_bf16(const float* x, int64_t ldx, int64_t M, const uint16_t* W, int64_t ldw,
               int64_t N, int64_t K, float* y, int64_t ldy, float beta) {
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
        xs[size_t((m * nb + b) * 32 + j)] = bf16_to_f32(tmp[size_t(32 * b + 2 * j)]);
        xs[size_t((m * nb + b) * 32 + 16 + j)] = bf16_to_f32(tmp[size_t(32 * b + 2 * j + 1)]);
      }
  }
  switch (M) {
    case 1: return run<1>(xs.data(), W, ldw, N, K, y, ldy, beta);
    case 2: return run<2>(xs.data(), W, ldw, N, K, y, ldy, beta);
    default: return run<2>(xs.data(), W, ldw, N, K, y, ldy, beta);
  }
#else
  (void)x, (void)ldx, (void)M, (void)W, (void)ldw, (void)N, (void)K, (void)y, (void)ldy, (void)beta;
#endif
}

}  // namespace rat
