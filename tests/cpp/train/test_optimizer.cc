// train/optimizer: RMSprop, SGD momentum and the step schedule against
// hand-computed values; their experiment keys; their state in checkpoints.
// (torch itself is the oracle of tests/python/train_step_check.py, CTest
// train_vs_torch_rmsprop_step and train_vs_torch_sgd.)
#include <gtest/gtest.h>

#include <filesystem>

#include "model/model.h"
#include "test_util.h"
#include "train/checkpointing.h"
#include "train/experiment.h"
#include "train/optimizer.h"

namespace rat {
namespace {

using testing::error_of;
using testing::TempDir;

// torch's StepLR: base * gamma^floor(s / step_size).
TEST(Schedule, StepMultipliesByGammaEveryStepSizeSteps) {
  OptimConfig c;
  c.scheduler = "step";
  c.lr = 1.0;
  c.step_size = 3;
  c.gamma = 0.5;
  const double want[] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125};
  for (int64_t s = 0; s < 10; ++s) EXPECT_EQ(lr_at(c, s, 10), want[s]) << s;
  c.scheduler = "constant";
  EXPECT_EQ(lr_at(c, 7, 10), 1.0);
}

// One parameter p = 1 with gradient 2 at lr 0.1, alpha 0.9, eps 0:
// square_avg 0.4, avg sqrt(0.4); centred: grad_avg 0.2, avg sqrt(0.4 - 0.04) = 0.6.
TEST(Optimizer, RmspropMatchesHandComputedSteps) {
  OptimConfig c;
  c.name = "rmsprop";
  c.alpha = 0.9, c.eps = 0, c.weight_decay = 0;
  {
    Optimizer o(c, 1);
    float p = 1, g = 2;
    o.step(&p, &g, 0.1);
    EXPECT_NEAR(p, 1 - 0.2 / std::sqrt(0.4), 1e-6);
    EXPECT_NEAR(o.buffer("square_avg")[0], 0.4, 1e-7);
    EXPECT_EQ(o.state().size(), 1u);
  }
  {
    OptimConfig cc = c;
    cc.centered = true;
    Optimizer o(cc, 1);
    float p = 1, g = 2;
    o.step(&p, &g, 0.1);
    EXPECT_NEAR(p, 1 - 0.2 / 0.6, 1e-6);
    EXPECT_NEAR(o.buffer("grad_avg")[0], 0.2, 1e-7);
  }
  {
    // momentum 0.5, two steps of gradient 2: buf1 = 2/sqrt(0.4); square_avg2 = 0.76,
    // buf2 = 0.5 buf1 + 2/sqrt(0.76); p = 1 - 0.1 (buf1 + buf2).
    OptimConfig cm = c;
    cm.momentum = 0.5;
    Optimizer o(cm, 1);
    float p = 1, g = 2;
    o.step(&p, &g, 0.1);
    o.step(&p, &g, 0.1);
    const double b1 = 2 / std::sqrt(0.4), b2 = 0.5 * b1 + 2 / std::sqrt(0.76);
    EXPECT_NEAR(p, 1 - 0.1 * (b1 + b2), 1e-6);
    EXPECT_NEAR(o.buffer("momentum_buffer")[0], b2, 1e-6);
    EXPECT_EQ(o.steps(), 2);
  }
  {
    // weight decay 0.5 adds 0.5 * p to the gradient: 2.5.
    OptimConfig cw = c;
    cw.weight_decay = 0.5;
    Optimizer o(cw, 1);
    float p = 1, g = 2;
    o.step(&p, &g, 0.1);
    EXPECT_NEAR(p, 1 - 0.1 * 2.5 / std::sqrt(0.1 * 2.5 * 2.5), 1e-6);
  }
}

// SGD with momentum 0.9: buf = g, then 0.9 * 2 + 2 = 3.8; p = 1 - 0.2 - 0.38.
TEST(Optimizer, SgdMomentumMatchesHandComputedSteps) {
  OptimConfig c;
  c.name = "sgd";
  c.momentum = 0.9, c.weight_decay = 0;
  Optimizer o(c, 1);
  float p = 1, g = 2;
  o.step(&p, &g, 0.1);
  EXPECT_NEAR(p, 0.8, 1e-7);
  o.step(&p, &g, 0.1);
  EXPECT_NEAR(p, 0.42, 1e-6);
  EXPECT_NEAR(o.buffer("momentum_buffer")[0], 3.8, 1e-6);
  c.momentum = 0;
  EXPECT_TRUE(Optimizer(c, 4).state().empty());
  EXPECT_NE(error_of([&] { Optimizer(c, 4).exp_avg(); }).find("keeps no 'exp_avg'"),
            std::string::npos);
}

constexpr const char* kExperiment =
    "data:\n"
    "  vocab_size: 64\n"
    "  train: {_name_: lm_ordered, tokenized_file_path: /data/train.bin}\n"
    "model:\n"
    "  backbone: {num_layers: 1, d_model: 16, seq_cell: {_name_: rat, d_head: 8, chunk_size: 4},\n"
    "             hidden_cell: {d_ffn: 32}}\n"
    "  embedding: {pe: {_name_: interrope}}\n"
    "optim:\n"
    "  optimizer: {_name_: adamw}\n"
    "  lr_scheduler: {_name_: cosine}\n"
    "trainer: {dtype: float32}\n";

TEST(ExperimentConfig, RmspropSgdAndStepKeys) {
  TempDir dir;
  const std::string p = dir.write("exp.yaml", kExperiment);
  Experiment r = load_experiment(p, {"optim.optimizer._name_=rmsprop"});
  EXPECT_EQ(r.lr, 1e-2);  // torch.optim.RMSprop's defaults: the authors have no rmsprop.yaml
  EXPECT_EQ(r.weight_decay, 0.0);
  EXPECT_EQ(r.alpha, 0.99);
  EXPECT_EQ(r.momentum, 0.0);
  EXPECT_FALSE(r.centered);
  r = load_experiment(p, {"optim.optimizer._name_=rmsprop", "optim.optimizer.alpha=0.9",
                          "optim.optimizer.momentum=0.5", "optim.optimizer.centered=true"});
  EXPECT_EQ(r.alpha, 0.9);
  EXPECT_EQ(r.momentum, 0.5);
  EXPECT_TRUE(r.centered);
  EXPECT_EQ(load_experiment(p, {"optim.optimizer._name_=sgd"}).momentum, 0.9);  // their sgd.yaml
  Experiment s =
      load_experiment(p, {"optim.lr_scheduler._name_=step", "optim.lr_scheduler.step_size=7"});
  EXPECT_EQ(s.scheduler, "step");
  EXPECT_EQ(s.step_size, 7);
  EXPECT_EQ(s.gamma, 0.1);  // StepLR's default
}

TEST(ExperimentConfig, RefusesFloat16PlateauAndMisplacedKeys) {
  TempDir dir;
  const std::string p = dir.write("exp.yaml", kExperiment);
  auto err = [&](const std::string& ov) { return error_of([&] { load_experiment(p, {ov}); }); };
  EXPECT_EQ(err("trainer.dtype=float16"),
            p + ": trainer.dtype: float16 is not supported by rat (no fp16 kernels or loss "
                "scaling), expected float32 or bfloat16");
  EXPECT_NE(err("optim.lr_scheduler._name_=plateau")
                .find("optim.lr_scheduler._name_: plateau (ReduceLROnPlateau) is not supported"),
            std::string::npos);
  EXPECT_NE(err("optim.lr_scheduler._name_=step").find("optim.lr_scheduler.step_size: missing"),
            std::string::npos);
  EXPECT_NE(err("optim.optimizer.alpha=0.9")
                .find("optim.optimizer.alpha: is an rmsprop option, but optim.optimizer._name_ "
                      "is adamw"),
            std::string::npos);
  EXPECT_NE(err("optim.optimizer.momentum=0.9").find("optim.optimizer.momentum: is an sgd/rmsprop"),
            std::string::npos);
  EXPECT_NE(err("optim.optimizer._name_=lion").find("expected one of adamw, adam, sgd, rmsprop"),
            std::string::npos);
}

// trainer.fsdp.sharding_strategy: the authors' numbers and PyTorch's names,
// any case; rat's ZERO1; SHARD_GRAD_OP shards gradients and optimiser state;
// FULL_SHARD, which rat lacks, refused by name.
TEST(ExperimentConfig, ShardingStrategyNumbersAndNames) {
  TempDir dir;
  const std::string p = dir.write("exp.yaml", kExperiment);
  const std::string key = "trainer.fsdp.sharding_strategy=";
  EXPECT_FALSE(load_experiment(p, {}).shard_optimizer);
  EXPECT_FALSE(load_experiment(p, {}).shard_gradients);
  for (const char* v : {"3", "NO_SHARD", "no_shard"}) {
    const Experiment e = load_experiment(p, {key + v});
    EXPECT_FALSE(e.shard_optimizer || e.shard_gradients) << v;
  }
  for (const char* v : {"ZERO1", "zero1", "ZeRO-1"}) {
    const Experiment e = load_experiment(p, {key + v});
    EXPECT_TRUE(e.shard_optimizer && !e.shard_gradients) << v;
  }
  for (const char* v : {"2", "SHARD_GRAD_OP", "shard_grad_op"}) {
    const Experiment e = load_experiment(p, {key + v});
    EXPECT_TRUE(e.shard_optimizer && e.shard_gradients) << v;
  }
  auto err = [&](const std::string& v) { return error_of([&] { load_experiment(p, {key + v}); }); };
  EXPECT_NE(err("1").find("trainer.fsdp.sharding_strategy: got 1 (FULL_SHARD), which rat does "
                          "not implement yet"),
            std::string::npos)
      << err("1");
  EXPECT_NE(err("FULL_SHARD").find("got FULL_SHARD, which rat does not implement yet"),
            std::string::npos);
  EXPECT_NE(err("4").find("got 4, expected SHARD_GRAD_OP (2), NO_SHARD (3) or ZERO1"),
            std::string::npos)
      << err("4");
  EXPECT_NE(err("[1]").find("trainer.fsdp.sharding_strategy"), std::string::npos) << err("[1]");
}

// An RMSprop run's checkpoint holds square_avg, momentum_buffer and grad_avg
// per parameter and restores them; an AdamW checkpoint does not resume it.
TEST(Checkpointing, RmspropStateRoundTripsAndOthersAreRefused) {
  TempDir tmp;
  const std::string yaml =
      "data: {seq_len: 8, vocab_size: 32}\n"
      "model: {backbone: {num_layers: 1, d_model: 16, seq_cell: {_name_: rat, d_head: 8, "
      "chunk_size: 4}, hidden_cell: {d_ffn: 32}}, embedding: {pe: {_name_: interrope}}}\n";
  const ModelConfig cfg = load_model_config(tmp.write("m.yaml", yaml));
  Model a(cfg), b(cfg);
  a.init(1);
  const int64_t n = a.layout().total();
  OptimConfig c;
  c.name = "rmsprop", c.momentum = 0.5, c.centered = true;
  Optimizer oa(c, n), ob(c, n);
  ASSERT_EQ(oa.state().size(), 3u);
  for (size_t k = 0; k < 3; ++k)
    for (int64_t i = 0; i < n; ++i) oa.state()[k].data[size_t(i)] = float(k) + 1e-3f * float(i);
  oa.set_steps(5);
  TrainState st{5, 1};
  save_checkpoint(tmp.file("run"), a, oa, st, "");
  const std::filesystem::path dir = latest_checkpoint(tmp.file("run"));
  TrainState got{0, 1};
  load_checkpoint(dir, b, ob, got);
  EXPECT_EQ(got.step, 5);
  EXPECT_EQ(ob.steps(), 5);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(ob.state()[k].data, oa.state()[k].data) << k;
  Optimizer adam(OptimConfig{}, n);
  Model m(cfg);
  TrainState s2{0, 1};
  const std::string msg = error_of([&] { load_checkpoint(dir, m, adam, s2); });
  EXPECT_NE(msg.find("exp_avg."), std::string::npos) << msg;
}

}  // namespace
}  // namespace rat
