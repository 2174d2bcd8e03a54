// Unit tests for the fused RAT token-wise stage (src/kernels/rat_scan.h): gates, chunk scans
// of v and of k tiled to D, and the interrope of kt and q, forward against a double reference
// written here from SPEC.md ("rat"), backward against central finite differences of
// loss = sum(vt Rv) + sum(ktr Rk) + sum(qr Rq) on that reference. A third test checks that the
// fused forward equals the composition of the separately tested unfused kernels.
//
// Tolerances: the forward is a chain of <= L convex combinations of O(1) values plus one
// rotation, so fp32 error stays a few ulp of O(1): 1e-5 absolute + 1e-5 relative. The sigmoid
// runs through exp16 (<= 2 ulp). Gradients: the same argument as tests/cpp/test_util.h
// (finite differences in double with eps 1e-6 are exact to ~1e-7; a formula error is O(1)).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/rat_scan.h"
#include "kernels/rope.h"
#include "kernels/scan.h"
#include "model/layers.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

struct Case {
  int64_t B, T, L, P, H, G;
};
const Case kCases[] = {
    {2, 37, 8, 16, 4, 2},   // ragged last chunk, B > 1, two heads per group
    {1, 9, 1, 8, 2, 1},     // L = 1: every token its own chunk; all heads read one group
    {1, 11, 32, 12, 3, 3},  // L > T (one chunk), G = H; P/2 = 6 not a vector width
    {2, 16, 4, 32, 2, 1},   // T a multiple of L
};

// Inputs of the stage, as the in_proj output: rows [z | v | g | q | k | pad] of stride ld.
struct Inputs {
  int64_t N, D, GP, W, ld;
  DVec z, v, g, q, k, bias;  // [N, D] or [N, GP]; bias [D]
};

Inputs make_inputs(const Case& c, uint32_t seed) {
  Inputs in;
  in.N = c.B * c.T, in.D = c.H * c.P, in.GP = c.G * c.P;
  in.W = 3 * in.D + 2 * in.GP, in.ld = in.W + 5;
  auto d = [](const Vec& v) { return DVec(v.begin(), v.end()); };
  in.z = d(randn(in.N * in.D, seed));
  in.v = d(randn(in.N * in.D, seed + 1));
  in.g = d(randn(in.N * in.D, seed + 2, 2.f));
  in.q = d(randn(in.N * in.GP, seed + 3));
  in.k = d(randn(in.N * in.GP, seed + 4));
  in.bias = d(randn(in.D, seed + 5, 0.5f));
  return in;
}

Vec pack(const Inputs& in) {
  Vec p(size_t(in.N * in.ld), kGarbage);
  for (int64_t n = 0; n < in.N; ++n) {
    float* r = p.data() + n * in.ld;
    for (int64_t d = 0; d < in.D; ++d) {
      r[d] = float(in.z[size_t(n * in.D + d)]);
      r[in.D + d] = float(in.v[size_t(n * in.D + d)]);
      r[2 * in.D + d] = float(in.g[size_t(n * in.D + d)]);
    }
    for (int64_t j = 0; j < in.GP; ++j) {
      r[3 * in.D + j] = float(in.q[size_t(n * in.GP + j)]);
      r[3 * in.D + in.GP + j] = float(in.k[size_t(n * in.GP + j)]);
    }
  }
  return p;
}

struct RefOut {
  DVec z, g, vt, kt, ktr, qr;
};

// SPEC.md "rat", in double: sigmoids, chunk-reset scans (k tiled: channel h*P+i reads group
// h % G), rotate-half by the chunk index with the table's cos/sin.
RefOut reference(const Case& c, const Inputs& in, const RopeTable& rope) {
  const int64_t D = in.D, GP = in.GP, P = c.P, half = P / 2;
  RefOut r;
  r.z.resize(in.z.size()), r.g.resize(in.g.size());
  r.vt.resize(size_t(in.N * D)), r.kt.resize(r.vt.size()), r.ktr.resize(r.vt.size());
  r.qr.resize(size_t(in.N * GP));
  auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  for (int64_t n = 0; n < in.N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      r.z[size_t(n * D + d)] = sig(in.z[size_t(n * D + d)]);
      r.g[size_t(n * D + d)] = sig(in.g[size_t(n * D + d)] + in.bias[size_t(d)]);
    }
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      double sv = 0, sk = 0;
      const int64_t kcol = (d / P % c.G) * P + d % P;
      for (int64_t t = 0; t < c.T; ++t) {
        if (t % c.L == 0) sv = sk = 0;
        const int64_t n = b * c.T + t;
        const double g = r.g[size_t(n * D + d)];
        sv = g * sv + (1 - g) * in.v[size_t(n * D + d)];
        sk = g * sk + (1 - g) * in.k[size_t(n * GP + kcol)];
        r.vt[size_t(n * D + d)] = sv;
        r.kt[size_t(n * D + d)] = sk;
      }
    }
  auto rot = [&](const double* x, double* y, int64_t nheads, int64_t pos) {
    for (int64_t h = 0; h < nheads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double cs = rope.cos[size_t(pos * half + i)], sn = rope.sin[size_t(pos * half + i)];
        const double a = x[h * P + i], bb = x[h * P + i + half];
        y[h * P + i] = a * cs - bb * sn;
        y[h * P + i + half] = bb * cs + a * sn;
      }
  };
  for (int64_t n = 0; n < in.N; ++n) {
    const int64_t pos = (n % c.T) / c.L;
    rot(r.kt.data() + n * D, r.ktr.data() + n * D, c.H, pos);
    rot(in.q.data() + n * GP, r.qr.data() + n * GP, c.G, pos);
  }
  return r;
}

