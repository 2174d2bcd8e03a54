// Linear layer (src/kernels/linear.h): forward over bias, beta and both precisions against a
// float64 reference with the GEMM rounding bound, backward against central finite
// differences, with padded row strides.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

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
