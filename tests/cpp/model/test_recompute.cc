// Activation recomputation (Model::set_recompute, trainer.activation_checkpointing):
// a block that recomputes runs the same code on the same input again right
// before its backward, so loss and gradients must equal those of a model
// that kept everything bit for bit (memcmp), for every mixer kind, with
// dropout on, in f32 and bf16; and the activations held must shrink by the
// recomputed blocks' intermediates, less the one shared block's worth.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/enum_names.h"
#include "model/model.h"
#include "model_cases.h"
#include "util/error.h"

namespace rat {
namespace {

using testing::ids_of;
using Case = testing::ModelCase;

// FFN dropout 0.1: recomputation must replay the same masks.
std::vector<Case> cases() { return testing::mixer_cases(3, Activation::kSwiglu, 0.1); }

std::unique_ptr<Model> model_of(const ModelConfig& cfg, Recompute r, Precision prec) {
  auto m = testing::scaled_model(cfg);
  m->set_precision(prec);
  m->set_recompute(r);
  return m;
}

const char* name_of(Recompute r) {
  return r == Recompute::kNone ? "none" : r == Recompute::kBlock ? "block" : "mixer";
}

// Two micro-batches accumulated (the second reuses every buffer at its
// steady size), each with its own dropout masks; the losses, the gradient
// buffer and the grads_ready stretches, in order.
struct Grads {
  std::vector<double> loss;
  std::vector<float> grads;
  std::vector<std::pair<int64_t, int64_t>> ready;
};

Grads run(Model& m, int64_t B, int64_t T, uint64_t stream0 = 11) {
  Grads r;
  const int64_t V = m.config().vocab_size;
  m.zero_grads();
  for (uint32_t mb = 0; mb < 2; ++mb) {
    const auto ids = ids_of(B * T, V, 5 + mb), labels = ids_of(B * T, V, 17 + mb);
    m.set_dropout_stream(7, stream0 + mb);
    const CeResult c =
        m.forward_backward(ids.data(), labels.data(), B, T, true, 0.f,
                           [&](int64_t a, int64_t b) { r.ready.emplace_back(a, b); });
    r.loss.push_back(c.loss_sum);
  }
  r.grads.assign(m.grads(), m.grads() + m.layout().total());
  return r;
}

TEST(Recompute, GradientsEqualKeepingEverythingBitForBit) {
  const int64_t B = 2, T = 13;
  for (const Case& c : cases())
    for (Precision prec : {Precision::kF32, Precision::kBF16}) {
      const std::string what = c.name + " " + precision_name(prec);
      auto kept = model_of(c.cfg, Recompute::kNone, prec);
      const Grads want = run(*kept, B, T);
      ASSERT_EQ(want.ready.size(), 2 * (c.cfg.layers.size() + 2))
          << what;  // per micro-batch: head, blocks, embedding
      // The masks matter: other dropout streams give other gradients, so
      // equality below means the recomputed forward drew the same masks.
      EXPECT_NE(run(*kept, B, T, 40).grads, want.grads) << what;
      for (Recompute r : {Recompute::kBlock, Recompute::kMixer}) {
        auto m = model_of(c.cfg, r, prec);
        const Grads got = run(*m, B, T);
        const std::string w = what + " " + name_of(r);
        ASSERT_EQ(got.loss.size(), want.loss.size()) << w;
        for (size_t i = 0; i < got.loss.size(); ++i)
          EXPECT_EQ(std::memcmp(&got.loss[i], &want.loss[i], sizeof(double)), 0) << w;
        ASSERT_EQ(got.grads.size(), want.grads.size()) << w;
        EXPECT_EQ(
            std::memcmp(got.grads.data(), want.grads.data(), got.grads.size() * sizeof(float)), 0)
            << w;
        EXPECT_EQ(got.ready, want.ready) << w;  // the all-reduce overlap sees the same stretches
      }
    }
}

// What a kept model holds per block, and what the recomputing models hold:
// the recomputed blocks nothing, the shared buffers at least the largest
// block they serve and at most one mixer plus one FFN (per slot, the larger
// of the blocks' needs), everything else (streams, head, scratch) the same.
TEST(Recompute, ActivationBytesShrinkByTheRecomputedBlocks) {
  const int64_t B = 2, T = 16;
  for (const Case& c : cases()) {
    auto kept = model_of(c.cfg, Recompute::kNone, Precision::kF32);
    auto block = model_of(c.cfg, Recompute::kBlock, Precision::kF32);
    auto mixer = model_of(c.cfg, Recompute::kMixer, Precision::kF32);
    for (Model* m : {kept.get(), block.get(), mixer.get()}) run(*m, B, T);
    const size_t L = c.cfg.layers.size();
    int64_t mixers = 0, ffns = 0, max_mixer = 0;
    for (size_t i = 0; i < L; ++i) {
      const int64_t mb = kept->mixer(i).activation_bytes(), fb = kept->ffn(i).activation_bytes();
      EXPECT_GT(mb, 0) << c.name;
      EXPECT_GT(fb, 0) << c.name;
      mixers += mb, ffns += fb, max_mixer = std::max(max_mixer, mb);
      EXPECT_EQ(block->mixer(i).activation_bytes(), 0) << c.name << " layer " << i;
      EXPECT_EQ(block->ffn(i).activation_bytes(), 0) << c.name << " layer " << i;
      EXPECT_EQ(mixer->mixer(i).activation_bytes(), 0) << c.name << " layer " << i;
      EXPECT_EQ(mixer->ffn(i).activation_bytes(), fb) << c.name << " layer " << i;
    }
    const int64_t ffn1 = kept->ffn(0).activation_bytes();  // every FFN is the same
    const int64_t all = kept->activation_bytes();
    // mixer: the shared buffers are one mixer's worth; with one mixer kind
    // exactly the largest one's.
    const int64_t mixer_saved = all - mixer->activation_bytes();
    EXPECT_LE(mixer_saved, mixers - max_mixer) << c.name;
    if (c.name != "hybrid") {
      EXPECT_EQ(mixer_saved, mixers - max_mixer) << c.name;
    }
    EXPECT_GE(mixer_saved, mixers - 2 * max_mixer) << c.name;
    // block: between max(mixer, FFN) and mixer + FFN shared.
    const int64_t block_saved = all - block->activation_bytes();
    EXPECT_LE(block_saved, mixers + ffns - std::max(max_mixer, ffn1)) << c.name;
    EXPECT_GE(block_saved, mixers + ffns - 2 * max_mixer - ffn1) << c.name;
    EXPECT_GT(block_saved, mixer_saved) << c.name;
  }
}

// By hand for the rat case in `mixer` mode (B 2, T 16, D 32, P 8, G 2,
// 4 heads): the RAT mixer keeps u, vt, kt, ktr, o, gated [N, D], rstd [N],
// proj [N, W] with W = 3D + 2 G*P = 128 (SPEC.md "rat"), qr [N, G*P], lse
// [B, H, T]. Three layers share one: two mixers' worth fewer floats.
TEST(Recompute, RatMixerSavingByHand) {
  const int64_t B = 2, T = 16, N = B * T, D = 32, GP = 16, W = 3 * D + 2 * GP, H = 4;
  const int64_t floats = 6 * N * D + N + N * W + N * GP + B * H * T;
  const ModelConfig cfg = cases()[0].cfg;
  ASSERT_EQ(cfg.layers.size(), 3u);
  auto kept = model_of(cfg, Recompute::kNone, Precision::kF32);
  auto mixer = model_of(cfg, Recompute::kMixer, Precision::kF32);
  run(*kept, B, T);
  run(*mixer, B, T);
  EXPECT_EQ(kept->mixer(0).activation_bytes(), floats * 4);
  EXPECT_EQ(kept->activation_bytes() - mixer->activation_bytes(), 2 * floats * 4);
}

TEST(Recompute, SwitchingModesKeepsGradientsAndFreesTheKeptBuffers) {
  const int64_t B = 2, T = 13;
  const Case c = cases()[0];
  auto m = model_of(c.cfg, Recompute::kNone, Precision::kF32);
  const Grads want = run(*m, B, T);
  const int64_t all = m->activation_bytes();
  m->set_recompute(Recompute::kBlock);
  EXPECT_LT(m->activation_bytes(), all);
  EXPECT_EQ(m->mixer(0).activation_bytes(), 0);
  EXPECT_EQ(m->ffn(0).activation_bytes(), 0);
  EXPECT_EQ(run(*m, B, T).grads, want.grads);
  m->set_recompute(Recompute::kNone);
  EXPECT_EQ(run(*m, B, T).grads, want.grads);
  EXPECT_EQ(m->activation_bytes(), all);
}

TEST(Recompute, PlainBackwardAfterAnUnkeptForwardIsRefused) {
  const Case c = cases()[0];
  auto m = model_of(c.cfg, Recompute::kBlock, Precision::kF32);
  const int64_t B = 1, T = 8, V = c.cfg.vocab_size, D = c.cfg.d_model;
  const auto ids = ids_of(B * T, V, 3);
  std::vector<float> logits(size_t(B * T * V)), dx(size_t(B * T * D), 1.f), x(dx.size(), 0.5f);
  m->logits(ids.data(), B, T, logits.data(), Model::Mode::kTrain);
  EXPECT_THROW(m->mixer(0).backward(x.data(), dx.data(), B, T), Error);
  EXPECT_THROW(m->ffn(0).backward(x.data(), dx.data(), B, T), Error);
  // Switching a trained model to recompute frees what its blocks kept: a
  // plain backward before the next forward is refused, not run on nothing.
  auto k = model_of(c.cfg, Recompute::kNone, Precision::kF32);
  k->logits(ids.data(), B, T, logits.data(), Model::Mode::kTrain);
  k->set_recompute(Recompute::kBlock);
  EXPECT_THROW(k->mixer(0).backward(x.data(), dx.data(), B, T), Error);
  EXPECT_THROW(k->ffn(0).backward(x.data(), dx.data(), B, T), Error);
}

}  // namespace
}  // namespace rat
