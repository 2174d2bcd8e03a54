// Tiled attention kernels (src/kernels/attention.cc, rat_attention.cc) against their double
// references and against finite differences; the vectorised exp against std::exp.
//
// Layouts mirror the model: q, k, v (or kt, vt) are column slices of one wide row-major
// buffer with padding columns, so the strides are exercised; padding is filled with a
// sentinel and must come back untouched.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/rat_attention.h"
#include "kernels/vec_math.h"
#include "test_util.h"

namespace rat {
namespace {
using rat::testing::max_or_nan;

constexpr float kSentinel = 12345.f;

// n values uniform in [lo, hi).
std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  return rat::testing::uniform(int64_t(n), seed, lo, hi);
}

// Max |a - b| over `cols` columns at column offset `off` of `rows` rows of stride ld.
double max_abs_diff(const float* a, const float* b, int64_t rows, int64_t cols, int64_t ld,
                    int64_t off = 0) {
  double m = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m = max_or_nan(m, std::fabs(double(a[r * ld + off + c]) - double(b[r * ld + off + c])));
  return m;
}

double max_abs(const float* a, int64_t rows, int64_t cols, int64_t ld, int64_t off = 0) {
  double m = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m = max_or_nan(m, std::fabs(double(a[r * ld + off + c])));
  return m;
}

// Every column of [0, ld) outside [off, off + cols) still holds the sentinel.
bool padding_intact(const std::vector<float>& x, int64_t rows, int64_t ld,
                    std::initializer_list<std::pair<int64_t, int64_t>> used) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ld; ++c) {
      bool in = false;
      for (auto [off, n] : used) in |= c >= off && c < off + n;
      if (!in && x[size_t(r * ld + c)] != kSentinel) return false;
    }
  return true;
}

// ---- vec_math -------------------------------------------------------------------------

// ulp distance between float f and the double reference.
double ulp_error(float f, double ref) {
  float r = float(ref);
  float ulp = std::nextafter(std::fabs(r), INFINITY) - std::fabs(r);
  return std::fabs(double(f) - ref) / double(ulp);
}

TEST(VecMath, ExpWithinTwoUlp) {
  // Dense sweep of the whole normal-result range; the claim in vec_math.h is <= 2 ulp
  // (Cody-Waite reduction + degree-7 Taylor; measured max is about 1 ulp).
  std::vector<float> x, y;
  for (double v = -87.0; v <= 88.5; v += 0.0013) x.push_back(float(v));
  y.resize(x.size());
  vec_exp(x.data(), y.data(), int64_t(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i)
    worst = max_or_nan(worst, ulp_error(y[i], std::exp(double(x[i]))));
  EXPECT_LE(worst, 2.0);
}

TEST(VecMath, ExpEdgeCasesAndTails) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {-inf,  -1000.f, -104.f,
                          0.f,   1.f,     -1.f,
                          100.f, 1e-30f,  std::numeric_limits<float>::quiet_NaN()};
  std::vector<float> y(x.size());
  vec_exp(x.data(), y.data(), int64_t(x.size()));
  EXPECT_EQ(y[0], 0.f);  // masked scores must give exactly 0
  EXPECT_EQ(y[1], 0.f);
  EXPECT_EQ(y[2], 0.f);  // e^-104 is below the smallest denormal
  EXPECT_EQ(y[3], 1.f);
  EXPECT_LE(ulp_error(y[4], std::exp(1.0)), 2.0);
  EXPECT_LE(ulp_error(y[5], std::exp(-1.0)), 2.0);
  EXPECT_EQ(y[6], inf);
  EXPECT_EQ(y[7], 1.f);
  EXPECT_TRUE(std::isnan(y[8]));
  // Every tail length: elements past n are not written.
  for (int64_t n = 0; n <= 35; ++n) {
    std::vector<float> a = random_vec(size_t(n) + 4, uint32_t(n), -5.f, 5.f),
                       b(a.size(), kSentinel);
    vec_exp(a.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_LE(ulp_error(b[size_t(i)], std::exp(double(a[size_t(i)]))), 2.0);
    for (size_t i = size_t(n); i < b.size(); ++i) EXPECT_EQ(b[i], kSentinel);
  }
}

TEST(VecMath, ExpAffineSumAndSoftmaxGrad) {
  for (int64_t n : {1, 15, 16, 17, 40}) {
    std::vector<float> x = random_vec(size_t(n), 7, -3.f, 3.f), y = x;
    float sum = vec_exp_affine_sum(y.data(), n, 0.5f, 0.25f);
    double ref_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      double e = std::exp(0.5 * x[size_t(i)] - 0.25);
      ref_sum += e;
      EXPECT_NEAR(y[size_t(i)], e, 3e-7 * e);
    }
    EXPECT_NEAR(sum, ref_sum, 1e-6 * ref_sum);  // float sum of <= 40 positive terms
    std::vector<float> p = random_vec(size_t(n), 8), d = random_vec(size_t(n), 9), d0 = d;
    vec_softmax_grad(p.data(), d.data(), n, 0.3f, 0.125f);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_FLOAT_EQ(d[size_t(i)], p[size_t(i)] * 0.125f * (d0[size_t(i)] - 0.3f));
    EXPECT_NEAR(
        vec_dot(p.data(), d0.data(), n),
        [&] {
          double s = 0;
          for (int64_t i = 0; i < n; ++i) s += double(p[size_t(i)]) * d0[size_t(i)];
          return s;
        }(),
        1e-5);
  }
}

