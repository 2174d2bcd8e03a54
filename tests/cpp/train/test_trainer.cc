// Training loop: resume equality, schedule, overrides and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "model/model.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "train/experiment.h"
#include "train/optimizer.h"
#include "train/trainer.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace rat;
using rat::testing::error_of;

namespace {

void write_tokens(const fs::path& p, int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> t(static_cast<size_t>(n));
  // A learnable stream: a repeated random pattern with document ends (id 2).
  std::vector<uint16_t> pat(97);
  for (auto& x : pat) x = uint16_t(3 + rng() % uint32_t(vocab - 3));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = i % 50 == 49 ? 2 : pat[size_t(i % 97)];
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(t.data()), std::streamsize(t.size() * 2));
}

fs::path write_config(const fs::path& dir, const std::string& mixer_extra) {
  write_tokens(dir / "train.bin", 20000, 64, 1);
  write_tokens(dir / "val.bin", 2000, 64, 2);
  std::ofstream f(dir / "exp.yaml");
  f << "data: {seq_len: 24, vocab_size: 64, num_bytes: 2, ignore_input_index: 2, batch_size: 2,\n"
       "       global_batch_size: 4,\n"
       "       train: {_name_: lm_ordered, tokenized_file_path: "
    << (dir / "train.bin").string()
    << "},\n"
       "       val: {_name_: lm_ordered, tokenized_file_path: "
    << (dir / "val.bin").string()
    << "}, val_samples: 8}\n"
       "model:\n  backbone: {_name_: sequence, num_layers: 2, d_model: 32, interleave_step: 1,\n"
       "    seq_cell: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 5"
    << mixer_extra
    << "},\n    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}\n"
       "  embedding: {vocab_size: 64, pe: {_name_: interrope, base: 10000}}\n"
       "task: {tie_embedding: true, ignore_index: -100}\n"
       "optim:\n  optimizer: {_name_: adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], "
       "eps: 1.0e-8}\n"
       "  lr_scheduler: {_name_: cosine, warmup_iter: 0.2, eta_min: 1.0e-6}\n"
       "trainer: {seed: 7, dtype: float32, max_steps: 8, gradient_clipping: 1.0, log_interval: 1,\n"
       "  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, save_interval: 0.25,\n"
       "  save_dir: "
    << (dir / "run").string() << "}\n";
  return dir / "exp.yaml";
}

std::vector<double> losses(const fs::path& metrics) {
  std::vector<double> out;
  std::ifstream f(metrics);
  std::string line;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

}  // namespace

TEST(Train, LossDecreasesAndResumeEqualsStraightRun) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  fs::path dir = tmp_dir.path();
  fs::path cfg = write_config(dir, "");
  TrainOptions quiet;
  quiet.quiet = true;
  quiet.run_dir = (dir / "straight").string();
  Experiment e = load_experiment(cfg.string(), {});
  TrainSummary a = train(e, quiet);
  std::vector<double> la = losses(dir / "straight" / "metrics.jsonl");
  ASSERT_EQ(la.size(), 8u);
  EXPECT_LT(la.back(), la.front() - 0.3) << "training should learn the repeated pattern";
  EXPECT_TRUE(fs::exists(dir / "straight" / "latest" / "model.safetensors"));

  // Same run stopped after 3 steps, then resumed from its checkpoint.
  TrainOptions part = quiet;
  part.run_dir = (dir / "resumed").string();
  part.stop_after = 3;
  TrainSummary b1 = train(e, part);
  EXPECT_TRUE(b1.interrupted);
  EXPECT_EQ(b1.steps_done, 3);
  Experiment e2 = load_experiment(cfg.string(), {"trainer.load_checkpoint=true"});
  part.stop_after = -1;
  TrainSummary b2 = train(e2, part);
  EXPECT_EQ(b2.steps_done, 8);
  std::vector<double> lb = losses(dir / "resumed" / "metrics.jsonl");
  ASSERT_EQ(lb.size(), 8u);
  // Same machine, same threads: bit-for-bit equal (state, data position and
  // schedule all restored from the checkpoint).
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(la[i], lb[i]) << "step " << i + 1;
  EXPECT_EQ(a.val_loss, b2.val_loss);
}

