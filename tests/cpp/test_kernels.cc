// Unit tests for src/kernels: every forward against a double-precision
// reference written here from SPEC.md's formulas, every backward against
// central finite differences of the scalar loss sum(out * R) (random R)
// evaluated on that double reference.
//
// Finite differences: the references run in double, so eps = 1e-6 leaves a
// truncation error O(eps^2 |f'''|) ~ 1e-12 and a cancellation error
// ~ 1e-16 |loss| / eps <= 1e-7 for |loss| <= 1e3. Both are far below what the
// fp32 kernels are allowed (|err| <= 1e-5 + 1e-4 |g|): fp32 rounding over the
// at most ~100-term sums here gives ~1e-5 relative at worst, while a formula
// error (a lost term, a wrong sign, a write instead of an accumulate) is O(1).
//
// Sizes are chosen to hit every branch: row counts that leave a remainder
// over the thread counts we run with (1 and 3), widths that are not multiples
// of 16 or of the scan's 64-wide column blocks, ragged last chunks, L = 1,
// L >= T, B > 1, and row strides larger than the row width.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/activations.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/scan.h"

namespace rat {
namespace {

using Vec = std::vector<float>;
using DVec = std::vector<double>;

constexpr double kFdEps = 1e-6;     // see the header comment
constexpr double kGradAtol = 1e-5;  // fp32 kernel vs double finite differences
constexpr double kGradRtol = 1e-4;
constexpr double kU32 = 1.0 / (1 << 24);  // unit roundoff of fp32
constexpr float kGarbage = 12345.f;       // prefill of outputs that must be WRITTEN

Vec randn(int64_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  Vec v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

Vec uniform(int64_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Vec v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

DVec to_d(const Vec& v) { return DVec(v.begin(), v.end()); }

// Elementwise |got - want| <= atol + rtol |want| (NaN fails); names the worst entry.
::testing::AssertionResult close(const float* got, const double* want, size_t n, double atol,
                                 double rtol) {
  size_t bad = 0, worst = 0;
  double worst_ratio = -1;
  for (size_t i = 0; i < n; ++i) {
    double err = std::fabs(double(got[i]) - want[i]);
    double tol = atol + rtol * std::fabs(want[i]);
    if (!(err <= tol)) {
      ++bad;
      double ratio = std::isnan(err) ? std::numeric_limits<double>::infinity() : err / tol;
      if (ratio > worst_ratio) worst_ratio = ratio, worst = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << n << " entries off; worst [" << worst << "]: got " << got[worst]
         << ", want " << want[worst] << ", tol " << atol + rtol * std::fabs(want[worst]);
}
::testing::AssertionResult close(const Vec& got, const DVec& want, double atol, double rtol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "size mismatch";
  return close(got.data(), want.data(), got.size(), atol, rtol);
}

// Runs `body` once per thread count, so row and column splits leave remainders.
template <class F>
void for_threads(F body) {
  const int saved = omp_get_max_threads();
  for (int nt : {1, 3}) {
    SCOPED_TRACE("threads " + std::to_string(nt));
    omp_set_num_threads(nt);
    body();
  }
  omp_set_num_threads(saved);
}

// Central difference of `loss` in every coordinate of x (x is restored).
template <class F>
DVec fd_grad(DVec& x, F loss, double eps = kFdEps) {
  DVec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double lp = loss();
    x[i] = x0 - eps;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

double dot(const DVec& a, const DVec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

DVec plus(const Vec& prefill, const DVec& g) {
  DVec r(g.size());
  for (size_t i = 0; i < g.size(); ++i) r[i] = double(prefill[i]) + g[i];
  return r;
}

// Copies packed [rows, cols] into a strided buffer (pad columns = `pad`) and back.
Vec to_strided(const Vec& packed, int64_t rows, int64_t cols, int64_t ld, float pad) {
  Vec s(size_t(rows * ld), pad);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) s[size_t(r * ld + c)] = packed[size_t(r * cols + c)];
  return s;
}
Vec from_strided(const Vec& s, int64_t rows, int64_t cols, int64_t ld) {
  Vec p(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) p[size_t(r * cols + c)] = s[size_t(r * ld + c)];
  return p;
}
// The pad columns of a strided buffer must still hold `pad` exactly.
::testing::AssertionResult pad_untouched(const Vec& s, int64_t rows, int64_t cols, int64_t ld,
                                         float pad) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = cols; c < ld; ++c)
      if (s[size_t(r * ld + c)] != pad)
        return ::testing::AssertionFailure() << "pad column [" << r << ", " << c << "] overwritten";
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// bf16 rounding reference: nearest of the two neighbouring bf16 values, ties
// to the even one, computed on values (not by the bias-add trick). fp32
// subnormals are flushed to signed zero, as the AVX512-BF16 conversion does.

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
double bf16_value(uint16_t h) {
  if ((h & 0x7fff) == 0x7f80) return (h & 0x8000) ? -std::ldexp(1.0, 128) : std::ldexp(1.0, 128);
  return double(float_of(uint32_t(h) << 16));  // finite: the double is exact
}
bool is_subnormal(float f) { return f != 0.f && std::fpclassify(f) == FP_SUBNORMAL; }

uint16_t ref_bf16_bits(float f) {
  const uint32_t u = bits_of(f);
  if (std::isnan(f)) return uint16_t((u >> 16) | 0x40);  // only NaN-ness is checked
  if (is_subnormal(f)) return uint16_t((u >> 16) & 0x8000);
  const uint16_t lo = uint16_t(u >> 16);  // truncation toward zero
  if ((u & 0xffff) == 0) return lo;       // exactly representable (incl. inf, zero)
  const uint16_t hi = uint16_t(lo + 1);   // next value away from zero (may be inf)
  const double dl = std::fabs(double(f) - bf16_value(lo));
  const double dh = std::fabs(bf16_value(hi) - double(f));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}
float ref_round_bf16(float f) { return float_of(uint32_t(ref_bf16_bits(f)) << 16); }
Vec ref_round_bf16(const Vec& v) {
  Vec r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = ref_round_bf16(v[i]);
  return r;
}

// ---------------------------------------------------------------------------
// GEMM

struct RefGemm {
  DVec c, bound;  // bound: sum_k |a b| + |beta c0|, the scale of the rounding error
};

// C = beta C0 + op(A) op(B) in double, using the GemmShape conventions of gemm.h.
RefGemm ref_gemm(const GemmShape& s, const Vec& A, const Vec& B, const Vec& C0, float beta) {
  const int64_t lda = s.lda ? s.lda : (s.trans_a ? s.M : s.K);
  const int64_t ldb = s.ldb ? s.ldb : (s.trans_b ? s.K : s.N);
  const int64_t ldc = s.ldc ? s.ldc : s.N;
  RefGemm r;
  r.c.assign(C0.size(), 0);
  r.bound.assign(C0.size(), 0);
  for (size_t i = 0; i < C0.size(); ++i) r.c[i] = C0[i];
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t j = 0; j < s.N; ++j) {
      double acc = 0, mag = 0;
      for (int64_t k = 0; k < s.K; ++k) {
        double a = s.trans_a ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)];
        double b = s.trans_b ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)];
        acc += a * b;
        mag += std::fabs(a * b);
      }
      const size_t ci = size_t(i * ldc + j);
      const double c0 = beta == 0.f ? 0.0 : double(beta) * double(C0[ci]);
      r.c[ci] = acc + c0;
      r.bound[ci] = mag + std::fabs(c0);
    }
  return r;
}

// Any fp32 summation order of K products (exact or rounded) plus the beta
// term stays within gamma_{K+2} * bound, gamma_n = n u / (1 - n u); we allow 2x.
::testing::AssertionResult gemm_close(const Vec& got, const RefGemm& ref, const GemmShape& s) {
  DVec tol(ref.c.size());
  for (size_t i = 0; i < tol.size(); ++i) tol[i] = 2.0 * double(s.K + 2) * kU32 * ref.bound[i];
  for (size_t i = 0; i < got.size(); ++i) {
    double err = std::fabs(double(got[i]) - ref.c[i]);
    if (!(err <= tol[i] + 1e-30))
      return ::testing::AssertionFailure()
             << "C[" << i << "]: got " << got[i] << ", want " << ref.c[i] << ", tol " << tol[i];
  }
  return ::testing::AssertionSuccess();
}

struct GemmCase {
  GemmShape s;
  int64_t a_size, b_size, c_size;
};

// Shape with leading dims either packed (0) or padded by a few columns.
GemmCase make_case(int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool padded) {
  GemmShape s{M, N, K, ta, tb};
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
  const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
  int64_t lda = a_cols, ldb = b_cols, ldc = N;
  if (padded) {
    lda += 3, ldb += 5, ldc += 7;
    s.lda = lda, s.ldb = ldb, s.ldc = ldc;
  }
  return {s, a_rows * lda, b_rows * ldb, M * ldc};
}

TEST(Gemm, F32AllTransposesStridesAndBeta) {
  const int64_t shapes[][3] = {{37, 29, 45}, {130, 97, 300}, {1, 17, 3}};
  uint32_t seed = 100;
  for (const auto& mnk : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool padded : {false, true})
          for (float beta : {0.f, 1.f}) {
            SCOPED_TRACE(::testing::Message()
                         << "M " << mnk[0] << " N " << mnk[1] << " K " << mnk[2] << " ta " << ta
                         << " tb " << tb << " padded " << padded << " beta " << beta);
            GemmCase gc = make_case(mnk[0], mnk[1], mnk[2], ta, tb, padded);
            const Vec A = randn(gc.a_size, ++seed), B = randn(gc.b_size, ++seed);
            Vec C0 = randn(gc.c_size, ++seed);
            const int64_t ldc = padded ? gc.s.ldc : gc.s.N;
            const float pad = 7.f;
            for (int64_t i = 0; i < gc.s.M; ++i)
              for (int64_t j = gc.s.N; j < ldc; ++j) C0[size_t(i * ldc + j)] = pad;
            // beta 0 must not read C: a NaN there would survive 0 * NaN.
            if (beta == 0.f)
              for (int64_t i = 0; i < gc.s.M; ++i)
                for (int64_t j = 0; j < gc.s.N; ++j) C0[size_t(i * ldc + j)] = NAN;
            const RefGemm ref = ref_gemm(gc.s, A, B, C0, beta);

            Vec C = C0;
            gemm(gc.s, A.data(), B.data(), C.data(), beta, Precision::kF32);
            EXPECT_TRUE(gemm_close(C, ref, gc.s)) << "gemm";
            EXPECT_TRUE(pad_untouched(C, gc.s.M, gc.s.N, ldc, pad)) << "gemm";

            C = C0;
            gemm_small(gc.s, A.data(), B.data(), C.data(), beta);
            EXPECT_TRUE(gemm_close(C, ref, gc.s)) << "gemm_small";
            EXPECT_TRUE(pad_untouched(C, gc.s.M, gc.s.N, ldc, pad)) << "gemm_small";

            C = C0;
            gemm_naive(gc.s, A.data(), B.data(), C.data(), beta);
            EXPECT_TRUE(gemm_close(C, ref, gc.s)) << "gemm_naive";
            EXPECT_TRUE(pad_untouched(C, gc.s.M, gc.s.N, ldc, pad)) << "gemm_naive";
          }
}

// Plans are cached by shape; a beta other than the one a plan was built with
// must still be honoured (the sum post-op carries beta as its scale).
TEST(Gemm, SameShapeDifferentBeta) {
  GemmCase gc = make_case(23, 19, 31, false, true, false);
  const Vec A = randn(gc.a_size, 1), B = randn(gc.b_size, 2), C0 = randn(gc.c_size, 3);
  for (Precision p : {Precision::kF32, Precision::kBF16})
    for (float beta : {1.f, 0.5f, 2.f, 1.f}) {
      SCOPED_TRACE(::testing::Message() << precision_name(p) << " beta " << beta);
      Vec C = C0;
      gemm(gc.s, A.data(), B.data(), C.data(), beta, p);
      const RefGemm ref = p == Precision::kF32
                              ? ref_gemm(gc.s, A, B, C0, beta)
                              : ref_gemm(gc.s, ref_round_bf16(A), ref_round_bf16(B), C0, beta);
      EXPECT_TRUE(gemm_close(C, ref, gc.s));
    }
}

TEST(Gemm, ZeroInnerDimensionScalesC) {
  GemmShape s{5, 7, 0};
  const Vec C0 = randn(35, 4);
  for (float beta : {0.f, 1.f, 0.5f}) {
    Vec C = C0;
    gemm(s, nullptr, nullptr, C.data(), beta);
    DVec want(35);
    for (int i = 0; i < 35; ++i) want[size_t(i)] = double(beta) * C0[size_t(i)];
    EXPECT_TRUE(close(C, want, 0, 0)) << "beta " << beta;
  }
}

// bf16: the operands are rounded to bf16, products of two bf16 values are
// exact in fp32, so against the double product of the rounded inputs only the
// fp32 accumulation error remains: the same gamma bound as fp32.
TEST(Gemm, Bf16MatchesReferenceOnRoundedInputs) {
  uint32_t seed = 200;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool padded : {false, true})
        for (float beta : {0.f, 1.f}) {
          SCOPED_TRACE(::testing::Message()
                       << "ta " << ta << " tb " << tb << " padded " << padded << " beta " << beta);
          GemmCase gc = make_case(45, 33, 70, ta, tb, padded);
          const Vec A = randn(gc.a_size, ++seed), B = randn(gc.b_size, ++seed);
          const Vec C0 = randn(gc.c_size, ++seed);
          const RefGemm ref = ref_gemm(gc.s, ref_round_bf16(A), ref_round_bf16(B), C0, beta);
          Vec C = C0;
          gemm(gc.s, A.data(), B.data(), C.data(), beta, Precision::kBF16);
          EXPECT_TRUE(gemm_close(C, ref, gc.s)) << "gemm bf16";

          std::vector<uint16_t> a16(A.size()), b16(B.size());
          for (size_t i = 0; i < A.size(); ++i) a16[i] = ref_bf16_bits(A[i]);
          for (size_t i = 0; i < B.size(); ++i) b16[i] = ref_bf16_bits(B[i]);
          C = C0;
          gemm_small_bf16(gc.s, a16.data(), b16.data(), C.data(), beta);
          EXPECT_TRUE(gemm_close(C, ref, gc.s)) << "gemm_small_bf16";
        }
}