// ---- attention ------------------------------------------------------------------------

struct AttnCase {
  int64_t B, T, H, P, window, block_q, block_k;
};

std::string name(const AttnCase& c) {
  char buf[128];  // snprintf: GCC 12 gives a false -Wrestrict on chained std::string +
  std::snprintf(buf, sizeof buf, "B%ld_T%ld_H%ld_P%ld_w%s_bq%ld_bk%ld", long(c.B), long(c.T),
                long(c.H), long(c.P), c.window < 0 ? "full" : std::to_string(c.window).c_str(),
                long(c.block_q), long(c.block_k));
  return buf;
}

// q, k, v as slices [v | q | k | pad] of one qkv buffer (the in_proj output layout); o and
// the gradients with their own padding.
struct AttnProblem {
  AttnShape s;
  std::vector<float> qkv, o, lse, dout, dqkv;
  const float* q() const { return qkv.data() + s.H * s.P; }
  const float* k() const { return qkv.data() + 2 * s.H * s.P; }
  const float* v() const { return qkv.data(); }
  float* dq() { return dqkv.data() + s.H * s.P; }
  float* dk() { return dqkv.data() + 2 * s.H * s.P; }
  float* dv() { return dqkv.data(); }

  explicit AttnProblem(const AttnCase& c, uint32_t seed = 1) {
    const int64_t D = c.H * c.P, ld = 3 * D + 5, ldo = D + 3, rows = c.B * c.T;
    s = AttnShape{c.B, c.T, c.H, c.P, c.window, ld, ld, ld, ldo, c.block_q, c.block_k};
    // Scores scale * q.k with q, k uniform(-2, 2): a few units, so softmaxes are peaked
    // enough that max subtraction matters and flat enough that many keys contribute.
    qkv = random_vec(size_t(rows * ld), seed, -2.f, 2.f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c2 = 3 * D; c2 < ld; ++c2) qkv[size_t(r * ld + c2)] = kSentinel;
    o.assign(size_t(rows * ldo), kSentinel);
    dout = random_vec(size_t(rows * ldo), seed + 1);
    lse.assign(size_t(c.B * c.H * c.T), kSentinel);
    dqkv.assign(qkv.size(), kSentinel);
  }
  void forward() { attention_forward(s, q(), k(), v(), o.data(), lse.data()); }
  void backward() {
    attention_backward(s, q(), k(), v(), o.data(), lse.data(), dout.data(), dq(), dk(), dv());
  }
};

