// Batch and thread invariance of decoding (docs/reliability.md "Thread and
// batch invariance"): a sequence decoded alone (Decoder::step with n = 1)
// against the same sequence decoded among 63 others (n = 64), and a decode
// on 1 thread against 2 and 3, on a hybrid of RAT, attention and FFN layers
// in f32 and bf16. The oracle is the same decoder under the other batch or
// thread count: the logits are compared bit for bit, and the count of
// differing logits is what the test reports and bounds.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "generate/decoder.h"
#include "model/model.h"
#include "test_util.h"

namespace rat {
namespace {

constexpr int64_t kBatch = 64, kPrompt = 12, kSteps = 6;

ModelConfig hybrid_config() {
  ModelConfig c;
  c.seq_len = 64;
  c.vocab_size = 97;
  c.num_layers = 4;
  c.d_model = 128;
  c.seq_cell.kind = MixerKind::kAttention;
  c.seq_cell.d_head = 32;
  c.backbone = "sequence_interleave";
  c.interleave_step = 2;
  c.seq_cell1.kind = MixerKind::kRat;
  c.seq_cell1.d_head = 32;
  c.seq_cell1.ngroups = 2;
  c.seq_cell1.chunk_size = 8;
  c.ffn.d_ffn = 256;
  c.ffn.act = Activation::kGelu;
  c.pe = PosEnc::kRopeInterRope;
  c.resolve("test");
  return c;
}

// Slot 0's logits over kSteps steps after a prompt: alone (others = 0) or
// stepped together with `others` more slots, on `threads` threads.
std::vector<float> decode_slot0(Model& m, int64_t others, int threads) {
  const int64_t V = m.config().vocab_size, n = 1 + others;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  Decoder dec(m, kBatch, kPrompt + kSteps + 1);
  std::vector<float> logits(size_t(kBatch * V)), out;
  std::vector<int64_t> slots(size_t(n));
  std::vector<int32_t> ids(size_t(n));
  for (int64_t s = 0; s < n; ++s) {
    const auto p = rat::testing::random_ids(kPrompt, V, uint32_t(40 + s));
    dec.prefill(s, p.data(), kPrompt, logits.data());
    if (s == 0) out.insert(out.end(), logits.begin(), logits.begin() + V);
    slots[size_t(s)] = s;
  }
  for (int64_t t = 0; t < kSteps; ++t) {
    for (int64_t s = 0; s < n; ++s) ids[size_t(s)] = int32_t((7 * t + 3 * s + 1) % V);
    dec.step(slots.data(), ids.data(), n, logits.data());
    out.insert(out.end(), logits.begin(), logits.begin() + V);
  }
  omp_set_num_threads(saved);
  return out;
}

int64_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

void check(Precision p, const char* name) {
  Model m(hybrid_config());
  m.init(5);
  m.set_precision(p);
  const std::vector<float> alone = decode_slot0(m, 0, 1);
  const int64_t batch = differing(alone, decode_slot0(m, kBatch - 1, 1));
  const int64_t t2 = differing(alone, decode_slot0(m, 0, 2));
  const int64_t t3 = differing(alone, decode_slot0(m, 0, 3));
  const int64_t t3batch = differing(alone, decode_slot0(m, kBatch - 1, 3));
  std::printf("%s: of %zu logits (prefill + %lld steps), differing from alone on 1 thread: "
              "among 63 others %lld, 2 threads %lld, 3 threads %lld, among 63 on 3 threads %lld\n",
              name, alone.size(), (long long)kSteps, (long long)batch, (long long)t2,
              (long long)t3, (long long)t3batch);
  EXPECT_EQ(batch, 0) << name << ": decoded among 63 others";
  EXPECT_EQ(t2, 0) << name << ": 2 threads";
  EXPECT_EQ(t3, 0) << name << ": 3 threads";
  EXPECT_EQ(t3batch, 0) << name << ": among 63 others on 3 threads";
}

TEST(BatchInvariance, HybridF32SameLogitsAloneOrAmong63AndOnAnyThreadCount) {
  check(Precision::kF32, "f32");
}

TEST(BatchInvariance, HybridBf16SameLogitsAloneOrAmong63AndOnAnyThreadCount) {
  check(Precision::kBF16, "bf16");
}

}  // namespace
}  // namespace rat