// gemm_small is meant for use inside parallel regions: one product per thread.
TEST(Gemm, SmallInsideParallelRegion) {
  const GemmShape s{17, 13, 21, false, true};
  const int kJobs = 6;
  std::vector<Vec> A(kJobs), B(kJobs), C(kJobs);
  for (int j = 0; j < kJobs; ++j) {
    A[size_t(j)] = randn(17 * 21, 300 + j);
    B[size_t(j)] = randn(13 * 21, 400 + j);
    C[size_t(j)] = Vec(17 * 13, NAN);
  }
#pragma omp parallel for num_threads(3)
  for (int j = 0; j < kJobs; ++j)
    gemm_small(s, A[size_t(j)].data(), B[size_t(j)].data(), C[size_t(j)].data(), 0.f);
  for (int j = 0; j < kJobs; ++j)
    EXPECT_TRUE(
        gemm_close(C[size_t(j)], ref_gemm(s, A[size_t(j)], B[size_t(j)], C[size_t(j)], 0.f), s))
        << "job " << j;
}

// Special values: ties both ways, just off ties, NaNs that truncation would
// turn into inf, infinities, the largest float (rounds to inf), signed zeros
// and subnormals. Placed both in the 16-wide vector part and in the scalar tail.
TEST(Bf16, ToBf16RoundsToNearestEvenAndKeepsNaN) {
  const uint32_t special[] = {
      0x3f808000,  // tie, even below -> 0x3f80
      0x3f818000,  // tie, odd below -> 0x3f82
      0xbf808000, 0xbf818000, 0x3f808001, 0x3f807fff, 0x3f80ffff, 0x00808000,  // smallest normals
      0x7f7f8000,                          // tie at the top: rounds to even 0x7f80 = inf
      0x7f7fffff,                          // FLT_MAX -> inf
      0xff7fffff, 0x7f800000, 0xff800000,  // +-inf stay
      0x7f800001, 0x7fc00000, 0xffc00001, 0x7fbfffff,              // NaNs (quiet and signalling)
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00400000,  // zeros, subnormals
      0x477fe000, 0x4b7fff80,                                      // 65504 exact-ish, large values
  };
  const size_t ns = sizeof(special) / sizeof(special[0]);
  const size_t n = 16 * 4 + 7;  // vector blocks and a ragged tail
  for (bool at_end : {false, true}) {
    Vec x = randn(int64_t(n), 7, 3.f);
    for (size_t i = 0; i < ns; ++i) x[at_end ? n - ns + i : i] = float_of(special[i]);
    std::vector<uint16_t> y(n);
    to_bf16(x.data(), y.data(), int64_t(n));
    Vec back(n), rounded = x;
    from_bf16(y.data(), back.data(), int64_t(n));
    round_bf16(rounded.data(), int64_t(n));
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE(::testing::Message() << "i " << i << " x bits 0x" << std::hex << bits_of(x[i]));
      const uint16_t want = ref_bf16_bits(x[i]);
      if (std::isnan(x[i])) {
        EXPECT_EQ(y[i] & 0x7f80, 0x7f80);
        EXPECT_NE(y[i] & 0x007f, 0) << "NaN became inf";
        EXPECT_EQ(y[i] & 0x8000, want & 0x8000);
        EXPECT_TRUE(std::isnan(back[i]));
        EXPECT_TRUE(std::isnan(rounded[i]));
      } else {
        EXPECT_EQ(y[i], want);
        EXPECT_EQ(bits_of(back[i]), uint32_t(want) << 16);  // from_bf16 is exact
        EXPECT_EQ(bits_of(rounded[i]), uint32_t(want) << 16);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// RMSNorm (SPEC.md): y = x / sqrt(mean(x^2) + 1e-6) * w.

DVec ref_rmsnorm(const DVec& x, const DVec& w, int64_t N, int64_t D, DVec* rstd = nullptr) {
  DVec y(size_t(N * D));
  if (rstd) rstd->assign(size_t(N), 0);
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0;
    for (int64_t d = 0; d < D; ++d) ss += x[size_t(n * D + d)] * x[size_t(n * D + d)];
    const double r = 1.0 / std::sqrt(ss / double(D) + 1e-6);
    if (rstd) (*rstd)[size_t(n)] = r;
    for (int64_t d = 0; d < D; ++d) y[size_t(n * D + d)] = x[size_t(n * D + d)] * r * w[size_t(d)];
  }
  return y;
}

TEST(RmsNorm, ForwardMatchesReference) {
  const int64_t N = 13, D = 70;
  Vec x = randn(N * D, 11, 2.f), w = randn(D, 12);
  for (int64_t d = 0; d < D; ++d) x[size_t(4 * D + d)] = 0.f;     // rstd = 1/sqrt(eps) = 1000
  for (int64_t d = 0; d < D; ++d) x[size_t(5 * D + d)] *= 1e-3f;  // eps matters here
  DVec rstd_ref;
  const DVec y_ref = ref_rmsnorm(to_d(x), to_d(w), N, D, &rstd_ref);
  for_threads([&] {
    Vec y(size_t(N * D), kGarbage), rstd(size_t(N), kGarbage);
    rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), N, D);
    EXPECT_TRUE(close(y, y_ref, 1e-6, 1e-5));
    EXPECT_TRUE(close(rstd, rstd_ref, 0, 1e-5));
  });
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  const int64_t N = 13, D = 70;
  const Vec x = randn(N * D, 21, 2.f), w = randn(D, 22), R = randn(N * D, 23);
  DVec xd = to_d(x), wd = to_d(w);
  const DVec Rd = to_d(R);
  auto loss = [&] { return dot(ref_rmsnorm(xd, wd, N, D), Rd); };
  const DVec gx = fd_grad(xd, loss), gw = fd_grad(wd, loss);
  const Vec dx0 = randn(N * D, 24), dw0 = randn(D, 25);  // both ACCUMULATED
  for_threads([&] {
    Vec y(size_t(N * D)), rstd(static_cast<size_t>(N)), dx = dx0, dw = dw0;
    rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), N, D);
    rmsnorm_backward(R.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, D);
    EXPECT_TRUE(close(dx, plus(dx0, gx), kGradAtol, kGradRtol)) << "dx";
    EXPECT_TRUE(close(dw, plus(dw0, gw), kGradAtol, kGradRtol)) << "dw";
  });
}