const std::vector<AttnCase> kAttnCases = {
    {1, 1, 1, 16, -1, 0, 0},      // T = 1: a single key
    {1, 100, 2, 64, -1, 0, 0},    // T < default blocks
    {1, 300, 2, 64, -1, 0, 0},    // T not a multiple of the default blocks
    {2, 37, 3, 16, -1, 16, 8},    // B > 1, H > 1, many ragged tiles, Bk < Bq
    {1, 45, 2, 24, -1, 8, 16},    // Bk > Bq; P = 24 exercises vector tails
    {2, 40, 2, 16, 0, 16, 8},     // window 0: each query sees only itself
    {1, 70, 2, 32, 5, 16, 8},     // window < block: rows with no visible key in a tile
    {1, 70, 1, 32, 20, 8, 16},    // window spanning several key blocks
    {1, 50, 2, 16, 500, 16, 16},  // window > T: same as full causal
    {1, 300, 2, 64, 100, 0, 0},   // window with default blocks
};

class AttentionTest : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionTest, ForwardMatchesNaive) {
  const AttnCase c = GetParam();
  AttnProblem p(c);
  p.forward();
  const int64_t rows = c.B * c.T, D = c.H * c.P;
  std::vector<float> o_ref(p.o.size(), 0.f), lse_ref(p.lse.size());
  attention_forward_naive(p.s, p.q(), p.k(), p.v(), o_ref.data(), lse_ref.data());
  // o is a convex combination of |v| <= 2 values, accumulated in float (products of <= 256
  // terms, online rescaling): a few float ulps of 2 per step, so 1e-5 absolute leaves a
  // margin of ~10x over the worst observed (~1e-6) yet catches any masking or
  // normalisation error (those are O(1e-2) or more).
  EXPECT_LE(max_abs_diff(p.o.data(), o_ref.data(), rows, D, p.s.ld_o), 1e-5);
  // lse = max + log(sum), |lse| <= ~10 here: 1e-5 is ~10 float ulps at that magnitude.
  EXPECT_LE(max_abs_diff(p.lse.data(), lse_ref.data(), 1, int64_t(p.lse.size()), 0), 1e-5);
  EXPECT_TRUE(padding_intact(p.o, rows, p.s.ld_o, {{0, D}}));
}

TEST_P(AttentionTest, BackwardMatchesNaive) {
  const AttnCase c = GetParam();
  AttnProblem p(c);
  p.forward();
  p.backward();
  const int64_t rows = c.B * c.T, D = c.H * c.P, ld = p.s.ld_q;
  std::vector<float> ref(p.qkv.size(), 0.f);
  attention_backward_naive(p.s, p.q(), p.k(), p.v(), p.dout.data(), ref.data() + D,
                           ref.data() + 2 * D, ref.data());
  for (int64_t part = 0; part < 3; ++part) {
    // Gradients sum up to T products of O(1) values in float: relative error a few 1e-7 of
    // the tensor's largest entry; 2e-5 relative (plus 1e-6 absolute for tiny tensors)
    // leaves room for float accumulation order yet catches a missing or doubled term.
    const double scale = std::max(1.0, max_abs(ref.data(), rows, D, ld, part * D));
    EXPECT_LE(max_abs_diff(p.dqkv.data(), ref.data(), rows, D, ld, part * D), 2e-5 * scale + 1e-6)
        << "part " << part << " (0 v, 1 q, 2 k)";
  }
  EXPECT_TRUE(padding_intact(p.dqkv, rows, ld, {{0, 3 * D}}));
}

