// Model's forward modes (src/model/model.h): kScore computes what kTrain
// computes, bit for bit (the same kernels in the same order; only where the
// intermediates live differs), while keeping one layer's activations whatever
// the depth; kPrefill leaves the generation state that export_state lifts out
// of a training forward. And the DecodeState: one entry per layer of a kind,
// one step scratch for all layers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/decode_state.h"
#include "model/model.h"
#include "model_cases.h"
#include "test_util.h"
#include "util/error.h"

namespace rat {
namespace {
using rat::testing::max_or_nan;

using testing::ids_of;
using Case = testing::ModelCase;

MixerConfig cell(MixerKind kind, int64_t L = 4, int64_t window = 0) {
  return testing::small_cell(kind, L, window);
}
ModelConfig config(const MixerConfig& m, int64_t layers, const MixerConfig* cell1 = nullptr) {
  return testing::small_config(m, layers, cell1);
}
std::unique_ptr<Model> model_of(const ModelConfig& cfg, uint64_t seed = 3) {
  return testing::scaled_model(cfg, seed);
}
std::vector<Case> cases() { return testing::mixer_cases(2); }

TEST(ModelModes, ScoreEqualsTrainBitForBit) {
  const int64_t B = 2, T = 13;
  for (const Case& c : cases())
    for (Precision prec : {Precision::kF32, Precision::kBF16}) {
      auto m = model_of(c.cfg);
      m->set_precision(prec);
      const int64_t V = c.cfg.vocab_size;
      const auto ids = ids_of(B * T, V, 5), labels = ids_of(B * T, V, 6);
      std::vector<float> a(size_t(B * T * V)), b(a.size());
      m->logits(ids.data(), B, T, a.data(), Model::Mode::kTrain);
      m->logits(ids.data(), B, T, b.data(), Model::Mode::kScore);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
          << c.name << " " << precision_name(prec);
      const CeResult train = m->forward_backward(ids.data(), labels.data(), B, T, true);
      const CeResult score = m->score(ids.data(), labels.data(), B, T);
      EXPECT_EQ(train.loss_sum, score.loss_sum) << c.name << " " << precision_name(prec);
      EXPECT_EQ(train.count, score.count);
      EXPECT_GT(score.loss_sum, 0.0);
    }
}

TEST(ModelModes, ScoreKeepsOneLayerWhateverTheDepth) {
  const int64_t B = 2, T = 16;
  for (const Case& c : cases()) {
    ModelConfig deep = c.cfg;
    deep.num_layers = 6;
    deep.resolve("test");
    auto shallow = model_of(c.cfg), tall = model_of(deep);
    const auto ids = ids_of(B * T, c.cfg.vocab_size, 7);
    shallow->score(ids.data(), ids.data(), B, T);
    tall->score(ids.data(), ids.data(), B, T);
    // No block keeps anything, and the shared scratch and two residual
    // streams do not grow with the layers.
    for (size_t i = 0; i < deep.layers.size(); ++i) {
      EXPECT_EQ(tall->mixer(i).activation_bytes(), 0) << c.name << " layer " << i;
      EXPECT_EQ(tall->ffn(i).activation_bytes(), 0) << c.name << " layer " << i;
    }
    EXPECT_EQ(tall->activation_bytes(), shallow->activation_bytes()) << c.name;
    // Training the same shape keeps every layer: more than scoring, by at
    // least the four extra layers' residual streams.
    auto trained = model_of(deep);
    trained->forward_backward(ids.data(), ids.data(), B, T, true);
    EXPECT_GT(trained->activation_bytes(),
              tall->activation_bytes() + 8 * B * T * deep.d_model * int64_t(sizeof(float)))
        << c.name;
  }
}

TEST(ModelModes, BackwardAfterScoringIsRefused) {
  auto m = model_of(cases()[0].cfg);
  const int64_t T = 8, D = m->config().d_model;
  std::vector<float> x(size_t(T * D), 0.5f), y(x.size()), dx(x.size(), 1.f);
  m->mixer(0).forward(x.data(), y.data(), 1, T, false);
  EXPECT_THROW(m->mixer(0).backward(x.data(), dx.data(), 1, T), Error);
  m->ffn(0).forward(x.data(), y.data(), 1, T, false);
  EXPECT_THROW(m->ffn(0).backward(x.data(), dx.data(), 1, T), Error);
}

void expect_same(const KvRows& a, const KvRows& b, const std::string& what) {
  EXPECT_EQ(a.k, b.k) << what;
  EXPECT_EQ(a.v, b.v) << what;
  EXPECT_EQ(a.k16, b.k16) << what;
  EXPECT_EQ(a.v16, b.v16) << what;
}

TEST(ModelModes, PrefillStateEqualsExportAfterTrainForward) {
  // Lengths ending inside a chunk, on its end, and past the local window.
  for (const Case& c : cases())
    for (int64_t n : {1, 7, 8, 11})
      for (bool bf16 : {false, true}) {
        auto m = model_of(c.cfg);
        const int64_t V = c.cfg.vocab_size, S = 2, slot = 1, Tmax = 12;
        const auto ids = ids_of(n, V, 9);
        auto pre = m->make_decode_state(S, Tmax, bf16);
        auto exp = m->make_decode_state(S, Tmax, bf16);
        std::vector<float> last(static_cast<size_t>(V)), all(static_cast<size_t>(n * V));
        m->prefill(ids.data(), n, *pre, slot, last.data());
        // A training forward keeps every layer's intermediates: each mixer's
        // export then reads its own.
        m->logits(ids.data(), 1, n, all.data(), Model::Mode::kTrain);
        for (size_t i = 0; i < c.cfg.layers.size(); ++i) m->mixer(i).export_state(*exp, slot, n);
        const std::string what = c.name + " n=" + std::to_string(n) + (bf16 ? " bf16" : "");
        // The head over one row against over n rows: GEMM blocking differs,
        // so a few ulps (see test_generate.cc for the 2e-5 bound).
        double err = 0, top = 0;
        for (int64_t v = 0; v < V; ++v) {
          err = max_or_nan(err, std::fabs(double(last[size_t(v)]) - all[size_t((n - 1) * V + v)]));
          top = max_or_nan(top, std::fabs(double(all[size_t((n - 1) * V + v)])));
        }
        EXPECT_LE(err, 2e-5 * top) << what;
        ASSERT_EQ(pre->rat.size(), exp->rat.size());
        for (size_t i = 0; i < pre->rat.size(); ++i) {
          expect_same(pre->rat[i].kv, exp->rat[i].kv, what + " rat kv");
          EXPECT_EQ(pre->rat[i].run_k, exp->rat[i].run_k) << what;
          EXPECT_EQ(pre->rat[i].run_v, exp->rat[i].run_v) << what;
        }
        for (size_t i = 0; i < pre->attention.size(); ++i)
          expect_same(pre->attention[i].kv, exp->attention[i].kv, what + " attention");
        for (size_t i = 0; i < pre->local.size(); ++i)
          expect_same(pre->local[i].kv, exp->local[i].kv, what + " local");
        for (size_t i = 0; i < pre->rnn.size(); ++i)
          EXPECT_EQ(pre->rnn[i].h, exp->rnn[i].h) << what;
        EXPECT_GT(pre->cache_bytes(), 0) << what;
      }
}

TEST(DecodeStateTest, OneEntryPerLayerOfItsKind) {
  // Hybrid of 5 layers: rat (seq_cell1) on 0, 2, 4; local attention on 1, 3.
  const MixerConfig rat = cell(MixerKind::kRat, 4);
  auto m = model_of(config(cell(MixerKind::kLocalAttention, 4, 5), 5, &rat));
  const int64_t S = 3, Tmax = 20, D = 32;
  auto st = m->make_decode_state(S, Tmax);
  ASSERT_EQ(st->rat.size(), 3u);
  ASSERT_EQ(st->local.size(), 2u);
  EXPECT_TRUE(st->attention.empty());
  EXPECT_TRUE(st->rnn.empty());
  const int64_t f = sizeof(float), C = 5, R = 6;  // C = ceil(20 / 4), R = window + 1
  EXPECT_EQ(st->rat[2].cache_bytes(), (2 * S * C * D + 2 * S * D) * f);
  EXPECT_EQ(st->local[1].cache_bytes(), 2 * S * R * D * f);
  EXPECT_EQ(st->cache_bytes(), 3 * st->rat[0].cache_bytes() + 2 * st->local[0].cache_bytes());
}

TEST(DecodeStateTest, OneStepScratchForAllLayers) {
  // Adding layers adds their caches and nothing else: the scratch is sized
  // once, for the largest layer.
  for (const Case& c : cases()) {
    ModelConfig deep = c.cfg;
    deep.num_layers = 7;
    deep.resolve("test");
    auto a = model_of(c.cfg), b = model_of(deep);
    auto sa = a->make_decode_state(4, 40), sb = b->make_decode_state(4, 40);
    EXPECT_GT(sa->bytes(), sa->cache_bytes()) << c.name;
    EXPECT_EQ(sb->bytes() - sb->cache_bytes(), sa->bytes() - sa->cache_bytes()) << c.name;
    EXPECT_GT(sb->cache_bytes(), sa->cache_bytes()) << c.name;
  }
}

TEST(DecodeStateTest, FillRandomFillsEveryCache) {
  const MixerConfig rat = cell(MixerKind::kRat, 4);
  for (bool bf16 : {false, true}) {
    auto m = model_of(config(cell(MixerKind::kAttention), 3, &rat));
    auto st = m->make_decode_state(2, 16, bf16);
    // In [-1, 1) (bf16 rounding may reach 1).
    auto check = [&](const std::vector<float>& v, const std::string& what) {
      double lo = 1, hi = -1;
      for (float x : v) lo = std::min<double>(lo, x), hi = std::max<double>(hi, x);
      EXPECT_GE(lo, -1.0) << what;
      EXPECT_LE(hi, 1.0) << what;
      EXPECT_GT(hi - lo, 1.0) << what;  // spread, not a constant
    };
    auto widen = [](const std::vector<uint16_t>& v) {
      std::vector<float> f(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        const uint32_t bits = uint32_t(v[i]) << 16;
        std::memcpy(&f[i], &bits, 4);
      }
      return f;
    };
    st->fill_random(1);
    for (const RatState& r : st->rat) {
      check(bf16 ? widen(r.kv.k16) : r.kv.k, "rat k");
      check(bf16 ? widen(r.kv.v16) : r.kv.v, "rat v");
      check(r.run_k, "rat run_k");
      check(r.run_v, "rat run_v");
      EXPECT_NE(r.run_k, r.run_v);  // a different stream per buffer
    }
    for (const KvState& k : st->attention) check(bf16 ? widen(k.kv.k16) : k.kv.k, "attention k");
    EXPECT_NE(st->rat[0].run_k, st->rat[1].run_k);
  }
}

TEST(ModelModes, LabelLogProbsMatchLogSoftmaxAndLoss) {
  const Case c = cases()[4];
  auto m = model_of(c.cfg);
  const int64_t B = 2, T = 150, V = c.cfg.vocab_size, N = B * T;  // N > one block of rows
  const auto ids = ids_of(N, V, 11);
  auto labels = ids_of(N, V, 12);
  labels[3] = -100;
  std::vector<float> lp(static_cast<size_t>(N)), logits(static_cast<size_t>(N * V));
  m->label_log_probs(ids.data(), labels.data(), B, T, lp.data());
  m->logits(ids.data(), B, T, logits.data());
  double nll = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (labels[size_t(r)] == -100) {
      EXPECT_EQ(lp[size_t(r)], 0.f);
      continue;
    }
    double mx = -1e30, sum = 0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(logits[size_t(r * V + v)]));
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(logits[size_t(r * V + v)]) - mx);
    const double want = double(logits[size_t(r * V + labels[size_t(r)])]) - mx - std::log(sum);
    EXPECT_NEAR(lp[size_t(r)], want, 1e-5 * (1 + std::fabs(want))) << "row " << r;
    nll -= lp[size_t(r)];
  }
  const CeResult ce = m->score(ids.data(), labels.data(), B, T);
  EXPECT_EQ(ce.count, N - 1);
  EXPECT_NEAR(nll, ce.loss_sum, 1e-5 * ce.loss_sum);
}

}  // namespace
}  // namespace rat