// ---------------------------------------------------------------------------
// Activations (SPEC.md "FFN").

double ref_act(Activation act, double x) {
  switch (act) {
    case Activation::kGelu:
      return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::kFastGelu:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kRelu:
      return x > 0 ? x : 0;
    default:
      return NAN;
  }
}

// h: [N, F], or [N, 2F] for swiglu with [a | gate] per row: a * silu(gate).
DVec ref_activation(Activation act, const DVec& h, int64_t N, int64_t F) {
  DVec a(size_t(N * F));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < F; ++f) {
      if (act == Activation::kSwiglu) {
        const double av = h[size_t(n * 2 * F + f)], gv = h[size_t(n * 2 * F + F + f)];
        a[size_t(n * F + f)] = av * gv / (1 + std::exp(-gv));
      } else {
        a[size_t(n * F + f)] = ref_act(act, h[size_t(n * F + f)]);
      }
    }
  return a;
}

// Inputs spread over [-9, 9] (the tails of the gelus) and kept off relu's kink.
Vec activation_input(int64_t n, uint32_t seed) {
  Vec h = randn(n, seed, 3.f);
  for (auto& v : h)
    if (std::fabs(v) < 1e-2f) v += 0.05f;
  return h;
}

const Activation kAllActs[] = {Activation::kGelu, Activation::kFastGelu, Activation::kRelu,
                               Activation::kSwiglu};

const char* act_label(Activation a) {
  switch (a) {
    case Activation::kGelu:
      return "gelu";
    case Activation::kFastGelu:
      return "fastgelu";
    case Activation::kRelu:
      return "relu";
    default:
      return "swiglu";
  }
}