struct Outputs {
  Vec proj, vt, kt, ktr, qr;
};

Outputs run_forward(const Case& c, const Inputs& in, const RopeTable& rope) {
  Outputs o;
  o.proj = pack(in);
  o.vt.assign(size_t(in.N * in.D), kGarbage);
  o.kt = o.vt, o.ktr = o.vt;
  o.qr.assign(size_t(in.N * in.GP), kGarbage);
  Vec bias(in.bias.begin(), in.bias.end());
  RatScanShape s{c.B, c.T, c.L, in.D, c.P, c.G, in.ld};
  rat_scan_forward(s, bias.data(), rope, o.proj.data(), o.vt.data(), o.kt.data(), o.ktr.data(),
                   o.qr.data());
  return o;
}

// Column block [c0, c0 + w) of the strided proj rows, packed.
Vec cols(const Vec& p, int64_t N, int64_t ld, int64_t c0, int64_t w) {
  Vec out(size_t(N * w));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < w; ++j) out[size_t(n * w + j)] = p[size_t(n * ld + c0 + j)];
  return out;
}

TEST(RatScan, ForwardMatchesReference) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "B " << c.B << " T " << c.T << " L " << c.L << " P " << c.P
                                      << " H " << c.H << " G " << c.G);
    const Inputs in = make_inputs(c, 11);
    RopeTable rope;
    rope.build(c.P, (c.T + c.L - 1) / c.L, 10000.0);
    const RefOut want = reference(c, in, rope);
    for_threads([&] {
      const Outputs o = run_forward(c, in, rope);
      const int64_t N = in.N, D = in.D, GP = in.GP;
      EXPECT_TRUE(
          close(cols(o.proj, N, in.ld, 0, D).data(), want.z.data(), size_t(N * D), 1e-6, 1e-5))
          << "z";
      EXPECT_TRUE(
          close(cols(o.proj, N, in.ld, 2 * D, D).data(), want.g.data(), size_t(N * D), 1e-6, 1e-5))
          << "g";
      EXPECT_TRUE(close(o.vt.data(), want.vt.data(), size_t(N * D), 1e-5, 1e-5)) << "vt";
      EXPECT_TRUE(close(o.kt.data(), want.kt.data(), size_t(N * D), 1e-5, 1e-5)) << "kt";
      EXPECT_TRUE(close(o.ktr.data(), want.ktr.data(), size_t(N * D), 1e-5, 1e-5)) << "ktr";
      EXPECT_TRUE(close(o.qr.data(), want.qr.data(), size_t(N * GP), 1e-5, 1e-5)) << "qr";
      // v, q, k columns are read only; the pad past 3D + 2GP is never touched.
      const Vec p0 = pack(in);
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t j = D; j < 2 * D; ++j)
          ASSERT_EQ(o.proj[size_t(n * in.ld + j)], p0[size_t(n * in.ld + j)]);
        for (int64_t j = 3 * D; j < in.ld; ++j)
          ASSERT_EQ(o.proj[size_t(n * in.ld + j)], p0[size_t(n * in.ld + j)]);
      }
    });
  }
}