TEST_P(AttentionTest, SameBitsForAnyThreadCount) {
  // Every output element is computed by one thread in a fixed order, so the thread count
  // must not change a single bit; a race would.
  const AttnCase c = GetParam();
  AttnProblem a(c), b(c);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  a.forward();
  a.backward();
  omp_set_num_threads(3);
  b.forward();
  b.backward();
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(a.o.data(), b.o.data(), a.o.size() * 4), 0);
  EXPECT_EQ(std::memcmp(a.lse.data(), b.lse.data(), a.lse.size() * 4), 0);
  EXPECT_EQ(std::memcmp(a.dqkv.data(), b.dqkv.data(), a.dqkv.size() * 4), 0);
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionTest, ::testing::ValuesIn(kAttnCases),
                         [](const auto& info) { return name(info.param); });

// Central differences of loss = sum(o * R) (R = dout) with respect to every input entry.
// Inputs O(1), eps = 1e-2: truncation error eps^2/6 * |f'''| ~ 1e-5 * O(10); the loss is
// summed in double from float o, whose rounding noise (~1e-7 per entry, a few hundred entries
// moving) divided by 2 eps gives ~1e-4. Tolerance 1e-3 + 1e-3 |g| covers both with margin
// while a wrong term (O(0.1) or more) fails.
template <class Problem>
void check_fd(Problem& p, std::vector<float>& inputs, const std::vector<float>& grad,
              const std::vector<int64_t>& idx, const std::function<double()>& loss) {
  const float eps = 1e-2f;
  for (int64_t i : idx) {
    const float x0 = inputs[size_t(i)];
    inputs[size_t(i)] = x0 + eps;
    const double lp = loss();
    inputs[size_t(i)] = x0 - eps;
    const double lm = loss();
    inputs[size_t(i)] = x0;
    const double fd = (lp - lm) / (2.0 * eps);
    EXPECT_NEAR(grad[size_t(i)], fd, 1e-3 + 1e-3 * std::fabs(fd)) << "entry " << i;
  }
}

double dot_loss(const std::vector<float>& o, const std::vector<float>& r, int64_t rows,
                int64_t cols, int64_t ld) {
  double l = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < cols; ++c) l += double(o[size_t(i * ld + c)]) * r[size_t(i * ld + c)];
  return l;
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  for (AttnCase c : {AttnCase{1, 13, 2, 8, -1, 4, 4}, AttnCase{2, 11, 1, 8, 3, 4, 2}}) {
    AttnProblem p(c, 5);
    // Softer scores (inputs in (-1, 1)) keep f''' small for the central difference.
    for (float& x : p.qkv)
      if (x != kSentinel) x *= 0.5f;
    p.forward();
    p.backward();
    const int64_t rows = c.B * c.T, D = c.H * c.P;
    std::vector<int64_t> idx;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < 3 * D; ++col) idx.push_back(r * p.s.ld_q + col);
    check_fd(p, p.qkv, p.dqkv, idx, [&] {
      p.forward();
      return dot_loss(p.o, p.dout, rows, D, p.s.ld_o);
    });
  }
}

// ---- RAT inter-chunk attention --------------------------------------------------------

struct RatCase {
  int64_t B, T, H, P, L, G, block_q, block_k;
};

std::string name(const RatCase& c) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "B%ld_T%ld_H%ld_P%ld_L%ld_G%ld_bq%ld_bk%ld", long(c.B), long(c.T),
                long(c.H), long(c.P), long(c.L), long(c.G), long(c.block_q), long(c.block_k));
  return buf;
}

// q: [q | pad] rows of G*P + 3; kt, vt: [kt | vt | pad] rows of 2*H*P + 5; o: H*P + 2.
struct RatProblem {
  RatAttnShape s;
  std::vector<float> q, kv, o, lse, dout, dq, dkv;
  const float* kt() const { return kv.data(); }
  const float* vt() const { return kv.data() + s.H * s.P; }

