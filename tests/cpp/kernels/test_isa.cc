// The instruction-set tables of the vector kernels (src/kernels/isa.h), each
// called directly, whichever the process runs: every set this CPU has is
// checked against double-precision references here, so the AVX2 and plain
// kernels are tested in the default (AVX-512) run too. (scripts/test_isa.sh
// also reruns the whole suite with RAT_ISA=avx2.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/isa_kernels.h"
#include "test_util.h"

namespace {

using rat::Isa;
using rat::IsaKernels;
using rat::testing::max_or_nan;

constexpr float kSentinel = 12345.f;

std::vector<Isa> sets_here() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric})
    if (rat::isa_supported(isa)) out.push_back(isa);
  return out;
}

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  return rat::testing::uniform(int64_t(n), seed, lo, hi);
}

double ulp_error(float f, double ref) {
  const float r = float(ref);
  const float ulp = std::nextafter(std::fabs(r), INFINITY) - std::fabs(r);
  return std::fabs(double(f) - ref) / double(ulp);
}

TEST(Isa, ActiveSetIsSupportedAndNamed) {
  EXPECT_TRUE(rat::isa_supported(rat::active_isa()));
  EXPECT_TRUE(rat::isa_supported(Isa::kGeneric));
  EXPECT_EQ(std::string(rat::isa_kernels().name), rat::isa_name(rat::active_isa()));
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric})
    EXPECT_EQ(std::string(rat::isa_table(isa).name), rat::isa_name(isa));
}

TEST(Isa, ExpWithinTwoUlpAndEdgesOnEverySet) {
  std::vector<float> x;
  for (double v = -87.0; v <= 88.5; v += 0.0131) x.push_back(float(v));
  const float inf = std::numeric_limits<float>::infinity();
  for (Isa isa : sets_here()) {
    const IsaKernels& k = rat::isa_table(isa);
    std::vector<float> y(x.size());
    k.vec_exp(x.data(), y.data(), int64_t(x.size()));
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i)
      worst = max_or_nan(worst, ulp_error(y[i], std::exp(double(x[i]))));
    EXPECT_LE(worst, 2.0) << rat::isa_name(isa);
    std::vector<float> e = {-inf, -1000.f, -104.f, 0.f, 100.f, std::nanf("")}, ey(e.size());
    k.vec_exp(e.data(), ey.data(), int64_t(e.size()));
    EXPECT_EQ(ey[0], 0.f) << rat::isa_name(isa);  // a masked score gives exactly 0
    EXPECT_EQ(ey[1], 0.f) << rat::isa_name(isa);
    EXPECT_EQ(ey[2], 0.f) << rat::isa_name(isa);
    EXPECT_EQ(ey[3], 1.f) << rat::isa_name(isa);
    EXPECT_EQ(ey[4], inf) << rat::isa_name(isa);
    EXPECT_TRUE(std::isnan(ey[5])) << rat::isa_name(isa);
  }
}

TEST(Isa, Avx2ExpIsBitwiseAvx512Exp) {
  // Same reduction, polynomial and FMA order lane by lane, and 2^n applied with
  // one rounding on both: the two vector exps agree bit for bit, subnormal
  // results included.
  if (!rat::isa_supported(Isa::kAvx512)) GTEST_SKIP() << "no AVX-512 here";
  std::vector<float> x;
  for (double v = -104.0; v <= 89.0; v += 0.00731) x.push_back(float(v));
  std::vector<float> a(x.size()), b(x.size());
  rat::isa_table(Isa::kAvx512).vec_exp(x.data(), a.data(), int64_t(x.size()));
  rat::isa_table(Isa::kAvx2).vec_exp(x.data(), b.data(), int64_t(x.size()));
  int64_t differ = 0;
  for (size_t i = 0; i < x.size(); ++i) differ += a[i] != b[i];
  EXPECT_EQ(differ, 0) << "of " << x.size();
}

TEST(Isa, RowPrimitivesOnEverySetEveryTail) {
  for (Isa isa : sets_here()) {
    const IsaKernels& k = rat::isa_table(isa);
    for (int64_t n = 0; n <= 35; ++n) {
      const std::vector<float> x = random_vec(size_t(n) + 4, uint32_t(n), -3.f, 3.f),
                               y = random_vec(size_t(n) + 4, uint32_t(n) + 100),
                               b = random_vec(size_t(n) + 4, uint32_t(n) + 200);
      const std::string at = std::string(rat::isa_name(isa)) + " n " + std::to_string(n);
      double dot = 0, mx = -INFINITY, sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        dot += double(x[size_t(i)]) * y[size_t(i)];
        mx = std::max(mx, double(x[size_t(i)]));
      }
      EXPECT_NEAR(k.vec_dot(x.data(), y.data(), n), dot, 1e-5) << at;
      EXPECT_EQ(double(k.vec_max(x.data(), n)), mx) << at;  // -inf for n 0
      // exp_affine_sum and sigmoid, elements past n untouched.
      std::vector<float> e = x, s(x.size(), kSentinel);
      const float got_sum = k.vec_exp_affine_sum(e.data(), n, 0.5f, 0.25f);
      k.vec_sigmoid(x.data(), b.data(), s.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(0.5 * x[size_t(i)] - 0.25);
        sum += want;
        EXPECT_NEAR(e[size_t(i)], want, 3e-7 * want) << at;
        const double sig = 1 / (1 + std::exp(-(double(x[size_t(i)]) + b[size_t(i)])));
        EXPECT_NEAR(s[size_t(i)], sig, 4e-7) << at;
      }
      EXPECT_NEAR(got_sum, sum, 1e-6 * std::max(sum, 1.0)) << at;
      for (size_t i = size_t(n); i < x.size(); ++i) {
        EXPECT_EQ(e[i], x[i]) << at;
        EXPECT_EQ(s[i], kSentinel) << at;
      }
      std::vector<float> d = y, d0 = y;
      k.vec_softmax_grad(x.data(), d.data(), n, 0.3f, 0.125f);
      for (int64_t i = 0; i < n; ++i)
        EXPECT_FLOAT_EQ(d[size_t(i)], x[size_t(i)] * 0.125f * (d0[size_t(i)] - 0.3f)) << at;
    }
  }
}

