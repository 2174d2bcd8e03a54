// Numerical health at the edges (docs/reliability.md "Numerical health"): every
// mixer's forward, backward, prefill and decode step at a long sequence, gates
// saturated by biases of +-30, the fused head's cross-entropy on logits of
// +-1e4, the norms on zero and constant rows, and softmaxes over rows with
// -inf entries, in float32 and bfloat16 products. Each output and gradient must
// be finite, and not all zero where a zero would hide a failure (a kernel that
// bails out). Where the right value is known by hand it is checked too.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "generate/sampling.h"
#include "kernels/activations.h"
#include "kernels/cross_entropy.h"
#include "kernels/layernorm.h"
#include "kernels/rmsnorm.h"
#include "model/model.h"

namespace rat {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Counts of the non-finite and the non-zero entries of v[0, n).
struct Health {
  int64_t bad = 0, nonzero = 0, first_bad = -1;
};
Health health(const float* v, int64_t n) {
  Health h;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) {
      if (h.bad++ == 0) h.first_bad = i;
    } else if (v[i] != 0.f) {
      ++h.nonzero;
    }
  }
  return h;
}

// Finite everywhere, and (unless zero_ok) some entry non-zero.
::testing::AssertionResult finite(const float* v, int64_t n, const std::string& what,
                                  bool zero_ok = false) {
  const Health h = health(v, n);
  if (h.bad)
    return ::testing::AssertionFailure()
           << what << ": " << h.bad << " of " << n << " entries not finite, first at "
           << h.first_bad << " = " << v[h.first_bad];
  if (!zero_ok && h.nonzero == 0)
    return ::testing::AssertionFailure() << what << ": all " << n << " entries are zero";
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult finite(const std::vector<float>& v, const std::string& what,
                                  bool zero_ok = false) {
  return finite(v.data(), int64_t(v.size()), what, zero_ok);
}

const char* prec_name(Precision p) { return p == Precision::kBF16 ? "bf16" : "f32"; }

// ---------------------------------------------------------------------------
// Whole models: one mixer layer and an FFN, D 16, P 8 (2 heads), vocabulary 32.

enum class Gates { kInit, kPlus30, kMinus30, kAlternate };

ModelConfig one_layer(MixerKind kind, int64_t T) {
  ModelConfig c;
  c.vocab_size = 32;
  c.d_model = 16;
  c.num_layers = 1;
  c.seq_len = T + 1;  // rope tables and the decode state reach position T
  c.ffn.d_ffn = 32;
  c.pe = PosEnc::kRopeInterRope;
  // rat: L 16, 2 groups (T / 16 chunk states per query); local_attention:
  // window 64.
  c.seq_cell = {kind, 8, 2, 16, 64};
  c.resolve("test");
  return c;
}

std::vector<int32_t> ids_of(int64_t n, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& i : ids) i = int32_t(rng() % uint32_t(V));
  return ids;
}

