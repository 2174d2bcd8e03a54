// trainer.activation_checkpointing (model/model.h Recompute): read from the
// experiment with its spellings checked, and a few optimiser steps of the
// trainer with it land on the same weights, bit for bit, as without it
// (dropout on; f32 and bf16; gradient accumulation over two micro-batches).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#include "train/experiment.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

void write_tokens(const fs::path& p, int64_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = uint16_t(3 + rng() % uint32_t(vocab - 3));
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(t.data()), std::streamsize(t.size() * 2));
}

// A hybrid (rat on even layers, local attention on odd) with FFN dropout;
// line 10 is the trainer's.
std::string write_config(const fs::path& dir) {
  write_tokens(dir / "train.bin", 4000, 64, 1);
  std::ofstream f(dir / "exp.yaml");
  f << "data: {seq_len: 24, vocab_size: 64, num_bytes: 2, batch_size: 2, global_batch_size: 4,\n"
       "  train: {_name_: lm_ordered, tokenized_file_path: "
    << (dir / "train.bin").string()
    << "}}\n"
       "model:\n  backbone: {_name_: sequence_interleave, num_layers: 3, d_model: 32, "
       "interleave_step: 2,\n"
       "    seq_cell: {_name_: local_attention, d_head: 8, window_size: 5},\n"
       "    seq_cell1: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 5},\n"
       "    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: gelu, dropout: 0.2}}\n"
       "  embedding: {pe: {_name_: rope_interrope}}\n"
       "optim: {optimizer: {_name_: adamw, lr: 3.0e-3}}\n"
       "trainer: {seed: 7, max_steps: 3, log_interval: 1, save_checkpoint: true, "
       "save_interval: 1.0}\n";
  return (dir / "exp.yaml").string();
}

TEST(RecomputeConfig, ReadsTheKeyAndNamesABadValue) {
  TempDir dir;
  const std::string p = write_config(fs::path(dir.path()));
  EXPECT_EQ(load_experiment(p, {}).recompute, Recompute::kNone);
  EXPECT_EQ(load_experiment(p, {"trainer.activation_checkpointing=none"}).recompute,
            Recompute::kNone);
  EXPECT_EQ(load_experiment(p, {"trainer.activation_checkpointing=block"}).recompute,
            Recompute::kBlock);
  EXPECT_EQ(load_experiment(p, {"trainer.activation_checkpointing=mixer"}).recompute,
            Recompute::kMixer);
  EXPECT_EQ(error_of([&] { load_experiment(p, {"trainer.activation_checkpointing=ffn"}); }),
            p + ": trainer.activation_checkpointing: unknown activation checkpointing 'ffn', "
                "expected one of none, block, mixer");
  // In the file: the line is named.
  std::string text = slurp(p);
  text.replace(text.find("seed: 7"), 7, "seed: 7, activation_checkpointing: all");
  const std::string q = dir.write("bad.yaml", text);
  EXPECT_EQ(error_of([&] { load_experiment(q, {}); }),
            q + ":10: trainer.activation_checkpointing: unknown activation checkpointing 'all', "
                "expected one of none, block, mixer");
  const std::string msg =
      error_of([&] { load_experiment(p, {"trainer.activation_checkpoint=block"}); });
  EXPECT_NE(msg.find("did you mean 'trainer.activation_checkpointing'"), std::string::npos) << msg;
}

TEST(RecomputeTraining, StepsLandOnTheSameWeightsBitForBit) {
  TempDir dir;
  const std::string p = write_config(fs::path(dir.path()));
  for (const char* dtype : {"float32", "bfloat16"}) {
    std::string want;
    for (const char* mode : {"none", "block", "mixer"}) {
      TrainOptions o;
      o.quiet = true;
      o.run_dir = dir.file(std::string(dtype) + "_" + mode);
      const Experiment e =
          load_experiment(p, {std::string("trainer.dtype=") + dtype,
                              std::string("trainer.activation_checkpointing=") + mode});
      const TrainSummary s = train(e, o);
      ASSERT_EQ(s.steps_done, 3) << dtype << " " << mode;
      const std::string weights = slurp(s.latest_dir + "/model.safetensors");
      ASSERT_GT(weights.size(), 1000u) << dtype << " " << mode;
      if (want.empty())
        want = weights;
      else
        EXPECT_TRUE(weights == want) << dtype << " " << mode << ": weights differ from none's";
    }
  }
}

}  // namespace
}  // namespace rat