TEST(Isa, DecodeAttendOnEverySetMatchesDouble) {
  // Widths the AVX-512 set unrolls (64, 128) and others, f32 and bf16 rows,
  // with and without the extra (RAT state) term.
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t P : {40, 64, 128})
    for (int64_t n : {1, 16, 37}) {
      const size_t np = static_cast<size_t>(P), nk = static_cast<size_t>(n * P);
      std::vector<float> q(np), k(nk), v(nk), ke(np), ve(np);
      for (auto* a : {&q, &k, &v, &ke, &ve})
        for (float& f : *a) f = nd(rng);
      std::vector<uint16_t> k16(k.size()), v16(v.size());
      rat::to_bf16(k.data(), k16.data(), int64_t(k.size()));
      rat::to_bf16(v.data(), v16.data(), int64_t(v.size()));
      std::vector<float> kr(k.size()), vr(v.size());  // what the bf16 rows hold
      rat::from_bf16(k16.data(), kr.data(), int64_t(k.size()));
      rat::from_bf16(v16.data(), vr.data(), int64_t(v.size()));
      const float scale = 0.125f;
      for (bool bf16 : {false, true})
        for (bool extra : {false, true}) {
          const std::vector<float>& kk = bf16 ? kr : k;
          const std::vector<float>& vv = bf16 ? vr : v;
          const int64_t m = n + (extra ? 1 : 0);
          std::vector<double> s(static_cast<size_t>(m));
          double mx = -1e300, z = 0;
          for (int64_t j = 0; j < m; ++j) {
            const float* row = j < n ? &kk[size_t(j * P)] : ke.data();
            double d = 0;
            for (int64_t i = 0; i < P; ++i) d += double(q[size_t(i)]) * row[i];
            s[size_t(j)] = d * scale;
            mx = std::max(mx, s[size_t(j)]);
          }
          for (double& x : s) z += x = std::exp(x - mx);
          for (Isa isa : sets_here()) {
            const IsaKernels& t = rat::isa_table(isa);
            std::vector<float> o(np), sc(static_cast<size_t>(n + 1));
            if (bf16)
              t.decode_attend_bf16(q.data(), k16.data(), v16.data(), n, extra ? ke.data() : nullptr,
                                   extra ? ve.data() : nullptr, P, scale, sc.data(), o.data());
            else
              t.decode_attend_f32(q.data(), k.data(), v.data(), n, extra ? ke.data() : nullptr,
                                  extra ? ve.data() : nullptr, P, scale, sc.data(), o.data());
            double err = 0;
            for (int64_t i = 0; i < P; ++i) {
              double want = 0;
              for (int64_t j = 0; j < m; ++j)
                want += s[size_t(j)] / z * (j < n ? vv[size_t(j * P + i)] : ve[size_t(i)]);
              err = max_or_nan(err, std::fabs(want - o[size_t(i)]));
            }
            EXPECT_LE(err, 1e-5) << rat::isa_name(isa) << " P " << P << " n " << n << " bf16 "
                                 << bf16 << " extra " << extra;
          }
        }
    }
}

TEST(Isa, ToBf16SameBitsOnEverySet) {
  std::vector<float> x = random_vec(1000, 3, -100.f, 100.f);
  x.push_back(1e-40f);  // subnormal: flushes to signed zero on every path
  x.push_back(-1e-40f);
  x.push_back(std::nanf(""));
  x.push_back(std::numeric_limits<float>::infinity());
  std::vector<uint16_t> ref(x.size());
  rat::isa_table(Isa::kGeneric).to_bf16(x.data(), ref.data(), int64_t(x.size()));
  EXPECT_EQ(ref[1000], 0u);
  EXPECT_EQ(ref[1001], 0x8000u);
  for (Isa isa : sets_here()) {
    std::vector<uint16_t> y(x.size());
    rat::isa_table(isa).to_bf16(x.data(), y.data(), int64_t(x.size()));
    EXPECT_EQ(y, ref) << rat::isa_name(isa);
  }
}

TEST(Isa, ReadSumOnEverySet) {
  std::vector<float> x(128 * 40);
  double want = 0;
  for (size_t i = 0; i < x.size(); ++i) want += x[i] = float(i % 7) * 0.25f;
  for (Isa isa : sets_here())
    EXPECT_EQ(double(rat::isa_table(isa).read_sum(x.data(), int64_t(x.size()))), want)
        << rat::isa_name(isa);  // quarter-integers summing to < 2^24 / 4: exact
}

}  // namespace