TEST(Activations, ForwardMatchesReference) {
  const int64_t N = 13, F = 37;
  for (Activation act : kAllActs) {
    SCOPED_TRACE(act_label(act));
    const int64_t W = act == Activation::kSwiglu ? 2 * F : F;
    const Vec h = activation_input(N * W, 31);
    const DVec want = ref_activation(act, to_d(h), N, F);
    for_threads([&] {
      Vec a(size_t(N * F), kGarbage);
      activation_forward(act, h.data(), a.data(), N, F);
      // fp32 erf/tanh/exp are within a few ulp; 1 + erf(x) cancels for x << 0,
      // leaving an absolute error ~ |x| * 6e-8.
      EXPECT_TRUE(close(a, want, 2e-6, 1e-5));
    });
  }
}

TEST(Activations, BackwardMatchesFiniteDifferences) {
  const int64_t N = 13, F = 37;
  for (Activation act : kAllActs) {
    SCOPED_TRACE(act_label(act));
    const int64_t W = act == Activation::kSwiglu ? 2 * F : F;
    const Vec h = activation_input(N * W, 41), R = randn(N * F, 42);
    DVec hd = to_d(h);
    const DVec Rd = to_d(R);
    const DVec gh = fd_grad(hd, [&] { return dot(ref_activation(act, hd, N, F), Rd); });
    for_threads([&] {
      Vec dh(size_t(N * W), kGarbage);  // WRITTEN
      activation_backward(act, h.data(), R.data(), dh.data(), N, F);
      EXPECT_TRUE(close(dh, gh, kGradAtol, kGradRtol));
    });
  }
}

// gelu (erf form) and its derivative over x in [-15, 15] against float64.
// The vectorised Phi goes through erfc on both sides (no cancellation in the
// negative tail, unlike 1 + erf) with x^2 / 2 split exactly, so gelu is good
// to NR's erfcc fit (1.2e-7) plus two float exps (2 ulp each): 1e-6 relative
// is asked (seen: 3.2e-7, 6.4e-7 below x = -12). The derivative Phi + x phi
// cancels near its zero (x = -0.75), so its error is bounded by 1e-6 of
// |Phi| + |x phi|. Below 1.2e-38 (subnormal results) only "tiny" is asked.
TEST(Activations, GeluAccurateOverTheWholeRange) {
  Vec h;
  for (int i = -1500; i <= 1500; ++i) h.push_back(float(i) * 0.01f);
  for (float x : {0.f, -0.f, 1e-30f, -1e-30f, 1e-7f, -1e-7f}) h.push_back(x);
  const int64_t n = int64_t(h.size());
  Vec a(h.size()), dh(h.size()), ones(h.size(), 1.f);
  activation_forward(Activation::kGelu, h.data(), a.data(), 1, n);
  activation_backward(Activation::kGelu, h.data(), ones.data(), dh.data(), 1, n);
  double worst_a = 0, worst_d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = h[size_t(i)];
    const double phi = 0.5 * std::erfc(-x / std::sqrt(2.0));
    const double xdens = x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    const double want = x * phi, dwant = phi + xdens, dmag = phi + std::fabs(xdens);
    const double got = a[size_t(i)], dgot = dh[size_t(i)];
    if (std::fabs(want) < 1.2e-38) {
      EXPECT_LT(std::fabs(got), 1.2e-38) << "gelu(" << x << ")";
    } else {
      EXPECT_NEAR(got, want, 1e-6 * std::fabs(want)) << "gelu(" << x << ")";
      worst_a = std::max(worst_a, std::fabs(got - want) / std::fabs(want));
    }
    if (dmag < 1.2e-38) {
      EXPECT_LT(std::fabs(dgot), 1.2e-38) << "gelu'(" << x << ")";
    } else {
      EXPECT_NEAR(dgot, dwant, 1e-6 * dmag) << "gelu'(" << x << ")";
      worst_d = std::max(worst_d, std::fabs(dgot - dwant) / dmag);
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g / %.3g", worst_a, worst_d);
  RecordProperty("worst_rel_err_gelu_and_grad", buf);
  // Far tails (the exact split of x^2 once overflowed to NaN past ~6.5e4):
  // gelu(x) = x and gelu' = 1 for large x, -0 / 0 for large -x; inf and NaN.
  const float inf = std::numeric_limits<float>::infinity();
  Vec big = {20.f, 30.f, 65552.3f, 1e5f, 1e10f, 3e38f, -20.f, -30.f, -65552.3f, -1e5f, -1e10f,
             -3e38f, inf, std::nanf("")};
  const int64_t m = int64_t(big.size());
  Vec ab(big.size()), db(big.size()), ob(big.size(), 1.f);
  activation_forward(Activation::kGelu, big.data(), ab.data(), 1, m);
  activation_backward(Activation::kGelu, big.data(), ob.data(), db.data(), 1, m);
  for (int64_t i = 0; i + 2 < m; ++i) {
    const float x = big[size_t(i)];
    EXPECT_EQ(ab[size_t(i)], x > 0 ? x : 0.f) << "gelu(" << x << ")";
    EXPECT_EQ(db[size_t(i)], x > 0 ? 1.f : 0.f) << "gelu'(" << x << ")";
  }
  EXPECT_EQ(ab[size_t(m - 2)], inf);
  EXPECT_EQ(db[size_t(m - 2)], 1.f);
  EXPECT_TRUE(std::isnan(ab[size_t(m - 1)]));
  EXPECT_TRUE(std::isnan(db[size_t(m - 1)]));
}

TEST(Activations, Sigmoid) {
  for (float x : {-30.f, -5.f, -0.5f, 0.f, 0.25f, 3.f, 30.f}) {
    const double want = 1.0 / (1.0 + std::exp(-double(x)));
    EXPECT_NEAR(sigmoidf(x), want, 1e-7 + 1e-6 * want) << x;
  }
}

// ---------------------------------------------------------------------------
// RoPE (SPEC.md "Positional encodings"): rotate-half; pair (x_i, x_{i+P/2})
// rotates by theta = pos * base^(-2i/P): x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.

double ref_theta(int64_t pos, int64_t i, int64_t P, double base) {
  return double(pos) * std::pow(base, -2.0 * double(i) / double(P));
}

// x: [B*T, ld] rows of nheads heads of width P; pos = (t0 + t) / div.
DVec ref_rope(const DVec& x, int64_t B, int64_t T, int64_t t0, int64_t nheads, int64_t P,
              int64_t ld, int64_t div, double base) {
  DVec y = x;
  const int64_t half = P / 2;
  for (int64_t n = 0; n < B * T; ++n) {
    const int64_t pos = (t0 + n % T) / div;
    for (int64_t h = 0; h < nheads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double th = ref_theta(pos, i, P, base);
        const size_t i1 = size_t(n * ld + h * P + i), i2 = i1 + size_t(half);
        y[i1] = x[i1] * std::cos(th) - x[i2] * std::sin(th);
        y[i2] = x[i2] * std::cos(th) + x[i1] * std::sin(th);
      }
  }
  return y;
}

// The table computes inv_freq and the angle in fp32 (as the authors' tables
// are built): the angle carries a relative error of a few ulp, ~3e-7.
double rope_atol(double angle) { return 1e-6 + 3e-7 * angle; }

TEST(Rope, TableMatchesInvFreqFormula) {
  const int64_t P = 16, max_pos = 300;
  RopeTable tab;
  tab.build(P, max_pos, 10000.0);
  ASSERT_EQ(tab.cos.size(), size_t(max_pos * P / 2));
  for (int64_t pos = 0; pos < max_pos; ++pos)
    for (int64_t i = 0; i < P / 2; ++i) {
      const double th = ref_theta(pos, i, P, 10000.0);
      const size_t k = size_t(pos * P / 2 + i);
      ASSERT_NEAR(tab.cos[k], std::cos(th), rope_atol(th)) << "pos " << pos << " i " << i;
      ASSERT_NEAR(tab.sin[k], std::sin(th), rope_atol(th)) << "pos " << pos << " i " << i;
    }
  tab.ensure(P, 100, 10000.0);  // smaller: no rebuild needed, the table must stay valid
  EXPECT_GE(tab.max_pos, max_pos);
  tab.ensure(P, 500, 500.0);  // new base and length: rebuilt
  EXPECT_GE(tab.max_pos, 500);
  const double th = ref_theta(499, 3, P, 500.0);
  EXPECT_NEAR(tab.sin[size_t(499 * P / 2 + 3)], std::sin(th), rope_atol(th));
}

struct RopeCase {
  int64_t B, T, t0, div;
};
// RoPE (div 1) and chunk-index RoPE (div = L = 4), with and without a t0 offset.
const RopeCase kRopeCases[] = {
    {2, 11, 0, 1}, {2, 11, 5, 1}, {3, 10, 0, 4}, {1, 13, 6, 4}, {2, 7, 0, 100}};

TEST(Rope, ForwardMatchesRotateHalfFormula) {
  const int64_t P = 8, H = 3, ld = H * P + 5;
  const double base = 10000.0;
  RopeTable tab;
  tab.build(P, 64, base);
  for (const RopeCase& rc : kRopeCases) {
    SCOPED_TRACE(::testing::Message()
                 << "B " << rc.B << " T " << rc.T << " t0 " << rc.t0 << " div " << rc.div);
    const int64_t N = rc.B * rc.T;
    const Vec x0 = randn(N * ld, 51);
    const DVec want = ref_rope(to_d(x0), rc.B, rc.T, rc.t0, H, P, ld, rc.div, base);
    for_threads([&] {
      Vec x = x0;
      rope_apply(tab, x.data(), rc.B, rc.T, rc.t0, H, ld, rc.div, +1);
      // |x| <= ~4 and the largest angle is (t0 + T) / div <= 24 rad.
      EXPECT_TRUE(close(x, want, 4 * rope_atol(24.0), 0));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = H * P; c < ld; ++c)
          ASSERT_EQ(x[size_t(n * ld + c)], x0[size_t(n * ld + c)]) << "pad column touched";
    });
  }
}

