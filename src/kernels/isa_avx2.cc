// The AVX2+FMA table of the vector kernels (kernels/isa_kernels.h), 8 lanes:
// compiled with -mavx2 -mfma (and no AVX-512 in a native build;
// CMakeLists.txt). The same maths as the AVX-512 bodies (kernels/vec_avx512.h):
// the same exp (Cody-Waite reduction, degree-7 Taylor polynomial; 2^n applied
// in two exact halves where AVX-512 has vscalefps), sums in 8 lanes instead of
// 16. AVX2 has no mask registers: tails load and store through lane masks
// (vmaskmovps, which never touches a masked-off element). Only
// pointer-and-length code here, as in isa_avx512.cc.
#if defined(__x86_64__)

#define RAT_ISA_TRANSLATION_UNIT 1

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/bf16_scalar.h"
#include "kernels/decode_generic.h"
#include "kernels/isa_kernels.h"

namespace rat::avx2 {
namespace {

// Lanes [0, n) set, n < 8.
inline __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// e^x for 8 floats; see exp16 in vec_avx512.h for the reduction and the
// polynomial. 2^n: n is at least -150 after the clamp (x >= -104) and is
// capped at 254 (e^x overflows long before), split as n1 + n2 with both
// halves in [-75, 127], so each factor is a normal float built from its
// exponent bits; p 2^n1 is exact, and the product with 2^n2 rounds once, as
// vscalefps does (gradual underflow, +inf on overflow). NaN stays NaN.
inline __m256 exp8(__m256 x) {
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693145751953125f);
  const __m256 ln2_lo = _mm256_set1_ps(1.42860682030941723212e-6f);
  x = _mm256_max_ps(_mm256_set1_ps(-104.f), x);  // vmaxps returns x (second) on NaN
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
  r = _mm256_fnmadd_ps(n, ln2_lo, r);
  __m256 p = _mm256_set1_ps(1.f / 5040.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  // NaN lanes convert to INT_MIN; p is NaN there already, so any factor works.
  const __m256i ni = _mm256_cvtps_epi32(_mm256_min_ps(n, _mm256_set1_ps(254.f)));
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

inline float hsum8(__m256 v) {
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
inline float hmax8(__m256 v) {
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  b = _mm_max_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}

void vec_exp(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, exp8(_mm256_maskload_ps(x + i, m)));
  }
}

void vec_sigmoid(const float* x, const float* b, float* y, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.f);
  auto sig = [&](__m256 v) {
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
    _mm256_storeu_ps(y + i, sig(v));
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    __m256 v = _mm256_maskload_ps(x + i, m);
    if (b) v = _mm256_add_ps(v, _mm256_maskload_ps(b + i, m));
    _mm256_maskstore_ps(y + i, m, sig(v));
  }
}

float vec_max(const float* x, int64_t n) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  __m256 acc = ninf;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_max_ps(acc, _mm256_loadu_ps(x + i));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
    acc = _mm256_max_ps(acc, v);
  }
  return hmax8(acc);
}

float vec_exp_affine_sum(float* x, int64_t n, float a, float b) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_fmsub_ps(va, _mm256_loadu_ps(x + i), vb));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 e = exp8(_mm256_fmsub_ps(va, _mm256_maskload_ps(x + i, m), vb));
    _mm256_maskstore_ps(x + i, m, e);
    acc = _mm256_add_ps(acc, _mm256_and_ps(e, _mm256_castsi256_ps(m)));
  }
  return hsum8(acc);
}

void vec_exp_affine(float* x, int64_t n, float a, float b) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, exp8(_mm256_fmsub_ps(va, _mm256_loadu_ps(x + i), vb)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, exp8(_mm256_fmsub_ps(va, _mm256_maskload_ps(x + i, m), vb)));
  }
}

void vec_softmax_grad(const float* p, float* ds, int64_t n, float d, float a) {
  const __m256 vd = _mm256_set1_ps(d), va = _mm256_set1_ps(a);
  auto grad = [&](__m256 pv, __m256 dv) {
    return _mm256_mul_ps(_mm256_mul_ps(pv, va), _mm256_sub_ps(dv, vd));
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(ds + i, grad(_mm256_loadu_ps(p + i), _mm256_loadu_ps(ds + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(ds + i, m,
                        grad(_mm256_maskload_ps(p + i, m), _mm256_maskload_ps(ds + i, m)));
  }
}

float vec_dot(const float* x, const float* y, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc);
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m), acc);
  }
  return hsum8(acc);
}

// q . k for a bf16 row (widened exactly by a 16-bit shift): 8 lanes, scalar tail.
float dot_row_bf16(const float* q, const uint16_t* k, int64_t P) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= P; i += 8) {
    const __m256i w =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
    acc =
        _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)), acc);
  }
  float s = hsum8(acc);
  for (; i < P; ++i) {
    const uint32_t u = uint32_t(k[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    s += q[i] * f;
  }
  return s;
}

using Vec = VecOps<vec_dot, dot_row_bf16, vec_max, vec_exp_affine_sum>;

// As avx512::read_sum, 8 accumulators of 8 lanes (64 floats a step).
float read_sum(const float* p, int64_t n) {
  __m256 acc[8];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 64) {
    const char* ahead = reinterpret_cast<const char*>(p + i) + 1024;
    for (int l = 0; l < 256; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T0);
    for (int k = 0; k < 8; ++k) acc[k] = _mm256_add_ps(acc[k], _mm256_loadu_ps(p + i + 8 * k));
  }
  for (int k = 1; k < 8; ++k) acc[0] = _mm256_add_ps(acc[0], acc[k]);
  return hsum8(acc[0]);
}

}  // namespace
}  // namespace rat::avx2

namespace rat {

const IsaKernels kIsaAvx2Kernels = {
    "avx2",
    avx2::vec_exp,
    avx2::vec_sigmoid,
    avx2::vec_max,
    avx2::vec_exp_affine_sum,
    avx2::vec_exp_affine,
    avx2::vec_softmax_grad,
    avx2::vec_dot,
    avx2::dot_row_bf16,
    decode_attend_generic_with<avx2::Vec, float>,
    decode_attend_generic_with<avx2::Vec, uint16_t>,
    nullptr,  // gelu: libm's erf (activations.cc)
    nullptr,
    nullptr,  // gemv: oneDNN
    nullptr,
    to_bf16_scalar,
    avx2::read_sum,
};

}  // namespace rat

#endif  // __x86_64__
