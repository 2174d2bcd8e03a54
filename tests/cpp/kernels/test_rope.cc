// Rotary position encoding (src/kernels/rope.h): the cos/sin table, rope_apply forward for
// RoPE (div 1) and the chunk-index variant (div L), its inverse, and its backward against
// central finite differences, with row strides larger than the heads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/rope.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

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

}  // namespace
}  // namespace rat