// With div = L every token of a chunk gets the same rotation, and chunk c the
// rotation of position c: check against RoPE on the chunk index directly.
TEST(Rope, ChunkIndexVariantUsesTDivL) {
  const int64_t P = 8, T = 13, L = 4;
  RopeTable tab;
  tab.build(P, 64, 10000.0);
  const Vec row = randn(P, 61);
  Vec x(size_t(T * P));
  for (int64_t t = 0; t < T; ++t) std::copy(row.begin(), row.end(), x.begin() + t * P);
  rope_apply(tab, x.data(), 1, T, 0, 1, P, L, +1);
  for (int64_t t = 0; t < T; ++t) {
    Vec single = row;  // one token at position t / L, plain RoPE
    rope_apply(tab, single.data(), 1, 1, t / L, 1, P, 1, +1);
    for (int64_t i = 0; i < P; ++i) EXPECT_EQ(x[size_t(t * P + i)], single[size_t(i)]) << t;
  }
}

TEST(Rope, InverseUndoesForward) {
  const int64_t P = 16, H = 2, ld = H * P + 3;
  RopeTable tab;
  tab.build(P, 64, 10000.0);
  for (const RopeCase& rc : kRopeCases) {
    const int64_t N = rc.B * rc.T;
    const Vec x0 = randn(N * ld, 71);
    Vec x = x0;
    rope_apply(tab, x.data(), rc.B, rc.T, rc.t0, H, ld, rc.div, +1);
    rope_apply(tab, x.data(), rc.B, rc.T, rc.t0, H, ld, rc.div, -1);
    // cos^2 + sin^2 = 1 to ~1 ulp in the table; two rotations round twice.
    EXPECT_TRUE(close(x, to_d(x0), 1e-6, 1e-6)) << "t0 " << rc.t0 << " div " << rc.div;
    rope_apply(tab, x.data(), rc.B, rc.T, rc.t0, H, ld, rc.div, -1);
    rope_apply(tab, x.data(), rc.B, rc.T, rc.t0, H, ld, rc.div, +1);
    EXPECT_TRUE(close(x, to_d(x0), 1e-6, 1e-6)) << "t0 " << rc.t0 << " div " << rc.div;
  }
}

// Backward of the rotation = sign -1 applied to the output gradient.
TEST(Rope, BackwardIsInverseRotation) {
  const int64_t P = 8, H = 3, ld = H * P + 5;
  RopeTable tab;
  tab.build(P, 64, 10000.0);
  for (const RopeCase& rc : kRopeCases) {
    SCOPED_TRACE(::testing::Message() << "t0 " << rc.t0 << " div " << rc.div);
    const int64_t N = rc.B * rc.T;
    DVec xd = to_d(randn(N * ld, 81));
    Vec R = randn(N * ld, 82);
    for (int64_t n = 0; n < N; ++n)  // pad columns are not part of the rotation
      for (int64_t c = H * P; c < ld; ++c) R[size_t(n * ld + c)] = 0.f;
    const DVec Rd = to_d(R);
    const DVec g = fd_grad(
        xd, [&] { return dot(ref_rope(xd, rc.B, rc.T, rc.t0, H, P, ld, rc.div, 10000.0), Rd); });
    Vec dx = R;
    rope_apply(tab, dx.data(), rc.B, rc.T, rc.t0, H, ld, rc.div, -1);
    EXPECT_TRUE(close(dx, g, 4 * rope_atol(24.0) + kGradAtol, kGradRtol));
  }
}

// ---------------------------------------------------------------------------
// Chunked gated scan (SPEC.md "rat"/"rnn"): h_l = g_l h_{l-1} + (1 - g_l) x_l,
// h = 0 before each chunk of L tokens.