// Trains (forward + backward), prefills T tokens and takes one decode step at
// position T, checking the loss, every gradient tensor, and both logits rows.
void check_model(MixerKind kind, int64_t T, Precision prec, Gates gates) {
  const ModelConfig cfg = one_layer(kind, T);
  Model m(cfg);
  m.init(7);
  m.set_precision(prec);
  const int64_t D = cfg.d_model, V = cfg.vocab_size;
  if (float* gb = m.weights().layers[0].gate_bias; gb && gates != Gates::kInit) {
    // g = sigmoid(g_pre + bias): +30 keeps the state (1 - g ~ 1e-13: the
    // input barely enters), -30 forgets it (g ~ 1e-13). A scan written with
    // cumulative products of g, or dividing by g or 1 - g, overflows here.
    for (int64_t d = 0; d < D; ++d)
      gb[d] = gates == Gates::kPlus30    ? 30.f
              : gates == Gates::kMinus30 ? -30.f
                                         : (d % 2 ? 30.f : -30.f);
  }
  const std::vector<int32_t> ids = ids_of(T + 1, V, 11);
  const std::vector<int32_t> labels(ids.begin() + 1, ids.end());

  m.zero_grads();
  const CeResult r = m.forward_backward(ids.data(), labels.data(), 1, T, true);
  ASSERT_EQ(r.count, T);
  ASSERT_TRUE(std::isfinite(r.loss_sum)) << r.loss_sum;
  // Near ln 32 = 3.47 per token at init; an O(1) slack catches a blown-up forward.
  EXPECT_LT(std::fabs(r.loss_sum / double(T) - std::log(double(V))), 1.5) << r.loss_sum / T;
  for (const ParamSpec& s : m.layout().specs()) {
    // A gate bias of +-30 leaves its gradient at sigmoid'(30) ~ 1e-13 of the
    // others': it may underflow to zero, and only has to be finite. With +30
    // on every channel, g = 1 / (1 + e^-30) rounds to exactly 1 in float32
    // (as in torch): 1 - g = 0, the states stay 0 and nothing reaches the
    // mixer's tensors, whose gradients are then exactly 0 (the FFN's are not).
    const bool mixer = s.name.find("seq_layer") != std::string::npos;
    const bool zero_ok = (gates != Gates::kInit && s.name.find("gate_bias") != std::string::npos) ||
                         (gates == Gates::kPlus30 && mixer);
    EXPECT_TRUE(finite(m.grads() + s.offset, s.numel, "grad " + s.name, zero_ok));
  }

  auto st = m.make_decode_state(1, T + 1, prec == Precision::kBF16);
  std::vector<float> lp(static_cast<size_t>(V)), ls(static_cast<size_t>(V));
  m.prefill(ids.data(), T, *st, 0, lp.data());
  EXPECT_TRUE(finite(lp, "prefill logits"));
  const int64_t slot = 0, pos = T;
  m.step(&ids[size_t(T)], &slot, &pos, 1, *st, ls.data());
  EXPECT_TRUE(finite(ls, "step logits at position T"));
}

struct LongCase {
  MixerKind kind;
  int64_t T;
  Precision prec;
  Gates gates;
};

class EdgeLong : public ::testing::TestWithParam<LongCase> {};

TEST_P(EdgeLong, TrainPrefillStepFinite) {
  const LongCase& c = GetParam();
  check_model(c.kind, c.T, c.prec, c.gates);
}

std::string long_name(const ::testing::TestParamInfo<LongCase>& i) {
  const char* k[] = {"rat", "attention", "local_attention", "rnn", "identity"};
  const char* g[] = {"init", "plus30", "minus30", "alternate"};
  return std::string(k[int(i.param.kind)]) + "_T" + std::to_string(i.param.T) + "_" +
         prec_name(i.param.prec) + "_" + g[int(i.param.gates)];
}

// The long sequences: 32K tokens for the linear-cost mixers; full attention
// (O(T^2): 32K would take a minute here) at 16K in float32 and 8K in bf16,
// whose products are the same kernels with rounded operands.
INSTANTIATE_TEST_SUITE_P(
    Long, EdgeLong,
    ::testing::Values(LongCase{MixerKind::kRat, 32768, Precision::kF32, Gates::kInit},
                      LongCase{MixerKind::kRat, 32768, Precision::kBF16, Gates::kInit},
                      LongCase{MixerKind::kRnn, 32768, Precision::kF32, Gates::kInit},
                      LongCase{MixerKind::kRnn, 32768, Precision::kBF16, Gates::kInit},
                      LongCase{MixerKind::kLocalAttention, 32768, Precision::kF32, Gates::kInit},
                      LongCase{MixerKind::kLocalAttention, 32768, Precision::kBF16, Gates::kInit},
                      LongCase{MixerKind::kAttention, 16384, Precision::kF32, Gates::kInit},
                      LongCase{MixerKind::kAttention, 8192, Precision::kBF16, Gates::kInit}),
    long_name);