  explicit RatProblem(const RatCase& c, uint32_t seed = 1) {
    const int64_t D = c.H * c.P, rows = c.B * c.T;
    s = RatAttnShape{c.B,           c.T,       c.H,   c.P,       c.L,      c.G,
                     c.G * c.P + 3, 2 * D + 5, D + 2, c.block_q, c.block_k};
    q = random_vec(size_t(rows * s.ld_q), seed, -2.f, 2.f);
    kv = random_vec(size_t(rows * s.ld_kv), seed + 1, -2.f, 2.f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = c.G * c.P; i < s.ld_q; ++i) q[size_t(r * s.ld_q + i)] = kSentinel;
      for (int64_t i = 2 * D; i < s.ld_kv; ++i) kv[size_t(r * s.ld_kv + i)] = kSentinel;
    }
    o.assign(size_t(rows * s.ld_o), kSentinel);
    dout = random_vec(o.size(), seed + 2);
    lse.assign(size_t(c.B * c.H * c.T), kSentinel);
    dq.assign(q.size(), kSentinel);
    dkv.assign(kv.size(), kSentinel);
  }
  void forward() { rat_attention_forward(s, q.data(), kt(), vt(), o.data(), lse.data()); }
  void backward() {
    rat_attention_backward(s, q.data(), kt(), vt(), o.data(), lse.data(), dout.data(), dq.data(),
                           dkv.data(), dkv.data() + s.H * s.P);
  }
};

const std::vector<RatCase> kRatCases = {
    {1, 5, 2, 16, 16, 1, 0, 0},    // T < L: chunk 0 only, o = vt
    {1, 50, 4, 16, 16, 1, 0, 0},   // ragged last chunk, default blocks, G = 1
    {1, 50, 4, 16, 16, 2, 8, 2},   // G = 2, several query and key blocks
    {2, 61, 8, 8, 4, 4, 16, 4},    // B > 1, G = 4, H = 8, ragged (61 % 4 = 1)
    {1, 40, 2, 24, 1, 1, 8, 8},    // L = 1: attention over earlier tokens; P tail
    {1, 64, 4, 16, 16, 2, 16, 2},  // T a multiple of L
    {1, 300, 4, 64, 3, 2, 0, 0},   // many keys, default blocks (T/L > default Bk)
    {2, 33, 4, 16, 8, 4, 5, 3},    // G = H = 4, blocks not aligned to chunks
};

class RatAttentionTest : public ::testing::TestWithParam<RatCase> {};

TEST_P(RatAttentionTest, ForwardMatchesNaive) {
  const RatCase c = GetParam();
  RatProblem p(c);
  p.forward();
  const int64_t rows = c.B * c.T, D = c.H * c.P;
  std::vector<float> o_ref(p.o.size(), 0.f), lse_ref(p.lse.size());
  rat_attention_forward_naive(p.s, p.q.data(), p.kt(), p.vt(), o_ref.data(), lse_ref.data());
  // Same reasoning as attention's forward: convex combination of |vt| <= 2 in float.
  EXPECT_LE(max_abs_diff(p.o.data(), o_ref.data(), rows, D, p.s.ld_o), 1e-5);
  EXPECT_LE(max_abs_diff(p.lse.data(), lse_ref.data(), 1, int64_t(p.lse.size()), 0), 1e-5);
  EXPECT_TRUE(padding_intact(p.o, rows, p.s.ld_o, {{0, D}}));
  // Chunk 0 has only its own state: o_t = vt_t exactly.
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < std::min(c.L, c.T); ++t)
      for (int64_t i = 0; i < D; ++i)
        ASSERT_EQ(p.o[size_t((b * c.T + t) * p.s.ld_o + i)], p.vt()[(b * c.T + t) * p.s.ld_kv + i]);
}