DVec ref_scan(const DVec& g, const DVec& x, int64_t B, int64_t T, int64_t L, int64_t D) {
  DVec h(size_t(B * T * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      double s = 0;
      for (int64_t t = 0; t < T; ++t) {
        if (t % L == 0) s = 0;
        const size_t i = size_t((b * T + t) * D + d);
        s = g[i] * s + (1 - g[i]) * x[i];
        h[i] = s;
      }
    }
  return h;
}

struct ScanCase {
  int64_t B, T, L, D;
};
const ScanCase kScanCases[] = {
    {2, 37, 8, 70},     // ragged last chunk, a 64-block plus a 6-wide block
    {1, 9, 1, 5},       // L = 1: every token its own chunk
    {3, 20, 20, 64},    // L = T, exactly one column block
    {2, 23, 100, 130},  // L > T (the rnn case), three column blocks
    {1, 16, 4, 129},    // T a multiple of L
};

TEST(Scan, ChunkedForwardMatchesReference) {
  for (const ScanCase& sc : kScanCases) {
    SCOPED_TRACE(::testing::Message()
                 << "B " << sc.B << " T " << sc.T << " L " << sc.L << " D " << sc.D);
    const int64_t N = sc.B * sc.T, D = sc.D;
    const Vec g = uniform(N * D, 91, 0.05f, 0.95f), x = randn(N * D, 92);
    const DVec want = ref_scan(to_d(g), to_d(x), sc.B, sc.T, sc.L, D);
    const int64_t ld_g = D + 3, ld_x = D + 7, ld_h = D + 1;
    const Vec gs = to_strided(g, N, D, ld_g, 0.5f), xs = to_strided(x, N, D, ld_x, 0.f);
    for_threads([&] {
      Vec hs(size_t(N * ld_h), kGarbage);
      chunk_scan_forward(gs.data(), ld_g, xs.data(), ld_x, hs.data(), ld_h, sc.B, sc.T, sc.L, D);
      // Each h is a convex combination: fp32 error <= ~2 ulp per step of |x|max.
      EXPECT_TRUE(close(from_strided(hs, N, D, ld_h), want, 2e-6, 1e-5));
      EXPECT_TRUE(pad_untouched(hs, N, D, ld_h, kGarbage));
      // In place (h aliases x, as the header allows).
      Vec inplace = xs;
      chunk_scan_forward(gs.data(), ld_g, inplace.data(), ld_x, inplace.data(), ld_x, sc.B, sc.T,
                         sc.L, D);
      EXPECT_TRUE(close(from_strided(inplace, N, D, ld_x), want, 2e-6, 1e-5)) << "in place";
    });
  }
}

// STYLE.md: the chunked path and the per-token (decoding) path share one state
// definition. Decode token by token with scan_step, resetting the state at
// every chunk start, and compare with the chunked forward.
TEST(Scan, ChunkedForwardAgreesWithScanStep) {
  for (const ScanCase& sc : kScanCases) {
    SCOPED_TRACE(::testing::Message() << "T " << sc.T << " L " << sc.L << " D " << sc.D);
    const int64_t N = sc.B * sc.T, D = sc.D;
    const Vec g = uniform(N * D, 93, 0.0f, 1.0f), x = randn(N * D, 94);
    Vec chunked(size_t(N * D));
    chunk_scan_forward(g.data(), D, x.data(), D, chunked.data(), D, sc.B, sc.T, sc.L, D);
    DVec stepped(size_t(N * D));
    for (int64_t b = 0; b < sc.B; ++b) {
      Vec state(size_t(D), 0.f);
      for (int64_t t = 0; t < sc.T; ++t) {
        if (t % sc.L == 0) std::fill(state.begin(), state.end(), 0.f);
        const int64_t n = b * sc.T + t;
        scan_step(g.data() + n * D, x.data() + n * D, state.data(), D);
        std::copy(state.begin(), state.end(), stepped.begin() + n * D);
      }
    }
    // Same fp32 operations; only FMA contraction may differ between the loops.
    EXPECT_TRUE(close(chunked, stepped, 1e-6, 1e-6));
  }
}

TEST(Scan, BackwardMatchesFiniteDifferences) {
  for (const ScanCase& sc : kScanCases) {
    SCOPED_TRACE(::testing::Message()
                 << "B " << sc.B << " T " << sc.T << " L " << sc.L << " D " << sc.D);
    const int64_t N = sc.B * sc.T, D = sc.D;
    const Vec g = uniform(N * D, 95, 0.05f, 0.95f), x = randn(N * D, 96), R = randn(N * D, 97);
    DVec gd = to_d(g), xd = to_d(x);
    const DVec Rd = to_d(R);
    auto loss = [&] { return dot(ref_scan(gd, xd, sc.B, sc.T, sc.L, D), Rd); };
    const DVec want_dg = fd_grad(gd, loss), want_dx = fd_grad(xd, loss);
    // Distinct strides for every operand, as the mixers use them: g and x are
    // views into the projection, the gradients compact buffers or other views.
    const int64_t ld_g = D + 3, ld_x = D + 7, ld_h = D + 1, ld_dx = D + 2, ld_dg = D + 5;
    const Vec gs = to_strided(g, N, D, ld_g, 0.5f), xs = to_strided(x, N, D, ld_x, 0.f);
    Vec hs(size_t(N * ld_h));
    chunk_scan_forward(gs.data(), ld_g, xs.data(), ld_x, hs.data(), ld_h, sc.B, sc.T, sc.L, D);
    const Vec dhs = to_strided(R, N, D, ld_h, kGarbage);
    const Vec dg0 = randn(N * D, 98);  // dg is ACCUMULATED
    for_threads([&] {
      Vec dx(size_t(N * ld_dx), kGarbage);  // dx is WRITTEN
      Vec dg = to_strided(dg0, N, D, ld_dg, kGarbage);
      chunk_scan_backward(gs.data(), ld_g, xs.data(), ld_x, hs.data(), dhs.data(), ld_h, dx.data(),
                          ld_dx, dg.data(), ld_dg, sc.B, sc.T, sc.L, D);
      EXPECT_TRUE(close(from_strided(dx, N, D, ld_dx), want_dx, kGradAtol, kGradRtol)) << "dx";
      EXPECT_TRUE(close(from_strided(dg, N, D, ld_dg), plus(dg0, want_dg), kGradAtol, kGradRtol))
          << "dg";
      EXPECT_TRUE(pad_untouched(dx, N, D, ld_dx, kGarbage)) << "dx";
      EXPECT_TRUE(pad_untouched(dg, N, D, ld_dg, kGarbage)) << "dg";
    });
  }
}

// ---------------------------------------------------------------------------
// LM head + cross-entropy (SPEC.md): logits = hf W^T, loss = sum over rows
// with label != ignore_index of logsumexp(logits) - logits[label].

constexpr int64_t kIgnore = -100;

struct RefCe {
  double loss_sum = 0;
  int64_t count = 0;
  DVec dhf, dW;  // of scale * loss_sum, when asked for
};

RefCe ref_ce(const DVec& hf, const DVec& W, const std::vector<int32_t>& labels, int64_t N,
             int64_t D, int64_t V, double scale, bool grads) {
  RefCe r;
  if (grads) r.dhf.assign(size_t(N * D), 0), r.dW.assign(size_t(V * D), 0);
  DVec logit(static_cast<size_t>(V));
  for (int64_t n = 0; n < N; ++n) {
    if (labels[size_t(n)] == kIgnore) continue;
    double mx = -INFINITY;
    for (int64_t v = 0; v < V; ++v) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += hf[size_t(n * D + d)] * W[size_t(v * D + d)];
      logit[size_t(v)] = s;
      mx = std::max(mx, s);
    }
    double se = 0;
    for (int64_t v = 0; v < V; ++v) se += std::exp(logit[size_t(v)] - mx);
    const double lse = mx + std::log(se);
    const int64_t y = labels[size_t(n)];
    r.loss_sum += lse - logit[size_t(y)];
    ++r.count;
    if (!grads) continue;
    for (int64_t v = 0; v < V; ++v) {
      const double dl = scale * (std::exp(logit[size_t(v)] - lse) - (v == y ? 1.0 : 0.0));
      for (int64_t d = 0; d < D; ++d) {
        r.dhf[size_t(n * D + d)] += dl * W[size_t(v * D + d)];
        r.dW[size_t(v * D + d)] += dl * hf[size_t(n * D + d)];
      }
    }
  }
  return r;
}

std::vector<int32_t> random_labels(int64_t N, int64_t V, uint32_t seed,
                                   std::initializer_list<int64_t> ignored) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(0, int32_t(V - 1));
  std::vector<int32_t> labels(static_cast<size_t>(N));
  for (auto& y : labels) y = d(rng);
  for (int64_t n : ignored) labels[size_t(n)] = int32_t(kIgnore);
  return labels;
}

