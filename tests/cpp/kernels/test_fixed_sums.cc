// Reductions whose grouping is fixed (kernels/fixed_sums.h): bias and norm
// weight gradients, the gradient norm. On 1, 2 and 3 threads the results must
// be the same bits; each must also be within float rounding of a double sum
// computed here (the oracle), so a fixed but wrong order cannot pass.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "train/optimizer.h"

namespace rat {
namespace {

// 1000 rows: 15 full blocks of 64 and a partial one.
constexpr int64_t N = 1000, D = 40;

std::vector<float> values(int64_t n, int seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = float((i * 7919 + seed * 104729) % 2003) / 1001.f - 1.f;
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class F>
auto on_threads(int t, F f) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(t);
  auto r = f();
  omp_set_num_threads(saved);
  return r;
}

TEST(FixedSums, ColumnSumsSameBitsOnAnyThreadCount) {
  const auto x = values(N * D, 1);
  auto run = [&] {
    std::vector<float> out(static_cast<size_t>(D), 0.5f);
    colsum_accumulate(x.data(), D, N, D, out.data());
    return out;
  };
  const auto one = on_threads(1, run);
  EXPECT_TRUE(same_bits(one, on_threads(2, run)));
  EXPECT_TRUE(same_bits(one, on_threads(3, run)));
  for (int64_t d = 0; d < D; ++d) {
    double s = 0.5;
    for (int64_t n = 0; n < N; ++n) s += x[size_t(n * D + d)];
    EXPECT_NEAR(one[size_t(d)], s, 1e-4) << d;
  }
}

TEST(FixedSums, RmsnormWeightGradientSameBitsOnAnyThreadCount) {
  const auto dy = values(N * D, 2), x = values(N * D, 3), w = values(D, 4);
  std::vector<float> rstd(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) rstd[size_t(n)] = 1.f + float(n % 5) * 0.1f;
  auto run = [&] {
    std::vector<float> dx(static_cast<size_t>(N * D), 0.f), dw(static_cast<size_t>(D), 0.f);
    rmsnorm_backward(dy.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, D);
    dw.insert(dw.end(), dx.begin(), dx.end());
    return dw;
  };
  const auto one = on_threads(1, run);
  EXPECT_TRUE(same_bits(one, on_threads(2, run)));
  EXPECT_TRUE(same_bits(one, on_threads(3, run)));
  for (int64_t d = 0; d < D; ++d) {  // dw = sum_n dy x r
    double s = 0;
    for (int64_t n = 0; n < N; ++n)
      s += double(dy[size_t(n * D + d)]) * x[size_t(n * D + d)] * rstd[size_t(n)];
    EXPECT_NEAR(one[size_t(d)], s, 1e-3) << d;
  }
}

TEST(FixedSums, GradientNormSameBitsOnAnyThreadCount) {
  const auto g = values(300001, 5);  // 73 blocks of 4096 and a partial one
  const double one = on_threads(1, [&] { return global_norm(g.data(), int64_t(g.size())); });
  EXPECT_EQ(one, on_threads(2, [&] { return global_norm(g.data(), int64_t(g.size())); }));
  EXPECT_EQ(one, on_threads(3, [&] { return global_norm(g.data(), int64_t(g.size())); }));
  long double s = 0;
  for (float v : g) s += (long double)v * v;
  EXPECT_NEAR(one, std::sqrt(double(s)), 1e-9 * one);
}

}  // namespace
}  // namespace rat