TEST_P(RatAttentionTest, BackwardMatchesNaiveForAnyThreadCount) {
  // 1 thread, 2 and 3 threads take both dq strategies (owner of a (batch, group), or
  // per-thread dq copies reduced afterwards) depending on B*G; all must agree with the reference.
  const RatCase c = GetParam();
  const int64_t rows = c.B * c.T, D = c.H * c.P;
  RatProblem ref_p(c);
  std::vector<float> rq(ref_p.q.size(), 0.f), rkv(ref_p.kv.size(), 0.f);
  rat_attention_backward_naive(ref_p.s, ref_p.q.data(), ref_p.kt(), ref_p.vt(), ref_p.dout.data(),
                               rq.data(), rkv.data(), rkv.data() + D);
  const int saved = omp_get_max_threads();
  for (int nth : {1, 2, 3}) {
    omp_set_num_threads(nth);
    RatProblem p(c);
    p.forward();
    p.backward();
    // Tolerance as for attention's backward (relative to the largest entry).
    const double sq = std::max(1.0, max_abs(rq.data(), rows, c.G * c.P, p.s.ld_q));
    EXPECT_LE(max_abs_diff(p.dq.data(), rq.data(), rows, c.G * c.P, p.s.ld_q), 2e-5 * sq + 1e-6)
        << nth << " threads";
    for (int64_t part = 0; part < 2; ++part) {
      const double sk = std::max(1.0, max_abs(rkv.data(), rows, D, p.s.ld_kv, part * D));
      EXPECT_LE(max_abs_diff(p.dkv.data(), rkv.data(), rows, D, p.s.ld_kv, part * D),
                2e-5 * sk + 1e-6)
          << nth << " threads, part " << part << " (0 kt, 1 vt)";
    }
    EXPECT_TRUE(padding_intact(p.dq, rows, p.s.ld_q, {{0, c.G * c.P}}));
    EXPECT_TRUE(padding_intact(p.dkv, rows, p.s.ld_kv, {{0, 2 * D}}));
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Cases, RatAttentionTest, ::testing::ValuesIn(kRatCases),
                         [](const auto& info) { return name(info.param); });

TEST(RatAttention, BackwardMatchesFiniteDifferences) {
  // Tolerance and eps as in Attention.BackwardMatchesFiniteDifferences.
  for (RatCase c : {RatCase{1, 11, 4, 8, 3, 2, 4, 2}, RatCase{2, 9, 2, 8, 4, 1, 0, 0}}) {
    RatProblem p(c, 9);
    for (auto* buf : {&p.q, &p.kv})
      for (float& x : *buf)
        if (x != kSentinel) x *= 0.5f;
    p.forward();
    p.backward();
    const int64_t rows = c.B * c.T, D = c.H * c.P;
    auto loss = [&] {
      p.forward();
      return dot_loss(p.o, p.dout, rows, D, p.s.ld_o);
    };
    std::vector<int64_t> iq, ikv;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < c.G * c.P; ++i) iq.push_back(r * p.s.ld_q + i);
      for (int64_t i = 0; i < 2 * D; ++i) ikv.push_back(r * p.s.ld_kv + i);
    }
    check_fd(p, p.q, p.dq, iq, loss);
    check_fd(p, p.kv, p.dkv, ikv, loss);
  }
}

TEST(RatAttention, LseIncludesOwnState) {
  // T < L: the softmax has the own-state term only, so lse = scale * q.kt exactly in the
  // reference; the kernel's float dot product must agree to float rounding.
  RatProblem p(RatCase{1, 4, 2, 16, 8, 1, 0, 0});
  p.forward();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t t = 0; t < 4; ++t) {
      double d = 0;
      for (int64_t i = 0; i < 16; ++i)
        d += double(p.q[size_t(t * p.s.ld_q + i)]) * p.kt()[t * p.s.ld_kv + h * 16 + i];
      EXPECT_NEAR(p.lse[size_t(h * 4 + t)], d / 4.0, 1e-5);
    }
}

}  // namespace
}  // namespace rat