// The fused pass computes what the unfused kernels (each tested in tests/cpp/kernels/) compute
// in sequence, to fp32 rounding: sigmoid_inplace, chunk_scan_forward per head, rope_apply.
TEST(RatScan, ForwardAgreesWithUnfusedKernels) {
  const Case c{2, 45, 16, 64, 4, 2};
  const Inputs in = make_inputs(c, 21);
  RopeTable rope;
  rope.build(c.P, (c.T + c.L - 1) / c.L, 10000.0);
  const Outputs o = run_forward(c, in, rope);
  const int64_t N = in.N, D = in.D, GP = in.GP, H = c.H, W = in.ld;
  Vec p = pack(in), vt(size_t(N * D)), kt(size_t(N * D));
  Vec bias(in.bias.begin(), in.bias.end());
  sigmoid_inplace(p.data(), W, nullptr, N, D);
  sigmoid_inplace(p.data() + 2 * D, W, bias.data(), N, D);
  chunk_scan_forward(p.data() + 2 * D, W, p.data() + D, W, vt.data(), D, c.B, c.T, c.L, D);
  for (int64_t h = 0; h < H; ++h)
    chunk_scan_forward(p.data() + 2 * D + h * c.P, W, p.data() + 3 * D + GP + (h % c.G) * c.P, W,
                       kt.data() + h * c.P, D, c.B, c.T, c.L, c.P);
  Vec ktr = kt, qr = cols(p, N, W, 3 * D, GP);
  rope_apply(rope, ktr.data(), c.B, c.T, 0, H, D, c.L, +1);
  rope_apply(rope, qr.data(), c.B, c.T, 0, c.G, GP, c.L, +1);
  auto same = [](const Vec& a, const Vec& b) {
    DVec bd(b.begin(), b.end());
    return close(a.data(), bd.data(), a.size(), 1e-6, 1e-6);
  };
  EXPECT_TRUE(same(cols(o.proj, N, W, 0, 3 * D + 2 * GP), cols(p, N, W, 0, 3 * D + 2 * GP)));
  EXPECT_TRUE(same(o.vt, vt)) << "vt";
  EXPECT_TRUE(same(o.kt, kt)) << "kt";
  EXPECT_TRUE(same(o.ktr, ktr)) << "ktr";
  EXPECT_TRUE(same(o.qr, qr)) << "qr";
}

TEST(RatScan, BackwardMatchesFiniteDifferences) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message() << "B " << c.B << " T " << c.T << " L " << c.L << " P " << c.P
                                      << " H " << c.H << " G " << c.G);
    Inputs in = make_inputs(c, 31);
    RopeTable rope;
    rope.build(c.P, (c.T + c.L - 1) / c.L, 10000.0);
    const int64_t N = in.N, D = in.D, GP = in.GP;
    const Vec Rv = randn(N * D, 41), Rk = randn(N * D, 42), Rq = randn(N * GP, 43);
    auto loss = [&] {
      const RefOut r = reference(c, in, rope);
      double l = 0;
      for (size_t i = 0; i < r.vt.size(); ++i) l += r.vt[i] * Rv[i] + r.ktr[i] * Rk[i];
      for (size_t i = 0; i < r.qr.size(); ++i) l += r.qr[i] * Rq[i];
      return l;
    };
    auto fd = [&](DVec& x) {
      DVec g(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        const double x0 = x[i];
        x[i] = x0 + 1e-6;
        const double lp = loss();
        x[i] = x0 - 1e-6;
        const double lm = loss();
        x[i] = x0;
        g[i] = (lp - lm) / 2e-6;
      }
      return g;
    };
    const DVec want_dv = fd(in.v), want_dg = fd(in.g), want_dq = fd(in.q), want_dk = fd(in.k);
    for_threads([&] {
      const Outputs o = run_forward(c, in, rope);
      Vec dproj(size_t(N * in.ld), kGarbage);
      RatScanShape s{c.B, c.T, c.L, D, c.P, c.G, in.ld};
      rat_scan_backward(s, rope, o.proj.data(), o.vt.data(), o.kt.data(), Rv.data(), Rk.data(),
                        Rq.data(), dproj.data());
      EXPECT_TRUE(
          close(cols(dproj, N, in.ld, D, D).data(), want_dv.data(), size_t(N * D), 1e-5, 1e-4))
          << "dv";
      EXPECT_TRUE(
          close(cols(dproj, N, in.ld, 2 * D, D).data(), want_dg.data(), size_t(N * D), 1e-5, 1e-4))
          << "dg";
      EXPECT_TRUE(close(cols(dproj, N, in.ld, 3 * D, GP).data(), want_dq.data(), size_t(N * GP),
                        1e-5, 1e-4))
          << "dq";
      EXPECT_TRUE(close(cols(dproj, N, in.ld, 3 * D + GP, GP).data(), want_dk.data(),
                        size_t(N * GP), 1e-5, 1e-4))
          << "dk";
      // z columns (the mixer writes them) and the pad stay untouched.
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t j = 0; j < D; ++j) ASSERT_EQ(dproj[size_t(n * in.ld + j)], kGarbage);
        for (int64_t j = in.W; j < in.ld; ++j) ASSERT_EQ(dproj[size_t(n * in.ld + j)], kGarbage);
      }
    });
  }
}

}  // namespace
}  // namespace rat