TEST(Train, OverridesApplyAndUnknownKeysSuggest) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  fs::path dir = tmp_dir.path();
  fs::path cfg = write_config(dir, "");
  Experiment e = load_experiment(
      cfg.string(), {"optim.optimizer.lr=5e-4", "model.backbone.seq_cell.chunk_size=8"});
  EXPECT_DOUBLE_EQ(e.lr, 5e-4);
  EXPECT_EQ(e.model.layers[0].chunk_size, 8);
  std::string msg = error_of([&] { load_experiment(cfg.string(), {"optim.optimizer.lrr=1"}); });
  EXPECT_NE(msg.find("did you mean 'optim.optimizer.lr'"), std::string::npos) << msg;
  msg = error_of([&] { load_experiment(cfg.string(), {"trainer.max_step=3"}); });
  EXPECT_NE(msg.find("'trainer.max_steps'"), std::string::npos) << msg;
  msg = error_of([&] { load_experiment(cfg.string(), {"novalue"}); });
  EXPECT_NE(msg.find("expected dotted.key=value"), std::string::npos) << msg;
}

TEST(Train, BadInputIsNamed) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  fs::path dir = tmp_dir.path();
  fs::path cfg = write_config(dir, "");
  TrainOptions q;
  q.quiet = true;
  q.run_dir = (dir / "r").string();
  std::string msg = error_of([&] { load_experiment(cfg.string(), {"data.global_batch_size=3"}); });
  EXPECT_NE(msg.find("data.global_batch_size"), std::string::npos) << msg;
  msg = error_of([&] {
    train(load_experiment(cfg.string(), {"data.train.tokenized_file_path=/nonexistent.bin"}), q);
  });
  EXPECT_NE(msg.find("/nonexistent.bin"), std::string::npos) << msg;
  msg = error_of([&] { train(load_experiment(cfg.string(), {"data.seq_len=100000"}), q); });
  EXPECT_NE(msg.find("fewer than one global batch"), std::string::npos) << msg;
  msg = error_of([&] {
    train(load_experiment(cfg.string(), {"data.vocab_size=10", "model.embedding.vocab_size=10"}),
          q);
  });
  EXPECT_NE(msg.find("train.bin"), std::string::npos) << msg;
  // A run directory below a regular file cannot be created.
  std::ofstream(dir / "file") << "x";
  TrainOptions q2 = q;
  q2.run_dir = (dir / "file" / "run").string();
  msg = error_of([&] { train(load_experiment(cfg.string(), {}), q2); });
  EXPECT_NE(msg.find("run directory"), std::string::npos) << msg;
}

// The authors' schedule, SPEC.md: warm-up (s+1)/W, then cosine to eta_min.
TEST(Schedule, WarmupThenCosine) {
  OptimConfig c;
  c.lr = 1.0;
  c.eta_min = 0.1;
  c.warmup_iter = 0.1;
  const int64_t total = 100, W = 10;
  for (int64_t s = 0; s < total; ++s) {
    double want = s < W ? double(s + 1) / double(W)
                        : 0.1 + 0.9 * (1 + std::cos(M_PI * double(s - W) / double(total - W))) / 2;
    EXPECT_NEAR(lr_at(c, s, total), want, 1e-12) << s;
  }
}

// A real divergence (lr 1e30): the trainer stops naming the step, before the
// update, and `latest` is the last checkpoint written before it, complete and
// with finite weights.
TEST(TrainFaults, NonFiniteLossStopsNamingTheStepAndKeepsLatest) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  fs::path dir = tmp_dir.path();
  fs::path cfg = write_config(dir, "");
  TrainOptions q;
  q.quiet = true;
  q.run_dir = (dir / "run").string();
  // save_interval 0.01 of 8 steps: a checkpoint after every step.
  Experiment e =
      load_experiment(cfg.string(), {"optim.optimizer.lr=1e30", "trainer.save_interval=0.01"});
  std::string msg = error_of([&] { train(e, q); });
  ASSERT_NE(msg.find("non-finite training"), std::string::npos) << msg;
  const size_t at = msg.find("at step ");
  ASSERT_NE(at, std::string::npos) << msg;
  const int step = std::stoi(msg.substr(at + 8));
  ASSERT_GE(step, 2) << "lr 1e30 should pass step 1 (finite loss) and diverge after: " << msg;
  char good[32], bad[32];
  std::snprintf(good, sizeof good, "step-%08d", step - 1);
  std::snprintf(bad, sizeof bad, "step-%08d", step);
  EXPECT_NE(msg.find(good), std::string::npos)
      << "message should name the last good checkpoint: " << msg;
  EXPECT_EQ(fs::read_symlink(dir / "run" / "latest"), fs::path("checkpoints") / good);
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoints" / bad));
  for (const auto& d : fs::directory_iterator(dir / "run" / "checkpoints"))
    EXPECT_NE(d.path().extension(), ".tmp") << d.path();
  // The kept checkpoint is a whole model directory with finite weights.
  std::unique_ptr<Model> m = load_model_dir((dir / "run" / "latest").string());
  const float* p = m->params();
  for (int64_t i = 0; i < m->layout().total(); ++i) ASSERT_TRUE(std::isfinite(p[i])) << i;
  EXPECT_EQ(losses(dir / "run" / "metrics.jsonl").size(), size_t(step - 1));
}

