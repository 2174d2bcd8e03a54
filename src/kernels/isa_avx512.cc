// The AVX-512 table of the vector kernels (kernels/isa_kernels.h): compiled
// with AVX-512 F/BW/DQ/VL (x86-64-v4; CMakeLists.txt), or -march=native in a
// native build, where the bodies are exactly the ones that build inlines. Only
// pointer-and-length code here: no standard-library templates, whose
// out-of-line copies the linker could share with code built for a lesser CPU.
#if defined(__x86_64__)

#define RAT_ISA_TRANSLATION_UNIT 1

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/bf16_scalar.h"
#include "kernels/decode_generic.h"
#include "kernels/isa_kernels.h"
#include "kernels/vec_avx512.h"

namespace rat::avx512 {
namespace {

// ---- decode_attention.h ----------------------------------------------------------------

using Vec = VecOps<vec_dot, avx512::dot_row, vec_max, vec_exp_affine_sum>;

// The widths models use, unrolled: this loop is the memory-bound part of a
// decode step, and the generic one spends more time in horizontal sums and in
// reloading o than memory takes to deliver the rows.
template <class KV>
void decode_attend(const float* q, const KV* k, const KV* v, int64_t n, const float* k_extra,
                   const float* v_extra, int64_t P, float scale, float* scores, float* o) {
  switch (P) {
    case 64:
      return decode_detail::attend_unrolled<4>(q, k, v, n, k_extra, v_extra, scale, scores, o);
    case 128:
      return decode_detail::attend_unrolled<8>(q, k, v, n, k_extra, v_extra, scale, scores, o);
    default: break;
  }
  decode_attend_generic_with<Vec>(q, k, v, n, k_extra, v_extra, P, scale, scores, o);
}

// ---- gemv.cc ---------------------------------------------------------------------------

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

// Any number of rows, in chunks of 8, 4, 2 and 1. (Not 16: sixteen rows of x
// at K 1024 are 64 KiB, past L1, and every weight row re-reads them all:
// 16 rows ran at 27 GFLOP/s here against 55 for 8, N 32000, K 1024.) Every output element is
// the same chain of FMAs over K in block order and the same 16-lane tree
// (hsum16x16's lanes and hsum16 add alike), whatever the chunk, the row's
// place in it or N's tail: a row's result does not depend on the other rows
// (batch-invariant decoding, gemm.h's RowInvariantProducts).
template <class Rows>
void run_any(const float* xs, int64_t M, const typename Rows::T* W, int64_t ldw, int64_t N,
             int64_t K, float* y, int64_t ldy, float beta) {
  int64_t m = 0;
  for (; M - m >= 8; m += 8) run<Rows, 8>(xs + m * K, W, ldw, N, K, y + m * ldy, ldy, beta);
  if (M - m >= 4) run<Rows, 4>(xs + m * K, W, ldw, N, K, y + m * ldy, ldy, beta), m += 4;
  if (M - m >= 2) run<Rows, 2>(xs + m * K, W, ldw, N, K, y + m * ldy, ldy, beta), m += 2;
  if (M - m >= 1) run<Rows, 1>(xs + m * K, W, ldw, N, K, y + m * ldy, ldy, beta);
}

void gemv_f32(const float* xs, int64_t M, const float* W, int64_t ldw, int64_t N, int64_t K,
              float* y, int64_t ldy, float beta) {
  run_any<F32Rows>(xs, M, W, ldw, N, K, y, ldy, beta);
}

void gemv_bf16(const float* xs, int64_t M, const uint16_t* W, int64_t ldw, int64_t N, int64_t K,
               float* y, int64_t ldy, float beta) {
  run_any<Bf16Rows>(xs, M, W, ldw, N, K, y, ldy, beta);
}

// ---- activations.cc (gelu) --------------------------------------------------------------

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

// The normal CDF Phi(x) of 16 floats, through erfc on both sides, so that
// neither tail cancels: Phi(x) = erfc(z) / 2 for x < 0 and 1 - erfc(z) / 2 for
// x >= 0, z = |x| / sqrt(2). erfc(z) = t exp(-z^2 + p(t)), t = 1 / (1 + z/2),
// with the degree-9 Chebyshev-fitted p of Numerical Recipes' erfcc (relative
// error < 1.2e-7 for every z >= 0). exp(-z^2) is taken as exp(-hi) exp(p - lo)
// with z^2 = x^2 / 2 = hi + lo exactly (FMA), so large z lose nothing to
// rounding z^2.
// Why: libm's scalar erff made gelu ~4 ns per element, an eighth of a
// batch-717 decode step of the hybrid model; this is ~0.3 ns.
// x is clamped to [-20, 20] first (Phi is exactly 0 or 1 in float32 beyond):
// past |x| ~ 6.5e4 the exact split of x^2 overflows exp(p - lo) while
// exp(-hi) underflows, and their product would be NaN. NaN stays NaN (the
// constant is the first operand of max/min, which return the second on NaN).
inline __m512 clamp20(__m512 x) {
  return _mm512_maskz_min_ps(kAll16, _mm512_set1_ps(20.f),
                             _mm512_maskz_max_ps(kAll16, _mm512_set1_ps(-20.f), x));
}
inline __m512 phi16(__m512 x) {
  x = clamp20(x);
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(kInvSqrt2));
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), one));
  static const float c[] = {0.17087277f,  -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                            -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f,  -1.26551223f};
  __m512 p = _mm512_set1_ps(c[0]);
  for (int i = 1; i < 10; ++i) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c[i]));
  // z^2 = x^2 / 2 from x itself (z is rounded: 2 z^2 ulp of error in erfc).
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 xx = _mm512_mul_ps(x, x);
  const __m512 hi = _mm512_mul_ps(xx, half);
  const __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(x, x, xx), half);
  const __m512 erfc = _mm512_mul_ps(
      t, _mm512_mul_ps(exp16(_mm512_sub_ps(_mm512_setzero_ps(), hi)), exp16(_mm512_sub_ps(p, lo))));
  const __m512 half_erfc = _mm512_mul_ps(erfc, half);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, half_erfc), half_erfc);
}

