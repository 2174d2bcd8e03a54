// FFN activations (src/kernels/activations.h: the authors' nn/activation.py registry, gelu,
// fastgelu, relu, swiglu, tanh, silu, sigmoid, exp, relusquared, softmax, identity) against
// float64 references written here from their torch definitions, backward against central finite
// differences; gelu over its whole range including the far tails, inf and NaN; each of the others
// at the values where its branches meet or saturate (torch's values there).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "kernels/activations.h"
#include "kernels/isa.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

// Activations (SPEC.md "FFN").

double ref_act(Activation act, double x) {
  switch (act) {
    case Activation::kGelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::kFastGelu:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kRelu: return x > 0 ? x : 0;
    case Activation::kTanh: return std::tanh(x);
    case Activation::kSilu: return x / (1 + std::exp(-x));
    case Activation::kSigmoid: return 1 / (1 + std::exp(-x));
    case Activation::kExp: return std::exp(x);
    case Activation::kReluSquared: return x > 0 ? x * x : 0;
    case Activation::kIdentity: return x;
    default: return NAN;
  }
}

// h: [N, F], or [N, 2F] for swiglu with [a | gate] per row: a * silu(gate).
DVec ref_activation(Activation act, const DVec& h, int64_t N, int64_t F) {
  DVec a(size_t(N * F));
  if (act == Activation::kSoftmax) {  // torch.softmax(h, dim=-1), per row
    for (int64_t n = 0; n < N; ++n) {
      double m = -INFINITY, s = 0;
      for (int64_t f = 0; f < F; ++f) m = std::max(m, h[size_t(n * F + f)]);
      for (int64_t f = 0; f < F; ++f)
        s += a[size_t(n * F + f)] = std::exp(h[size_t(n * F + f)] - m);
      for (int64_t f = 0; f < F; ++f) a[size_t(n * F + f)] /= s;
    }
    return a;
  }
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

const Activation kAllActs[] = {
    Activation::kGelu,        Activation::kFastGelu, Activation::kRelu,    Activation::kSwiglu,
    Activation::kTanh,        Activation::kSilu,     Activation::kSigmoid, Activation::kExp,
    Activation::kReluSquared, Activation::kSoftmax,  Activation::kIdentity};

const char* act_label(Activation a) {
  switch (a) {
    case Activation::kGelu: return "gelu";
    case Activation::kFastGelu: return "fastgelu";
    case Activation::kRelu: return "relu";
    case Activation::kSwiglu: return "swiglu";
    case Activation::kTanh: return "tanh";
    case Activation::kSilu: return "silu";
    case Activation::kSigmoid: return "sigmoid";
    case Activation::kExp: return "exp";
    case Activation::kReluSquared: return "relusquared";
    case Activation::kSoftmax: return "softmax";
    default: return "identity";
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
  // Where only smallness is checked: below FLT_MIN for the AVX-512 kernel;
  // the AVX2 and portable paths take erfc and exp from libm in float, whose
  // results for |x| > 13.1 are subnormal (spacing 1.4e-45) or flushed, so
  // no 1e-6 relative bound can hold for outputs below ~1e-36 there.
  const double tiny = active_isa() == Isa::kAvx512 ? 1.2e-38 : 1e-36;
  // Relative bound: the AVX-512 kernel forms x^2 / 2 exactly (split
  // products); the float libm path rounds its arguments first (x / sqrt 2 for
  // erfc, x^2 / 2 for exp), and erfc(z), exp(-z^2) change by 2 z^2 (<= 170
  // at |x| <= 13) times that 2^-24 relative rounding: up to 1e-5.
  const double rel = active_isa() == Isa::kAvx512 ? 1e-6 : 2e-5;
  for (int64_t i = 0; i < n; ++i) {
    const double x = h[size_t(i)];
    const double phi = 0.5 * std::erfc(-x / std::sqrt(2.0));
    const double xdens = x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    const double want = x * phi, dwant = phi + xdens, dmag = phi + std::fabs(xdens);
    const double got = a[size_t(i)], dgot = dh[size_t(i)];
    if (std::fabs(want) < tiny) {
      EXPECT_LT(std::fabs(got), tiny) << "gelu(" << x << ")";
    } else {
      EXPECT_NEAR(got, want, rel * std::fabs(want)) << "gelu(" << x << ")";
      worst_a = std::max(worst_a, std::fabs(got - want) / std::fabs(want));
    }
    if (dmag < tiny) {
      EXPECT_LT(std::fabs(dgot), tiny) << "gelu'(" << x << ")";
    } else {
      EXPECT_NEAR(dgot, dwant, rel * dmag) << "gelu'(" << x << ")";
      worst_d = std::max(worst_d, std::fabs(dgot - dwant) / dmag);
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g / %.3g", worst_a, worst_d);
  RecordProperty("worst_rel_err_gelu_and_grad", buf);
  // Far tails (the exact split of x^2 once overflowed to NaN past ~6.5e4):
  // gelu(x) = x and gelu' = 1 for large x, -0 / 0 for large -x; inf and NaN.
  const float inf = std::numeric_limits<float>::infinity();
  Vec big = {20.f,  30.f,      65552.3f, 1e5f,   1e10f,  3e38f, -20.f,
             -30.f, -65552.3f, -1e5f,    -1e10f, -3e38f, inf,   std::nanf("")};
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

// Where branches meet or saturate, torch's values (torch 1.13, float32): relu and relusquared
// and their derivatives at 0 and -0 are 0 (torch's threshold backward takes x > 0); tanh,
// sigmoid and silu saturate without NaN; exp overflows to inf past 88.72 and underflows to 0;
// softmax of a row with huge equal entries is uniform (max-subtracted), and its derivative is
// 0 when da is constant over the row.
TEST(Activations, BranchPointsAndSaturation) {
  struct Case {
    Activation act;
    float x, value, grad;
  };
  const float inf = std::numeric_limits<float>::infinity();
  const Case cases[] = {
      {Activation::kRelu, 0.f, 0.f, 0.f},         {Activation::kRelu, -0.f, 0.f, 0.f},
      {Activation::kRelu, 1e-30f, 1e-30f, 1.f},   {Activation::kReluSquared, 0.f, 0.f, 0.f},
      {Activation::kReluSquared, -2.f, 0.f, 0.f}, {Activation::kReluSquared, 3.f, 9.f, 6.f},
      {Activation::kTanh, 20.f, 1.f, 0.f},        {Activation::kTanh, -20.f, -1.f, 0.f},
      {Activation::kTanh, 0.f, 0.f, 1.f},         {Activation::kSigmoid, -100.f, 0.f, 0.f},
      {Activation::kSigmoid, 100.f, 1.f, 0.f},    {Activation::kSigmoid, 0.f, 0.5f, 0.25f},
      {Activation::kSilu, -100.f, -0.f, 0.f},     {Activation::kSilu, 100.f, 100.f, 1.f},
      {Activation::kSilu, 0.f, 0.f, 0.5f},        {Activation::kExp, 89.f, inf, inf},
      {Activation::kExp, -104.f, 0.f, 0.f},       {Activation::kExp, 0.f, 1.f, 1.f},
      {Activation::kIdentity, -3.5f, -3.5f, 1.f}, {Activation::kIdentity, 1e30f, 1e30f, 1.f},
  };
  for (const Case& c : cases) {
    float a = kGarbage, d = kGarbage, one = 1.f;
    activation_forward(c.act, &c.x, &a, 1, 1);
    activation_backward(c.act, &c.x, &one, &d, 1, 1);
    if (std::isinf(c.value)) {
      EXPECT_EQ(a, c.value) << act_label(c.act) << "(" << c.x << ")";
    } else {
      EXPECT_NEAR(a, c.value, 1e-7f * std::max(1.f, std::fabs(c.value)))
          << act_label(c.act) << "(" << c.x << ")";
    }
    if (std::isinf(c.grad)) {
      EXPECT_EQ(d, c.grad) << act_label(c.act) << "'(" << c.x << ")";
    } else {
      EXPECT_NEAR(d, c.grad, 1e-6f * std::max(1.f, std::fabs(c.grad)))
          << act_label(c.act) << "'(" << c.x << ")";
    }
  }
  // softmax: a row of huge equal logits (exp would overflow unshifted) and a -inf entry.
  const Vec h = {1e4f, 1e4f, -inf, 1e4f};
  Vec a(4, kGarbage), dh(4, kGarbage);
  activation_forward(Activation::kSoftmax, h.data(), a.data(), 1, 4);
  for (int i : {0, 1, 3}) EXPECT_NEAR(a[size_t(i)], 1.f / 3.f, 1e-7f);
  EXPECT_EQ(a[2], 0.f);
  const Vec flat(4, 2.5f);
  activation_backward(Activation::kSoftmax, h.data(), flat.data(), dh.data(), 1, 4);
  for (float v : dh) EXPECT_NEAR(v, 0.f, 1e-7f);
}

TEST(Activations, Sigmoid) {
  for (float x : {-30.f, -5.f, -0.5f, 0.f, 0.25f, 3.f, 30.f}) {
    const double want = 1.0 / (1.0 + std::exp(-double(x)));
    EXPECT_NEAR(sigmoidf(x), want, 1e-7 + 1e-6 * want) << x;
  }
}

}  // namespace
}  // namespace rat