TEST(CrossEntropy, SmallMatchesReferenceAndFiniteDifferences) {
  const int64_t N = 13, D = 10, V = 37;
  const Vec hf = randn(N * D, 101), W = randn(V * D, 102, 0.7f);
  const auto labels = random_labels(N, V, 103, {0, 6, 12});
  const RefCe ref = ref_ce(to_d(hf), to_d(W), labels, N, D, V, 0, false);
  ASSERT_EQ(ref.count, 10);
  const float scale = 1.f / float(ref.count);
  DVec hd = to_d(hf), wd = to_d(W);
  auto loss = [&] { return scale * ref_ce(hd, wd, labels, N, D, V, 0, false).loss_sum; };
  const DVec g_hf = fd_grad(hd, loss), g_W = fd_grad(wd, loss);
  const Vec dW0 = randn(V * D, 104, 0.01f);  // dW is ACCUMULATED
  for_threads([&] {
    Vec dhf(size_t(N * D), kGarbage), dW = dW0;  // dhf is WRITTEN
    CeResult res = lm_head_cross_entropy(hf.data(), W.data(), labels.data(), N, D, V, kIgnore,
                                         Precision::kF32, scale, dhf.data(), dW.data());
    EXPECT_EQ(res.count, ref.count);
    EXPECT_NEAR(res.loss_sum, ref.loss_sum, 1e-5 * ref.loss_sum);
    EXPECT_TRUE(close(dhf, g_hf, kGradAtol, kGradRtol)) << "dhf";
    EXPECT_TRUE(close(dW, plus(dW0, g_W), kGradAtol, kGradRtol)) << "dW";
    // Forward only: same loss, gradients untouched.
    Vec dW_fwd = dW0;
    CeResult fwd = lm_head_cross_entropy(hf.data(), W.data(), labels.data(), N, D, V, kIgnore,
                                         Precision::kF32, scale, nullptr, dW_fwd.data());
    EXPECT_EQ(fwd.count, ref.count);
    EXPECT_NEAR(fwd.loss_sum, ref.loss_sum, 1e-5 * ref.loss_sum);
    EXPECT_EQ(dW_fwd, dW0);
  });
}

// V = 50000 with N = 200: 8M / 50000 = 167 rows per logits block, so two
// blocks, the second ragged; ignored rows sit on both sides of the boundary.
TEST(CrossEntropy, LargeVocabularyRunsSeveralRowBlocks) {
  const int64_t N = 200, D = 24, V = 50000;
  const Vec hf = randn(N * D, 111), W = randn(V * D, 112, 0.5f);
  const auto labels = random_labels(N, V, 113, {0, 57, 166, 167, 199});
  const float scale = 1.f;  // sum, so that dW rows stand well above the prefill's rounding
  const DVec hd = to_d(hf), wd = to_d(W);
  const RefCe ref = ref_ce(hd, wd, labels, N, D, V, scale, true);
  ASSERT_EQ(ref.count, N - 5);
  const Vec dW0 = randn(V * D, 114, 1e-3f);
  Vec dhf(size_t(N * D), kGarbage), dW = dW0;
  CeResult res = lm_head_cross_entropy(hf.data(), W.data(), labels.data(), N, D, V, kIgnore,
                                       Precision::kF32, scale, dhf.data(), dW.data());
  EXPECT_EQ(res.count, ref.count);
  // Logits carry fp32 error ~ D u |h||w|; the loss sums ~200 terms of size ~10.
  EXPECT_NEAR(res.loss_sum, ref.loss_sum, 1e-5 * ref.loss_sum);
  EXPECT_TRUE(close(dhf, ref.dhf, kGradAtol, kGradRtol)) << "dhf";
  // dW entries sum at most 200 products; 1e-6 is ~100x their fp32 rounding.
  EXPECT_TRUE(close(dW, plus(dW0, ref.dW), 1e-6, kGradRtol)) << "dW";
  for (int64_t n : {0, 57, 166, 167, 199})
    for (int64_t d = 0; d < D; ++d) EXPECT_EQ(dhf[size_t(n * D + d)], 0.f) << "ignored row " << n;

  // Finite differences on a few entries of each (the analytic reference above
  // is itself a formula, so tie it to the loss): perturbing hf[n, d] changes
  // only row n, perturbing W[v, d] changes column v of every row.
  std::vector<int32_t> one(1);
  for (int64_t n : {3, 150, 168, 198}) {
    DVec row(hd.begin() + n * D, hd.begin() + (n + 1) * D);
    one[0] = labels[size_t(n)];
    const DVec g = fd_grad(row, [&] { return ref_ce(row, wd, one, 1, D, V, 0, false).loss_sum; });
    for (int64_t d = 0; d < D; ++d)
      EXPECT_NEAR(dhf[size_t(n * D + d)], g[size_t(d)],
                  kGradAtol + kGradRtol * std::fabs(g[size_t(d)]))
          << "dhf[" << n << ", " << d << "]";
  }
  DVec logits(size_t(N * V));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t u = 0; u < V; ++u) {
      double l = 0;
      for (int64_t k = 0; k < D; ++k) l += hd[size_t(n * D + k)] * wd[size_t(u * D + k)];
      logits[size_t(n * V + u)] = l;
    }
  for (int64_t v : {int64_t(labels[3]), int64_t(4242)})
    for (int64_t d : {2, 19}) {
      // W[v, d] += e moves only logit v of each row n, by e * hf[n, d].
      auto loss_at = [&](double e) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) {
          if (labels[size_t(n)] == kIgnore) continue;
          const double* l = logits.data() + n * V;
          auto lv = [&](int64_t u) { return l[u] + (u == v ? e * hd[size_t(n * D + d)] : 0.0); };
          double mx = -INFINITY, se = 0;
          for (int64_t u = 0; u < V; ++u) mx = std::max(mx, lv(u));
          for (int64_t u = 0; u < V; ++u) se += std::exp(lv(u) - mx);
          s += mx + std::log(se) - lv(labels[size_t(n)]);
        }
        return s;
      };
      // eps 1e-4 in double: truncation ~1e-8 |g|, cancellation ~1e-16 * 2000 / 1e-4.
      const double g = (loss_at(1e-4) - loss_at(-1e-4)) / 2e-4;
      const double got = double(dW[size_t(v * D + d)]) - double(dW0[size_t(v * D + d)]);
      EXPECT_NEAR(got, g, 1e-5 + kGradRtol * std::fabs(g)) << "dW[" << v << ", " << d << "]";
    }
}

// bf16 head: the logits of bf16-rounded hf and W are exact products summed in
// fp32; the gradient logits are rounded to bf16 before the two backward GEMMs
// (relative error 2^-9 each), so gradients get a 1e-2 relative-to-max bound.
TEST(CrossEntropy, Bf16MatchesReferenceOnRoundedInputs) {
  const int64_t N = 21, D = 40, V = 300;
  const Vec hf = randn(N * D, 121), W = randn(V * D, 122, 0.3f);
  const auto labels = random_labels(N, V, 123, {4});
  const RefCe ref =
      ref_ce(to_d(ref_round_bf16(hf)), to_d(ref_round_bf16(W)), labels, N, D, V, 1.0, true);
  Vec dhf(size_t(N * D), kGarbage), dW(size_t(V * D), 0.f);
  CeResult res = lm_head_cross_entropy(hf.data(), W.data(), labels.data(), N, D, V, kIgnore,
                                       Precision::kBF16, 1.f, dhf.data(), dW.data());
  EXPECT_EQ(res.count, ref.count);
  EXPECT_NEAR(res.loss_sum, ref.loss_sum, 1e-5 * ref.loss_sum);
  auto maxabs = [](const DVec& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
  };
  EXPECT_TRUE(close(dhf, ref.dhf, 1e-2 * maxabs(ref.dhf), 0)) << "dhf";
  EXPECT_TRUE(close(dW, ref.dW, 1e-2 * maxabs(ref.dW), 0)) << "dW";
}