// Saturated gates, each sign alone and both at once (alternate channels).
INSTANTIATE_TEST_SUITE_P(
    Gates, EdgeLong,
    ::testing::Values(LongCase{MixerKind::kRat, 4096, Precision::kF32, Gates::kPlus30},
                      LongCase{MixerKind::kRat, 4096, Precision::kF32, Gates::kMinus30},
                      LongCase{MixerKind::kRat, 32768, Precision::kBF16, Gates::kAlternate},
                      LongCase{MixerKind::kRnn, 4096, Precision::kF32, Gates::kPlus30},
                      LongCase{MixerKind::kRnn, 4096, Precision::kF32, Gates::kMinus30},
                      LongCase{MixerKind::kRnn, 32768, Precision::kBF16, Gates::kAlternate}),
    long_name);

// With the gates shut (+30: the state keeps its zero start, 1 - g ~ 1e-13), a
// RAT or RNN mixer adds almost nothing: the model is the FFN alone, so its
// logits do not depend on earlier tokens. Hand-derived value: position t's
// logits equal those of token t scored alone.
TEST(EdgeFinite, ShutGatesLeaveTheTokenAlone) {
  for (MixerKind kind : {MixerKind::kRat, MixerKind::kRnn}) {
    SCOPED_TRACE(kind == MixerKind::kRat ? "rat" : "rnn");
    const ModelConfig cfg = one_layer(kind, 64);
    Model m(cfg);
    m.init(5);
    float* gb = m.weights().layers[0].gate_bias;
    for (int64_t d = 0; d < cfg.d_model; ++d) gb[d] = 30.f;
    const int64_t T = 40, V = cfg.vocab_size;
    const std::vector<int32_t> ids = ids_of(T, V, 3);
    std::vector<float> all(static_cast<size_t>(T * V)), one(static_cast<size_t>(V));
    m.logits(ids.data(), 1, T, all.data());
    for (int64_t t : {int64_t(0), int64_t(17), T - 1}) {
      m.logits(&ids[size_t(t)], 1, 1, one.data());
      for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(all[size_t(t * V + v)], one[size_t(v)], 1e-5);
    }
  }
}

// A micro-batch whose every label is ignored (an SFT row that is all prompt):
// the mean's 1 / count would be 1 / 0; the loss and gradients must stay 0.
TEST(EdgeFinite, EveryLabelIgnored) {
  const ModelConfig cfg = one_layer(MixerKind::kRat, 64);
  Model m(cfg);
  m.init(9);
  const std::vector<int32_t> ids = ids_of(64, cfg.vocab_size, 2), labels(64, -100);
  m.zero_grads();
  const CeResult r = m.forward_backward(ids.data(), labels.data(), 1, 64, true);
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.loss_sum, 0.0);
  const int64_t n = m.layout().total();
  EXPECT_TRUE(finite(m.grads(), n, "grads", /*zero_ok=*/true));
  EXPECT_EQ(health(m.grads(), n).nonzero, 0);
}

// ---------------------------------------------------------------------------
// The fused head + cross-entropy on huge logits.

