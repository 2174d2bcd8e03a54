// The LM head fused with cross-entropy (src/kernels/cross_entropy.h) against a float64
// reference and finite differences: small shapes, a vocabulary large enough for several row
// blocks, the bf16 path, and the full-logits helper.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

#include "kernels/cross_entropy.h"
#include "kernels/gemm.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

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

}  // namespace
}  // namespace rat