TEST(CrossEntropy, LogitsMatchReference) {
  const int64_t N = 9, D = 33, V = 70;
  const Vec hf = randn(N * D, 131), W = randn(V * D, 132);
  Vec logits(size_t(N * V), kGarbage);
  lm_head_logits(hf.data(), W.data(), logits.data(), N, D, V, Precision::kF32);
  const GemmShape s{N, V, D, false, true};
  EXPECT_TRUE(gemm_close(logits, ref_gemm(s, hf, W, Vec(size_t(N * V), 0.f), 0.f), s));
}

// ---------------------------------------------------------------------------
// Embedding (SPEC.md: x = wte[ids]).

TEST(Embedding, ForwardGathersRows) {
  const int64_t V = 11, D = 7, N = 23;
  const Vec wte = randn(V * D, 141);
  const auto ids = random_labels(N, V, 142, {});
  for_threads([&] {
    Vec x(size_t(N * D), kGarbage);
    embedding_forward(ids.data(), wte.data(), x.data(), N, D);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d)
        ASSERT_EQ(x[size_t(n * D + d)], wte[size_t(ids[size_t(n)] * D + d)]) << n << ", " << d;
  });
}

// Repeated ids must add up; D = 2 leaves the third thread with no columns.
TEST(Embedding, BackwardMatchesFiniteDifferences) {
  for (int64_t D : {2, 70}) {
    SCOPED_TRACE(::testing::Message() << "D " << D);
    const int64_t V = 11, N = 23;
    const auto ids = random_labels(N, V, 151, {});
    const Vec R = randn(N * D, 152);
    DVec wd = to_d(randn(V * D, 153));
    const DVec Rd = to_d(R);
    auto loss = [&] {
      double s = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d)
          s += wd[size_t(ids[size_t(n)] * D + d)] * Rd[size_t(n * D + d)];
      return s;
    };
    const DVec g = fd_grad(wd, loss);
    const Vec dw0 = randn(V * D, 154);  // ACCUMULATED
    for_threads([&] {
      Vec dw = dw0;
      embedding_backward(ids.data(), R.data(), dw.data(), N, D);
      EXPECT_TRUE(close(dw, plus(dw0, g), kGradAtol, kGradRtol));
    });
  }
}

// ---------------------------------------------------------------------------
// Linear (SPEC.md: weights [out, in]): y = beta y + x W^T + b.

DVec ref_linear(const DVec& x, int64_t ldx, const DVec& W, const DVec* b, int64_t N, int64_t in,
                int64_t out) {
  DVec y(size_t(N * out));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? (*b)[size_t(o)] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += x[size_t(n * ldx + i)] * W[size_t(o * in + i)];
      y[size_t(n * out + o)] = s;
    }
  return y;
}

TEST(Linear, ForwardMatchesReference) {
  const int64_t N = 13, in = 37, out = 29, ldx = in + 3, ldy = out + 5;
  const Vec x = randn(N * ldx, 161), W = randn(out * in, 162), b = randn(out, 163);
  const Vec y0 = randn(N * ldy, 164);
  const DVec bd = to_d(b);
  for (bool bias : {false, true})
    for (float beta : {0.f, 1.f})
      for (Precision p : {Precision::kF32, Precision::kBF16}) {
        SCOPED_TRACE(::testing::Message()
                     << "bias " << bias << " beta " << beta << " " << precision_name(p));
        const bool bf = p == Precision::kBF16;
        DVec want = ref_linear(to_d(bf ? ref_round_bf16(x) : x), ldx,
                               to_d(bf ? ref_round_bf16(W) : W), bias ? &bd : nullptr, N, in, out);
        DVec tol(want.size());
        for (int64_t n = 0; n < N; ++n)
          for (int64_t o = 0; o < out; ++o) {
            double mag =
                std::fabs(beta * y0[size_t(n * ldy + o)]) + (bias ? std::fabs(bd[size_t(o)]) : 0);
            for (int64_t i = 0; i < in; ++i)
              mag += std::fabs(x[size_t(n * ldx + i)] * W[size_t(o * in + i)]);
            want[size_t(n * out + o)] += beta * y0[size_t(n * ldy + o)];
            tol[size_t(n * out + o)] = 2.0 * double(in + 3) * kU32 * mag;
          }
        Vec y = y0;
        linear_forward(x.data(), ldx, W.data(), bias ? b.data() : nullptr, y.data(), ldy, N, in,
                       out, p, beta);
        const Vec yp = from_strided(y, N, out, ldy);
        for (size_t i = 0; i < yp.size(); ++i) ASSERT_NEAR(yp[i], want[i], tol[i]) << i;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t o = out; o < ldy; ++o)
            ASSERT_EQ(y[size_t(n * ldy + o)], y0[size_t(n * ldy + o)]) << "pad column touched";
      }
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  const int64_t N = 13, in = 37, out = 29, ldx = in + 3, ldy = out + 5, lddx = in + 2;
  const Vec x = randn(N * ldx, 171), W = randn(out * in, 172), b = randn(out, 173);
  const Vec R = randn(N * out, 174);
  DVec xd = to_d(x), wd = to_d(W), bd = to_d(b);
  const DVec Rd = to_d(R);
  auto loss = [&] { return dot(ref_linear(xd, ldx, wd, &bd, N, in, out), Rd); };
  const DVec gx_s = fd_grad(xd, loss), gw = fd_grad(wd, loss), gb = fd_grad(bd, loss);
  DVec gx(size_t(N * in));  // drop x's pad columns (their gradient is 0)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < in; ++i) gx[size_t(n * in + i)] = gx_s[size_t(n * ldx + i)];
  const Vec dy = to_strided(R, N, out, ldy, kGarbage);
  const Vec dx0 = randn(N * in, 175), dW0 = randn(out * in, 176), db0 = randn(out, 177);
  for_threads([&] {
    for (float dx_beta : {0.f, 1.f}) {
      SCOPED_TRACE(::testing::Message() << "dx_beta " << dx_beta);
      Vec dx =
          dx_beta == 0.f ? Vec(size_t(N * lddx), kGarbage) : to_strided(dx0, N, in, lddx, kGarbage);
      Vec dW = dW0, db = db0;
      linear_backward(x.data(), ldx, W.data(), dy.data(), ldy, dx.data(), lddx, dx_beta, dW.data(),
                      db.data(), N, in, out, Precision::kF32);
      const DVec want_dx = dx_beta == 0.f ? gx : plus(dx0, gx);
      EXPECT_TRUE(close(from_strided(dx, N, in, lddx), want_dx, kGradAtol, kGradRtol)) << "dx";
      EXPECT_TRUE(pad_untouched(dx, N, in, lddx, kGarbage)) << "dx";
      EXPECT_TRUE(close(dW, plus(dW0, gw), kGradAtol, kGradRtol)) << "dW";
      EXPECT_TRUE(close(db, plus(db0, gb), kGradAtol, kGradRtol)) << "db";
    }
    // No dx and no db: dW still accumulates.
    Vec dW = dW0;
    linear_backward(x.data(), ldx, W.data(), dy.data(), ldy, nullptr, in, 0.f, dW.data(), nullptr,
                    N, in, out, Precision::kF32);
    EXPECT_TRUE(close(dW, plus(dW0, gw), kGradAtol, kGradRtol)) << "dW without dx";
  });
}

}  // namespace
}  // namespace rat