// hf [3, 2], W [V, 2] with V 8: hf row n = (100, 0), W row v = (+-100, 3), so
// logits are exactly +-1e4 (100 and 1e4 are exact in bf16 products too, and
// the f32 accumulation of 1e4 + 0 is exact).
//   row 0: label 0 on the only +1e4 logit             -> loss 0 (others' exp(-2e4) = 0)
//   row 1: label 3 on a -1e4 logit, one +1e4 logit    -> loss 2e4
//   row 2: every logit +1e4 (a row of huge equal ones) -> loss ln 8
TEST(EdgeFinite, CrossEntropyOnLogitsOfTenThousand) {
  const int64_t N = 3, D = 2, V = 8;
  for (Precision prec : {Precision::kF32, Precision::kBF16}) {
    SCOPED_TRACE(prec_name(prec));
    // Rows 0-1 use W_a (logit +1e4 at id 0 only), row 2 uses W_b (all +1e4):
    // the kernel takes one W, so the rows run as two calls.
    std::vector<float> Wa(static_cast<size_t>(V * D)), Wb(static_cast<size_t>(V * D));
    for (int64_t v = 0; v < V; ++v) {
      Wa[size_t(v * D)] = v == 0 ? 100.f : -100.f;
      Wb[size_t(v * D)] = 100.f;
      Wa[size_t(v * D + 1)] = Wb[size_t(v * D + 1)] = 3.f;
    }
    const std::vector<float> hf = {100.f, 0.f, 100.f, 0.f, 100.f, 0.f};
    const std::vector<int32_t> la = {0, 3}, lb = {5};
    std::vector<float> dhf(static_cast<size_t>(N * D), -1.f), dWa(static_cast<size_t>(V * D), 0.f),
        dWb(static_cast<size_t>(V * D), 0.f);
    const CeResult a = lm_head_cross_entropy(hf.data(), Wa.data(), la.data(), 2, D, V, -100, prec,
                                             1.f, dhf.data(), dWa.data());
    const CeResult b = lm_head_cross_entropy(hf.data() + 2 * D, Wb.data(), lb.data(), 1, D, V, -100,
                                             prec, 1.f, dhf.data() + 2 * D, dWb.data());
    ASSERT_EQ(a.count, 2);
    ASSERT_EQ(b.count, 1);
    EXPECT_NEAR(a.loss_sum, 2e4, 1e-2);  // 0 + 2e4
    EXPECT_NEAR(b.loss_sum, std::log(8.0), 1e-5);
    EXPECT_TRUE(finite(dhf, "dhf"));
    EXPECT_TRUE(finite(dWa, "dW (+-1e4 rows)"));
    EXPECT_TRUE(finite(dWb, "dW (equal row)", /*zero_ok=*/false));
    // Row 0 is certain and right: its gradient is 0. Row 1 puts all mass on
    // id 0 against label 3: dlogits = e_0 - e_3, so dhf = W[0] - W[3] = (200, 0).
    EXPECT_NEAR(dhf[0], 0.f, 1e-6);
    EXPECT_NEAR(dhf[1], 0.f, 1e-6);
    EXPECT_NEAR(dhf[2], 200.f, 1e-3);
    EXPECT_NEAR(dhf[3], 0.f, 1e-3);
    // Row 2 (uniform, label 5): dlogits = 1/8 - e_5; W's rows are equal, so dhf = 0.
    EXPECT_NEAR(dhf[4], 0.f, 1e-3);
    EXPECT_NEAR(dhf[5], 0.f, 1e-4);
    // ... and dW row v = dlogits_v * hf: 1/8 * 100 = 12.5, row 5: -7/8 * 100.
    EXPECT_NEAR(dWb[0], 12.5f, 1e-3);
    EXPECT_NEAR(dWb[size_t(5 * D)], -87.5f, 1e-3);

    // Logits themselves, through the same product.
    std::vector<float> logits(static_cast<size_t>(V));
    lm_head_logits(hf.data(), Wa.data(), logits.data(), 1, D, V, prec);
    EXPECT_EQ(logits[0], 1e4f);
    EXPECT_EQ(logits[1], -1e4f);
  }
}

// ---------------------------------------------------------------------------
// Norms on a zero row (rstd = 1/sqrt(eps) = 1000) and on constant rows (a
// layernorm variance computed as E[x^2] - E[x]^2 can come out negative there
// and its sqrt NaN).

