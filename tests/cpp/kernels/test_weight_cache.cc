// Bf16WeightCache (src/kernels/weight_cache.h): frozen weights rounded to bf16
// once must give exactly what rounding them on every GEMM call gives (both use
// to_bf16 and the same oneDNN plan), so the comparisons here are bit for bit;
// and a copy must never outlive a change of the weights it was made from.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/weight_cache.h"
#include "model/model.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::randn;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(WeightCache, LinearEqualsPerCallRoundingBitForBit) {
  // Decode-like (few rows) and prefill-like shapes, with and without bias and
  // accumulation onto a residual.
  struct Case {
    int64_t N, in, out;
    bool bias;
    float beta;
  };
  for (const Case& c : {Case{1, 64, 96, false, 0.f}, Case{7, 96, 64, true, 0.f},
                        Case{64, 256, 320, false, 1.f}, Case{33, 130, 70, true, 1.f}}) {
    auto x = randn(c.N * c.in, 1), W = randn(c.out * c.in, 2), b = randn(c.out, 3);
    auto y0 = randn(c.N * c.out, 4);
    std::vector<float> want = y0, got = y0;
    linear_forward(x.data(), c.in, W.data(), c.bias ? b.data() : nullptr, want.data(), c.out, c.N,
                   c.in, c.out, Precision::kBF16, c.beta);
    Bf16WeightCache cache;
    const uint16_t* w16 = cache.get(W.data(), c.out * c.in);
    linear_forward(x.data(), c.in, W.data(), c.bias ? b.data() : nullptr, got.data(), c.out, c.N,
                   c.in, c.out, Precision::kBF16, c.beta, w16);
    EXPECT_TRUE(same_bits(got, want)) << "N=" << c.N << " in=" << c.in << " out=" << c.out;
    // The product really is bf16 (the copy is not ignored): f32 differs.
    std::vector<float> f32 = y0;
    linear_forward(x.data(), c.in, W.data(), c.bias ? b.data() : nullptr, f32.data(), c.out, c.N,
                   c.in, c.out, Precision::kF32, c.beta);
    EXPECT_FALSE(same_bits(f32, want));
  }
}

TEST(WeightCache, ConvertsOncePerVersionAndRefreshesAfterInvalidate) {
  auto W = randn(4096, 5);
  Bf16WeightCache cache;
  const uint16_t* a = cache.get(W.data(), 4096);
  cache.get(W.data(), 4096);
  EXPECT_EQ(cache.conversions(), 1u);
  EXPECT_EQ(cache.bytes(), 4096 * 2);
  std::vector<uint16_t> want(4096);
  to_bf16(W.data(), want.data(), 4096);
  EXPECT_EQ(std::memcmp(a, want.data(), want.size() * 2), 0);
  // The weights change (an optimizer step): after invalidate() the copy is new.
  for (float& f : W) f = -2.f * f + 1.f;
  cache.invalidate();
  const uint16_t* b = cache.get(W.data(), 4096);
  EXPECT_EQ(cache.conversions(), 2u);
  to_bf16(W.data(), want.data(), 4096);
  EXPECT_EQ(std::memcmp(b, want.data(), want.size() * 2), 0);
}

ModelConfig small_config(MixerKind kind) {
  ModelConfig c;
  c.seq_len = 32;
  c.vocab_size = 53;
  c.num_layers = 2;
  c.d_model = 32;
  c.seq_cell.kind = kind;
  c.seq_cell.d_head = 8;
  c.seq_cell.chunk_size = 4;
  c.ffn.d_ffn = 64;
  c.pe = PosEnc::kRopeInterRope;
  c.resolve("test");
  return c;
}

// A model's frozen-weight cache: the same logits as per-call rounding, and
// after weights_changed() the logits of the new weights (not the stale copy).
TEST(WeightCache, ModelLogitsEqualUncachedAndFollowWeightChanges) {
  for (MixerKind kind : {MixerKind::kRat, MixerKind::kAttention, MixerKind::kRnn}) {
    const ModelConfig cfg = small_config(kind);
    Model plain(cfg), cached(cfg);
    plain.init(11);
    cached.init(11);
    plain.set_precision(Precision::kBF16);
    cached.set_precision(Precision::kBF16);
    cached.set_frozen_weight_cache(true);
    const int64_t B = 2, T = 9, V = cfg.vocab_size;
    std::vector<int32_t> ids(size_t(B * T));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 7 + 3) % size_t(V));
    std::vector<float> want(size_t(B * T * V)), got(want.size());
    plain.logits(ids.data(), B, T, want.data());
    cached.logits(ids.data(), B, T, got.data());
    EXPECT_TRUE(same_bits(got, want)) << int(kind);
    // Change every weight in both models (as an optimizer step would).
    const int64_t n = plain.layout().total();
    for (Model* m : {&plain, &cached})
      for (int64_t i = 0; i < n; ++i) m->params()[i] *= 1.5f;
    cached.weights_changed();
    plain.logits(ids.data(), B, T, want.data());
    cached.logits(ids.data(), B, T, got.data());
    EXPECT_TRUE(same_bits(got, want)) << int(kind) << " after weights_changed";
  }
}

}  // namespace
}  // namespace rat