// x Phi(x) over n floats.
void gelu_vec(const float* h, float* a, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(h + i);
    _mm512_storeu_ps(a + i, _mm512_mul_ps(x, phi16(x)));
  }
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 x = _mm512_maskz_loadu_ps(m, h + i);
    _mm512_mask_storeu_ps(a + i, m, _mm512_mul_ps(x, phi16(x)));
  }
}

// d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi); times da.
void gelu_grad_vec(const float* h, const float* da, float* dh, int64_t n) {
  auto grad = [](__m512 x) {
    x = clamp20(x);  // beyond, x phi(x) is 0 and Phi 0 or 1 in float32
    // exp(-x^2 / 2) with x^2 / 2 = hi + lo exactly, as in phi16: e^-hi (1 - lo).
    const __m512 half = _mm512_set1_ps(0.5f), xx = _mm512_mul_ps(x, x);
    const __m512 hi = _mm512_mul_ps(xx, half);
    const __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(x, x, xx), half);
    const __m512 eh = exp16(_mm512_sub_ps(_mm512_setzero_ps(), hi));
    const __m512 e = _mm512_fnmadd_ps(eh, lo, eh);
    return _mm512_fmadd_ps(_mm512_mul_ps(x, _mm512_set1_ps(kInvSqrt2Pi)), e, phi16(x));
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dh + i, _mm512_mul_ps(_mm512_loadu_ps(da + i), grad(_mm512_loadu_ps(h + i))));
  if (i < n) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(
        dh + i, m,
        _mm512_mul_ps(_mm512_maskz_loadu_ps(m, da + i), grad(_mm512_maskz_loadu_ps(m, h + i))));
  }
}
// ---- gemm.cc (to_bf16) ------------------------------------------------------------------

void to_bf16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512BF16__)  // a native build on a CPU with it; the same bits as bf16_scalar
  for (; i + 16 <= n; i += 16) {
    __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), reinterpret_cast<__m256i&>(v));
  }
#endif
  for (; i < n; ++i) y[i] = bf16_scalar(x[i]);
}

// ---- ceilings.cc (read bandwidth) ---------------------------------------------------------

// Eight independent accumulators, prefetching 1 KiB ahead as the decode sweeps
// do: without it this loop reads ~42 GB/s where they reach ~50.
float read_sum(const float* p, int64_t n) {
  __m512 acc[8];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 128) {
    const char* ahead = reinterpret_cast<const char*>(p + i) + 1024;
    for (int l = 0; l < 512; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T0);
    for (int k = 0; k < 8; ++k) acc[k] = _mm512_add_ps(acc[k], _mm512_loadu_ps(p + i + 16 * k));
  }
  for (int k = 1; k < 8; ++k) acc[0] = _mm512_add_ps(acc[0], acc[k]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  float s = 0;
  for (float f : lanes) s += f;
  return s;
}

}  // namespace
}  // namespace rat::avx512

namespace rat {

const IsaKernels kIsaAvx512Kernels = {
    "avx512",
    avx512::vec_exp,
    avx512::vec_sigmoid,
    avx512::vec_max,
    avx512::vec_exp_affine_sum,
    avx512::vec_exp_affine,
    avx512::vec_softmax_grad,
    avx512::vec_dot,
    static_cast<float (*)(const float*, const uint16_t*, int64_t)>(avx512::dot_row),
    avx512::decode_attend<float>,
    avx512::decode_attend<uint16_t>,
    avx512::gelu_vec,
    avx512::gelu_grad_vec,
    avx512::gemv_f32,
    avx512::gemv_bf16,
    avx512::to_bf16,
    avx512::read_sum,
};

}  // namespace rat

#endif  // __x86_64__
