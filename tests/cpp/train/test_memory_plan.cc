// The memory plan (train/memory_plan.h, `rat train --dry-run`): every line
// against bytes counted by hand on a tiny config (each optimiser, ZERO1 over
// 3 ranks, each recomputation mode, bf16), and the activations line against
// the buffers a real training step grows (Model::activation_bytes), for every
// mixer kind, the hybrid, swiglu and dropout, so the blocks' stated sizes
// cannot drift from their forward and backward.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "model/model.h"
#include "model/model_cases.h"
#include "test_util.h"
#include "train/memory_plan.h"

namespace rat {
namespace {

// d_head 8, RAT 2 groups and chunk 4, local attention window 3.
MixerConfig cell(MixerKind kind) {
  return testing::small_cell(kind, 4, kind == MixerKind::kLocalAttention ? 3 : 0);
}

// D 32, d_ffn 64, V 61, T 8, RMSNorm, no biases, tied head.
ModelConfig config(const MixerConfig& m, int64_t layers, const MixerConfig* cell1 = nullptr,
                   Activation act = Activation::kGelu, double dropout = 0) {
  return testing::small_config(m, layers, cell1, act, dropout, 8);
}

Experiment tiny(const std::string& optimizer = "adamw") {
  Experiment e;
  e.model = config(cell(MixerKind::kRat), 2);
  e.batch_size = 2;
  e.optimizer = optimizer;
  return e;
}

// By hand, for tiny(): RAT with W = 3D + 2 G P = 128. Per layer the mixer
// holds input_norm 32 + in_proj 128x32 + out_proj 32x32 + gate_bias 32 = 5184
// and the FFN ffn_ln 32 + fc1 64x32 + fc2 32x64 = 4128; plus wte 61x32 and
// the final norm 32: 2 x 9312 + 1952 + 32.
constexpr int64_t kParams = 20608;
// B 2, T 8: N = 16 tokens. Streams: kFinal, kDx, kDFinal (N D each), the
// final rstd (N) and 2L + 1 = 5 streams: 4 (3 x 512 + 16 + 5 x 512).
constexpr int64_t kStreams = 16448;
// A RAT mixer keeps u, vt, kt, ktr, o, gated (N D each), rstd N, proj N W,
// qr N G P = 256 and lse B H T = 64: 5456 floats; a gelu FFN u (512), rstd
// (16), h and act (N F = 1024 each): 2576 floats.
constexpr int64_t kRatKept = 5456, kFfnKept = 2576;
// Backward scratch, per slot the larger of the RAT's (N W, N D, N G P, N D,
// N D) and the FFN's (N F, N F, N D): 2048 + 1024 + 512 + 512 + 512 floats.
constexpr int64_t kScratch = 4 * 4608;

TEST(MemoryPlan, TinyConfigLinesByHand) {
  const MemoryPlan p = plan_memory(tiny(), 0, 1, false);
  EXPECT_EQ(p.bytes("weights"), 4 * kParams);
  EXPECT_EQ(p.bytes("gradients"), 4 * kParams);
  EXPECT_EQ(p.bytes("optimizer"), 8 * kParams);  // AdamW: exp_avg, exp_avg_sq
  EXPECT_EQ(p.bytes("activations"), kStreams + 4 * 2 * (kRatKept + kFfnKept) + kScratch);
  EXPECT_EQ(p.bytes("logits"), 16 * 61 * 4 + 16 * 8);  // all 16 rows fit the 8 Mi-float block
  EXPECT_EQ(p.bytes("communication"), 0);
  EXPECT_EQ(p.bytes("checkpoint"), 0);
  EXPECT_EQ(p.bytes("data"), 8 * 16);      // int32 ids and labels, no validation
  EXPECT_EQ(p.bytes("bf16_operands"), 0);  // f32
  EXPECT_EQ(p.bytes("process"), kProcessBaselineBytes);
  int64_t sum = 0;
  for (const MemoryLine& l : p.lines) sum += l.bytes;
  EXPECT_EQ(p.total(), sum);
}

TEST(MemoryPlan, RecomputationModesByHand) {
  Experiment e = tiny();
  const int64_t none = kStreams + 4 * 2 * (kRatKept + kFfnKept) + kScratch;
  // mixer: the FFNs keep theirs; one RAT mixer's worth is shared.
  const int64_t mixer = kStreams + 4 * 2 * kFfnKept + 4 * kRatKept + kScratch;
  // block: one set shared by all, per slot the larger of the RAT's
  // (512, 16, 2048, 512, 512, 512, 256, 512, 64, 512) and the FFN's
  // (512, 16, 1024, 1024): slot 3 takes the FFN's 1024.
  const int64_t block = kStreams + 4 * 5968 + kScratch;
  const MemoryPlan p = plan_memory(e, 0, 1, false);
  EXPECT_EQ(p.activations_none, none);
  EXPECT_EQ(p.activations_mixer, mixer);
  EXPECT_EQ(p.activations_block, block);
  e.recompute = Recompute::kMixer;
  EXPECT_EQ(plan_memory(e, 0, 1, false).bytes("activations"), mixer);
  e.recompute = Recompute::kBlock;
  EXPECT_EQ(plan_memory(e, 0, 1, false).bytes("activations"), block);
}

TEST(MemoryPlan, EachOptimizer) {
  EXPECT_EQ(plan_memory(tiny("adam"), 0, 1, false).bytes("optimizer"), 8 * kParams);
  Experiment sgd = tiny("sgd");
  EXPECT_EQ(plan_memory(sgd, 0, 1, false).bytes("optimizer"), 0);
  sgd.momentum = 0.9;
  EXPECT_EQ(plan_memory(sgd, 0, 1, false).bytes("optimizer"), 4 * kParams);
  Experiment rms = tiny("rmsprop");
  EXPECT_EQ(plan_memory(rms, 0, 1, false).bytes("optimizer"), 4 * kParams);  // square_avg
  rms.momentum = 0.5;
  rms.centered = true;  // + momentum_buffer, grad_avg
  EXPECT_EQ(plan_memory(rms, 0, 1, false).bytes("optimizer"), 12 * kParams);
}

TEST(MemoryPlan, Zero1OverThreeRanks) {
  Experiment e = tiny();
  e.shard_optimizer = true;
  e.save_checkpoint = true;
  // Shards of 20608 floats over 3 ranks: [0, 6869), [6869, 13738), [13738, 20608).
  const int64_t shard[3] = {6869, 6869, 6870};
  for (int r = 0; r < 3; ++r) {
    const MemoryPlan p = plan_memory(e, r, 3, true);
    EXPECT_EQ(p.bytes("optimizer"), 8 * shard[r]) << r;
    EXPECT_EQ(p.bytes("weights"), 4 * kParams) << r;    // ZERO1 keeps every weight
    EXPECT_EQ(p.bytes("gradients"), 4 * kParams) << r;  // and every gradient
    EXPECT_EQ(p.bytes("communication"), 4 * kParams) << r;
    // Only rank 0 gathers the whole state for a checkpoint.
    EXPECT_EQ(p.bytes("checkpoint"), r == 0 ? 8 * kParams : 0) << r;
    EXPECT_EQ(p.bytes("process"), kProcessBaselineBytes + kMpiBaselineBytes) << r;
    // The all-reduce temporaries are freed before a checkpoint gathers: the
    // peak counts the larger of the two, not both.
    int64_t lasting = 0;
    for (const MemoryLine& l : p.lines)
      if (l.name != "communication" && l.name != "checkpoint") lasting += l.bytes;
    EXPECT_EQ(p.total(), lasting + (r == 0 ? 8 * kParams : 4 * kParams)) << r;
  }
  e.shard_optimizer = false;  // NO_SHARD: every rank the whole state, no gather
  const MemoryPlan p = plan_memory(e, 0, 3, true);
  EXPECT_EQ(p.bytes("optimizer"), 8 * kParams);
  EXPECT_EQ(p.bytes("checkpoint"), 0);
  e.shard_optimizer = true;  // one rank: nothing to shard
  EXPECT_EQ(plan_memory(e, 0, 1, false).bytes("optimizer"), 8 * kParams);
}

TEST(MemoryPlan, Bf16OperandsByHand) {
  Experiment e = tiny();
  e.precision = Precision::kBF16;
  // A: N x widest product (128) = 2048 against 16 logit rows x 61 = 976;
  // B: the largest weight (in_proj 128 x 32 = 4096) against N x 128: 2 bytes each,
  // and 4 more where oneDNN has no bf16 kernels (RAT_ISA=avx2: widened to f32).
  const int64_t per = gemm_has_native_bf16() ? 2 : 6;
  EXPECT_EQ(plan_memory(e, 0, 1, false).bytes("bf16_operands"), per * (2048 + 4096));
  EXPECT_EQ(plan_memory(e, 0, 1, false).bytes("weights"), 4 * kParams);  // f32 master only
}

TEST(MemoryPlan, ValidationAddsScoringScratchAndData) {
  Experiment e = tiny();
  e.val.tokenized_file_path = "val.bin";
  const MemoryPlan p = plan_memory(e, 0, 1, false);
  EXPECT_EQ(p.bytes("data"), 2 * 8 * 16);
  // A scoring forward puts the RAT's kept slots in the scratch too: per slot
  // the largest of both blocks' scratch and kept sizes.
  const int64_t scratch = 4 * (2048 + 1024 + 2048 + 1024 + 512 + 512 + 256 + 512 + 64 + 512);
  EXPECT_EQ(p.bytes("activations"), kStreams + 4 * 2 * (kRatKept + kFfnKept) + scratch);
  e.val_samples = 0;  // validation off
  EXPECT_EQ(plan_memory(e, 0, 1, false).bytes("data"), 8 * 16);
}

// The plan's activations against what a real step grows, every kind and mode.
TEST(MemoryPlan, ActivationsEqualARealStep) {
  const MixerConfig rat = cell(MixerKind::kRat), att = cell(MixerKind::kAttention);
  struct Case {
    std::string name;
    ModelConfig cfg;
  };
  const std::vector<Case> cases = {
      {"rat", config(rat, 2)},
      {"attention", config(att, 2)},
      {"local_attention", config(cell(MixerKind::kLocalAttention), 2)},
      {"rnn", config(cell(MixerKind::kRnn), 2, nullptr, Activation::kSwiglu)},
      {"identity", config(cell(MixerKind::kIdentity), 2)},
      {"hybrid", config(rat, 4, &att, Activation::kGelu, 0.1)},
  };
  const int64_t B = 2, T = 8;
  for (const Case& c : cases)
    for (Recompute r : {Recompute::kNone, Recompute::kMixer, Recompute::kBlock}) {
      Model m(c.cfg);
      m.init(3);
      m.set_recompute(r);
      const auto ids = testing::random_ids(B * T, c.cfg.vocab_size, 5);
      const auto labels = testing::random_ids(B * T, c.cfg.vocab_size, 6);
      m.forward_backward(ids.data(), labels.data(), B, T, true);
      const std::string what = c.name + " recompute " + std::to_string(int(r));
      EXPECT_EQ(m.activation_bytes(), Model::plan_activations(c.cfg, B, T, r, false).total())
          << what;
      m.score(ids.data(), labels.data(), B, T);  // validation's forward
      EXPECT_EQ(m.activation_bytes(), Model::plan_activations(c.cfg, B, T, r, true).total())
          << what << " after scoring";
    }
}

TEST(MemoryPlan, MachineMemoryOverride) {
  ASSERT_EQ(setenv("RAT_MEMORY_AVAILABLE_MIB", "100", 1), 0);
  const MachineMemory m = machine_memory(4);
  unsetenv("RAT_MEMORY_AVAILABLE_MIB");
  EXPECT_EQ(m.available, int64_t(100) << 20);
  EXPECT_EQ(m.per_rank(), (int64_t(100) << 20) / 4);
  EXPECT_EQ(m.source, "RAT_MEMORY_AVAILABLE_MIB");
  EXPECT_GT(machine_memory(1).available, 0);  // /proc/meminfo's MemAvailable
}

TEST(MemoryPlan, RefusalNamesTheKnobs) {
  Experiment e = tiny();
  e.batch_size = 2;
  MachineMemory m;
  m.available = 1 << 20;
  m.source = "MemAvailable";
  const std::string msg = does_not_fit_message(e, plan_memory(e, 0, 1, false), m);
  for (const char* want : {"needs", "1.0 MiB per rank", "activation_checkpointing=block",
                           "sharding_strategy=ZERO1", "data.batch_size", "--no-memory-check"})
    EXPECT_NE(msg.find(want), std::string::npos) << want << " in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(MemoryPlan, FormatBytes) {
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(int64_t(310) << 20), "310.0 MiB");
  EXPECT_EQ(format_bytes(int64_t(5) << 29), "2.50 GiB");
}

}  // namespace
}  // namespace rat