// data.val_samples: 0 turns validation off: no val record, no val figures in
// the summary (a perplexity of 1 over zero tokens would be a wrong answer).
TEST(Train, ZeroValidationSamplesSkipsValidation) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  fs::path dir = tmp_dir.path();
  fs::path cfg = write_config(dir, "");
  TrainOptions quiet;
  quiet.quiet = true;
  quiet.run_dir = (dir / "run").string();
  Experiment e = load_experiment(
      cfg.string(), {"data.val_samples=0", "trainer.max_steps=2", "trainer.save_checkpoint=false"});
  TrainSummary s = train(e, quiet);
  EXPECT_EQ(s.steps_done, 2);
  EXPECT_EQ(s.val_ppl, 0.0);
  std::ifstream f(dir / "run" / "metrics.jsonl");
  std::string line;
  int records = 0;
  while (std::getline(f, line)) {
    ++records;
    EXPECT_FALSE(nlohmann::json::parse(line).contains("val_loss")) << line;
  }
  EXPECT_EQ(records, 2);
}

// trainer.pretrained_path as the authors': the experiment builds the model and
// the data (here seq_len 12, the checkpoint was trained at 24); the checkpoint
// only brings weights, each checked by name and shape.
TEST(Train, PretrainedPathBringsOnlyWeights) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  fs::path dir = tmp_dir.path();
  fs::path cfg = write_config(dir, "");
  TrainOptions quiet;
  quiet.quiet = true;
  quiet.run_dir = (dir / "base").string();
  train(load_experiment(cfg.string(), {"trainer.max_steps=2"}), quiet);
  const std::string ckpt = (dir / "base" / "latest").string();
  const std::string weights = ckpt + "/model.safetensors";

  quiet.run_dir = (dir / "ft").string();
  Experiment ft = load_experiment(
      cfg.string(), {"trainer.pretrained_path=" + ckpt, "data.seq_len=12", "trainer.max_steps=2"});
  train(ft, quiet);
  std::unique_ptr<Model> m = load_model_dir((dir / "ft" / "latest").string());
  EXPECT_EQ(m->config().seq_len, 12) << "the fine-tuned model trains at the experiment's seq_len";
  // A weights file given directly works the same.
  quiet.run_dir = (dir / "ft2").string();
  train(
      load_experiment(cfg.string(), {"trainer.pretrained_path=" + weights, "trainer.max_steps=1"}),
      quiet);

  auto error_with = [&](std::vector<std::string> ov) {
    ov.insert(ov.begin(), "trainer.pretrained_path=" + ckpt);
    quiet.run_dir = (dir / "bad").string();
    return error_of([&] { train(load_experiment(cfg.string(), ov), quiet); });
  };
  EXPECT_EQ(error_with({"model.backbone.hidden_cell.d_ffn=96"}),
            weights +
                ": tensor 'backbone.layers.0.hidden_layer.fc1.weight' has shape [64, 32], the "
                "experiment's model needs [96, 32]");
  EXPECT_EQ(error_with({"task.tie_embedding=false"}),
            weights +
                ": tensor 'head.lm_head.weight' is missing, the experiment's model needs it "
                "(shape [64, 32])");
  std::string msg = error_with({"model.backbone.num_layers=3"});
  EXPECT_EQ(msg.rfind(weights + ": tensor 'backbone.layers.2.", 0), 0u) << msg;
  EXPECT_NE(msg.find("' is missing, the experiment's model needs it (shape ["), std::string::npos)
      << msg;
  msg = error_with({"model.backbone.num_layers=1"});
  EXPECT_EQ(msg.rfind(weights + ": tensor 'backbone.layers.1.", 0), 0u) << msg;
  EXPECT_NE(msg.find(") is not part of the experiment's model"), std::string::npos) << msg;
  msg = error_with({"trainer.pretrained_path=" + (dir / "nowhere").string()});
  EXPECT_NE(msg.find((dir / "nowhere").string()), std::string::npos) << msg;
}