TEST(EdgeFinite, RmsNormZeroAndConstantRows) {
  const int64_t D = 96;
  // Rows: zero, constant 3.7, constant 1e4 (x^2 1e8, mean exact enough).
  const float consts[] = {0.f, 3.7f, 1e4f};
  const int64_t N = 3;
  std::vector<float> x(static_cast<size_t>(N * D)), w(static_cast<size_t>(D)),
      dy(static_cast<size_t>(N * D));
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) x[size_t(n * D + d)] = consts[n];
  for (auto& v : w) v = 1.f + 0.1f * nd(rng);
  for (auto& v : dy) v = nd(rng);
  std::vector<float> y(static_cast<size_t>(N * D)), rstd(static_cast<size_t>(N)),
      dx(static_cast<size_t>(N * D), 0.f), dw(static_cast<size_t>(D), 0.f);
  rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), N, D);
  rmsnorm_backward(dy.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, D);
  EXPECT_TRUE(finite(y, "rmsnorm y"));
  EXPECT_TRUE(finite(rstd, "rmsnorm rstd"));
  EXPECT_TRUE(finite(dx, "rmsnorm dx"));
  EXPECT_TRUE(finite(dw, "rmsnorm dw"));
  // Zero row: y = 0, rstd = 1/sqrt(1e-6), dx = rstd * w * dy (the x term vanishes).
  EXPECT_NEAR(rstd[0], 1000.f, 0.01f);
  for (int64_t d = 0; d < D; ++d) {
    EXPECT_EQ(y[size_t(d)], 0.f);
    EXPECT_NEAR(dx[size_t(d)], 1000.f * w[size_t(d)] * dy[size_t(d)],
                1e-3f * std::fabs(1000.f * w[size_t(d)] * dy[size_t(d)]) + 1e-3f);
  }
  // Constant rows: y = w * c / sqrt(c^2 + eps) ~ w.
  for (int64_t n = 1; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) EXPECT_NEAR(y[size_t(n * D + d)], w[size_t(d)], 1e-4f) << n;
}

TEST(EdgeFinite, LayerNormZeroAndConstantRows) {
  const int64_t D = 768;
  // 0.1 and 1234.567 are not exact in binary: the mean of D copies is off the
  // value by rounding, so x - mean is tiny but not zero, and a variance by
  // E[x^2] - E[x]^2 (1.5e6 - 1.5e6) cancels catastrophically.
  const float consts[] = {0.f, 0.1f, 1234.567f, -3.0e4f};
  const int64_t N = 4;
  std::vector<float> x(static_cast<size_t>(N * D)), w(static_cast<size_t>(D)),
      b(static_cast<size_t>(D)), dy(static_cast<size_t>(N * D));
  std::mt19937 rng(4);
  std::normal_distribution<float> nd;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) x[size_t(n * D + d)] = consts[n];
  for (auto& v : w) v = 1.f + 0.1f * nd(rng);
  for (auto& v : b) v = 0.1f * nd(rng);
  for (auto& v : dy) v = nd(rng);
  std::vector<float> y(static_cast<size_t>(N * D)), mean(static_cast<size_t>(N)),
      rstd(static_cast<size_t>(N));
  std::vector<float> dx(static_cast<size_t>(N * D), 0.f), dw(static_cast<size_t>(D), 0.f),
      db(static_cast<size_t>(D), 0.f);
  layernorm_forward(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), N, D);
  layernorm_backward(dy.data(), x.data(), w.data(), mean.data(), rstd.data(), dx.data(), dw.data(),
                     db.data(), N, D);
  EXPECT_TRUE(finite(y, "layernorm y"));
  EXPECT_TRUE(finite(rstd, "layernorm rstd"));
  EXPECT_TRUE(finite(dx, "layernorm dx"));
  EXPECT_TRUE(finite(dw, "layernorm dw", /*zero_ok=*/true));  // x - mean ~ 0: dw ~ 0
  EXPECT_TRUE(finite(db, "layernorm db"));
  // Every row is constant, so y = (x - m) r w + b with x - m = delta, the
  // rounding of the float mean m, and r = 1 / sqrt(delta^2 + eps):
  // |y - b| = |w| |delta| r <= |w| min(1000 |delta|, 1). A float sum of D
  // copies of c is off by at most (D - 1) u D |c| (u = 2^-24) in whatever order
  // it adds, so delta <= D u |c| with the division's rounding: 4.6e-6 for 0.1.
  // The order is the compiler's (an `omp simd` reduction is a hint): the
  // 64-ulp bound this test had held for GCC -O3's vector sum, but clang -O1
  // (the sanitizer tree) adds one by one and was 105 ulp off for 0.1. Rows 0
  // and 0.1: y = b within 1000 D u |c| |w|; the large rows only within |w|.
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const float order_free = 1000.f * float(D) * 0x1p-24f * std::fabs(consts[n]);
      const float tol = (n < 2 ? order_free : 1.f) * std::fabs(w[size_t(d)]) + 1e-6f;
      ASSERT_NEAR(y[size_t(n * D + d)], b[size_t(d)], tol)
          << "row " << n << " (" << consts[n] << ")";
    }
  // Zero row: dx = rstd * (w dy - mean(w dy)) with rstd = 1000 (xhat = 0).
  double mwdy = 0;
  for (int64_t d = 0; d < D; ++d) mwdy += double(w[size_t(d)]) * dy[size_t(d)];
  mwdy /= double(D);
  for (int64_t d = 0; d < D; ++d) {
    const double want = 1000.0 * (double(w[size_t(d)]) * dy[size_t(d)] - mwdy);
    EXPECT_NEAR(dx[size_t(d)], want, 1e-3 * std::fabs(want) + 1e-2) << d;
  }
}

