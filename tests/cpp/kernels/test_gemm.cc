// The GEMM wrapper (src/kernels/gemm.h): gemm, gemm_small, gemm_naive and the bf16 paths
// against a float64 reference, over every transpose, padded leading dimensions and beta; and
// the fp32 -> bf16 rounding (to_bf16, from_bf16, round_bf16) against a rounding reference
// computed on values. Tolerances: any fp32 summation order of K products stays within
// gamma_{K+2} of sum |a b| (gemm_close in test_util.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/gemm.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

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

}  // namespace
}  // namespace rat
