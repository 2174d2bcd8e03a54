// RMSNorm (src/kernels/rmsnorm.h) against a float64 reference written here from SPEC.md, and its
// backward against central finite differences of sum(y * R) on that reference (the
// tolerances are explained in test_util.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/rmsnorm.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

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

}  // namespace
}  // namespace rat