// ---------------------------------------------------------------------------
// Softmax over rows with -inf entries: the FFN's softmax activation (masked
// entries get probability 0, the rest renormalise), its backward, and the
// sampler's distribution over logits with banned (-inf) tokens.

TEST(EdgeFinite, SoftmaxWithMinusInfEntries) {
  const int64_t N = 3, F = 6;
  // Row 0: one live entry; row 1: two live entries of equal value 1e4 (so
  // an unsubtracted exp would overflow); row 2: -inf at both ends.
  const std::vector<float> h = {-kInf, -kInf, 2.f,   -kInf, -kInf, -kInf,  //
                                1e4f,  -kInf, -kInf, 1e4f,  -kInf, -kInf,  //
                                -kInf, 0.f,   1.f,   2.f,   3.f,   -kInf};
  std::vector<float> a(static_cast<size_t>(N * F)), dh(static_cast<size_t>(N * F));
  activation_forward(Activation::kSoftmax, h.data(), a.data(), N, F);
  EXPECT_TRUE(finite(a, "softmax"));
  const std::vector<float> want0 = {0, 0, 1, 0, 0, 0}, want1 = {0.5f, 0, 0, 0.5f, 0, 0};
  for (int64_t f = 0; f < F; ++f) {
    EXPECT_EQ(a[size_t(f)], want0[size_t(f)]) << f;
    EXPECT_NEAR(a[size_t(F + f)], want1[size_t(f)], 1e-7) << f;
  }
  EXPECT_EQ(a[size_t(2 * F)], 0.f);
  EXPECT_EQ(a[size_t(3 * F - 1)], 0.f);
  // Live entries of row 2: exp(k) / (1 + e + e^2 + e^3).
  const double z = 1 + std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  for (int64_t k = 0; k < 4; ++k)
    EXPECT_NEAR(a[size_t(2 * F + 1 + k)], std::exp(double(k)) / z, 1e-6);

  std::vector<float> da(static_cast<size_t>(N * F));
  std::mt19937 rng(6);
  std::normal_distribution<float> nd;
  for (auto& v : da) v = nd(rng);
  activation_backward(Activation::kSoftmax, h.data(), da.data(), dh.data(), N, F);
  EXPECT_TRUE(finite(dh, "softmax backward"));
  // Masked entries have p = 0, so their gradient p (da - sum p da) is 0.
  EXPECT_EQ(dh[0], 0.f);
  EXPECT_EQ(dh[size_t(F + 1)], 0.f);

  // The sampler: tokens banned with -inf, and a row whose top logits are 1e4.
  SamplingOptions o;
  o.temperature = 0.7f;
  TokenSampler s(o, F, 1);
  for (int64_t n = 0; n < N; ++n) {
    SCOPED_TRACE("row " + std::to_string(n));
    const auto& c = s.candidates(h.data() + n * F);
    double sum = 0;
    for (const auto& [id, p] : c) {
      EXPECT_TRUE(std::isfinite(p));
      EXPECT_TRUE(std::isfinite(h[size_t(n * F + id)]) || p == 0.f) << "banned id " << id;
      sum += p;
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
}

}  // namespace
}  // namespace rat
