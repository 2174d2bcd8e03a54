// gemv_bf16 and gemv_f32 (src/kernels/gemv.h), the one- and two-row products
// of decoding, against float64 sums of the same (bf16-rounded) operands, and
// through gemm_bf16_weights / gemm (which route these shapes to them). Shapes cover
// the 16- and 8-row groups and their tails, strided operands, and beta.
// Tolerance: float32 sums of K products of O(1) values: 1e-6 * sum |terms|.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/gemv.h"
#include "kernels/isa.h"

namespace rat {
namespace {

TEST(GemvBf16, MatchesFloat64OfRoundedOperands) {
  // The row kernels exist for AVX-512 only (kernels/isa_avx512.cc); on other
  // instruction sets oneDNN takes every shape and there is nothing to test.
  if (active_isa() != Isa::kAvx512) GTEST_SKIP() << "no gemv kernel on " << isa_name(active_isa());
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t M : {1, 2})
    for (int64_t N : {1, 7, 16, 17, 40, 300})
      for (int64_t K : {32, 96, 1024})
        for (float beta : {0.f, 1.f, 0.5f}) {
          ASSERT_TRUE(gemv_bf16_supported(M, K));
          const int64_t ldx = K + 5, ldw = K + 32, ldy = N + 3;
          std::vector<float> x(size_t(M * ldx)), y(size_t(M * ldy)), y0;
          std::vector<float> wf(size_t(N * ldw));
          for (float& f : x) f = nd(rng);
          for (float& f : y) f = nd(rng);
          for (float& f : wf) f = nd(rng);
          std::vector<uint16_t> w(wf.size());
          to_bf16(wf.data(), w.data(), int64_t(wf.size()));
          std::vector<float> xr = x, wr(wf.size());
          round_bf16(xr.data(), int64_t(xr.size()));
          from_bf16(w.data(), wr.data(), int64_t(w.size()));
          y0 = y;
          gemv_bf16(x.data(), ldx, M, w.data(), ldw, N, K, y.data(), ldy, beta);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              double want = beta == 0.f ? 0.0 : double(beta) * y0[size_t(m * ldy + n)];
              double mag = std::fabs(want);
              for (int64_t k = 0; k < K; ++k) {
                const double t = double(xr[size_t(m * ldx + k)]) * wr[size_t(n * ldw + k)];
                want += t;
                mag += std::fabs(t);
              }
              ASSERT_NEAR(y[size_t(m * ldy + n)], want, 1e-6 * mag + 1e-30)
                  << "M " << M << " N " << N << " K " << K << " beta " << beta << " at " << m << ","
                  << n;
            }
          // Untouched: the padding columns of y.
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = N; n < ldy; ++n)
              ASSERT_EQ(y[size_t(m * ldy + n)], y0[size_t(m * ldy + n)]);
        }
}

TEST(GemvF32, MatchesFloat64AndGemm) {
  // The row kernels exist for AVX-512 only (kernels/isa_avx512.cc); on other
  // instruction sets oneDNN takes every shape and there is nothing to test.
  if (active_isa() != Isa::kAvx512) GTEST_SKIP() << "no gemv kernel on " << isa_name(active_isa());
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t M : {1, 2})
    for (int64_t N : {1, 7, 16, 17, 300})
      for (int64_t K : {16, 48, 1024})
        for (float beta : {0.f, 0.5f}) {
          ASSERT_TRUE(gemv_f32_supported(M, K));
          const int64_t ldx = K + 3, ldw = K + 16, ldy = N + 2;
          std::vector<float> x(size_t(M * ldx)), y(size_t(M * ldy)), w(size_t(N * ldw));
          for (auto* v : {&x, &y, &w})
            for (float& f : *v) f = nd(rng);
          std::vector<float> y0 = y, y2 = y;
          gemv_f32(x.data(), ldx, M, w.data(), ldw, N, K, y.data(), ldy, beta);
          gemm({M, N, K, false, true, ldx, ldw, ldy}, x.data(), w.data(), y2.data(), beta);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < ldy; ++n) {
              const size_t at = size_t(m * ldy + n);
              if (n >= N) {
                ASSERT_EQ(y[at], y0[at]);  // padding untouched
                continue;
              }
              double want = beta == 0.f ? 0.0 : double(beta) * y0[at], mag = std::fabs(want);
              for (int64_t k = 0; k < K; ++k) {
                const double t = double(x[size_t(m * ldx + k)]) * w[size_t(n * ldw + k)];
                want += t;
                mag += std::fabs(t);
              }
              ASSERT_NEAR(y[at], want, 1e-6 * mag) << M << " " << N << " " << K << " " << beta;
              ASSERT_EQ(y2[at], y[at]);  // gemm took this path
            }
        }
  EXPECT_FALSE(gemv_f32_supported(3, 64));
  EXPECT_FALSE(gemv_f32_supported(1, 40));
}

TEST(GemvBf16, GemmBf16WeightsUsesItForOneAndTwoRows) {
  // The row kernels exist for AVX-512 only (kernels/isa_avx512.cc); on other
  // instruction sets oneDNN takes every shape and there is nothing to test.
  if (active_isa() != Isa::kAvx512) GTEST_SKIP() << "no gemv kernel on " << isa_name(active_isa());
  // The same numbers whether reached directly or through the GEMM wrapper.
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t N = 50, K = 64;
  std::vector<float> x(size_t(2 * K)), wf(size_t(N * K)), a(size_t(2 * N)), b(size_t(2 * N));
  for (float& f : x) f = nd(rng);
  for (float& f : wf) f = nd(rng);
  std::vector<uint16_t> w(wf.size());
  to_bf16(wf.data(), w.data(), int64_t(w.size()));
  for (int64_t M : {1, 2}) {
    gemv_bf16(x.data(), K, M, w.data(), K, N, K, a.data(), N, 0.f);
    gemm_bf16_weights({M, N, K, false, true}, x.data(), w.data(), b.data(), 0.f);
    for (int64_t i = 0; i < M * N; ++i) ASSERT_EQ(a[size_t(i)], b[size_t(i)]) << M << " " << i;
  }
  EXPECT_FALSE(gemv_bf16_supported(3, K));
  EXPECT_FALSE(gemv_bf16_supported(1, 40));
}

}  // namespace
}  // namespace rat
