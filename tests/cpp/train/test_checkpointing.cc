// train/checkpointing: the checkpoint layout, resume state, `latest` and pruning.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "model/model.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "train/checkpointing.h"
#include "train/optimizer.h"

namespace fs = std::filesystem;
using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

namespace {

// A two-layer RAT model in the authors' keys (as a checkpoint's config.yaml).
const char* kModelYaml = R"(data: {seq_len: 24, vocab_size: 64, num_bytes: 2, ignore_input_index: 2}
model:
  backbone: {_name_: sequence, num_layers: 2, d_model: 32, interleave_step: 1,
    seq_cell: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 5},
    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}
  embedding: {vocab_size: 64, pe: {_name_: interrope, base: 10000}}
task: {tie_embedding: true, ignore_index: -100}
)";

struct ModelAndOptimizer {
  std::unique_ptr<rat::Model> model;
  std::unique_ptr<rat::Optimizer> opt;
};

// A model initialised from `seed` and an optimiser whose moments and step
// count differ from a fresh one's.
ModelAndOptimizer make_run(const TempDir& tmp, uint64_t seed) {
  const rat::ModelConfig cfg = rat::load_model_config(tmp.write("model.yaml", kModelYaml));
  ModelAndOptimizer r{std::make_unique<rat::Model>(cfg), nullptr};
  r.model->init(seed);
  const int64_t n = r.model->layout().total();
  r.opt = std::make_unique<rat::Optimizer>(rat::OptimConfig{}, n);
  for (int64_t i = 0; i < n; ++i) {
    r.opt->exp_avg()[size_t(i)] = float(seed) + 0.5f * float(i);
    r.opt->exp_avg_sq()[size_t(i)] = float(seed) * 1e-3f + float(i % 7);
  }
  r.opt->set_steps(int64_t(seed) * 10);
  return r;
}

}  // namespace

TEST(Checkpointing, SaveThenLoadRestoresWeightsMomentsAndCounts) {
  TempDir tmp;
  const fs::path run = tmp.file("run");
  ModelAndOptimizer a = make_run(tmp, 3);
  const std::string tok = tmp.write("tokenizer.model", "not really a tokenizer");
  rat::TrainState st{4, 1};
  EXPECT_EQ(rat::save_checkpoint(run, *a.model, *a.opt, st, tok), (run / "latest").string());

  const fs::path dir = run / "checkpoints" / "step-00000004";
  EXPECT_EQ(fs::read_symlink(run / "latest"), fs::path("checkpoints") / "step-00000004");
  EXPECT_EQ(slurp((dir / "tokenizer.model").string()), "not really a tokenizer");
  const auto state = nlohmann::json::parse(slurp((dir / "trainer_state.json").string()));
  EXPECT_EQ(state, (nlohmann::json{
                       {"step", 4}, {"optimizer_steps", 30}, {"world", 1}, {"data_world", 1}}));
  // The checkpoint is a model directory as `rat eval` reads it.
  std::unique_ptr<rat::Model> as_dir = rat::load_model_dir((run / "latest").string());
  const int64_t n = a.model->layout().total();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(as_dir->params()[i], a.model->params()[i]) << i;

  ModelAndOptimizer b =
      make_run(tmp, 9);  // other weights, moments and counts, overwritten by the load
  rat::TrainState got{0, 1};
  rat::load_checkpoint(rat::latest_checkpoint(run), *b.model, *b.opt, got);
  EXPECT_EQ(got.step, 4);
  EXPECT_EQ(b.opt->steps(), 30);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(b.model->params()[i], a.model->params()[i]) << i;
    ASSERT_EQ(b.opt->exp_avg()[size_t(i)], a.opt->exp_avg()[size_t(i)]) << i;
    ASSERT_EQ(b.opt->exp_avg_sq()[size_t(i)], a.opt->exp_avg_sq()[size_t(i)]) << i;
  }
}

TEST(Checkpointing, LatestIsTheNewestAndTwoAreKept) {
  TempDir tmp;
  const fs::path run = tmp.file("run");
  EXPECT_EQ(rat::latest_checkpoint(run), "");
  ModelAndOptimizer a = make_run(tmp, 1);
  for (int64_t step : {2, 4, 6}) rat::save_checkpoint(run, *a.model, *a.opt, {step, 1}, "");
  std::vector<std::string> names;
  for (const auto& d : fs::directory_iterator(run / "checkpoints"))
    names.push_back(d.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-00000004", "step-00000006"}));
  EXPECT_EQ(fs::read_symlink(run / "latest"), fs::path("checkpoints") / "step-00000006");
  EXPECT_EQ(rat::latest_checkpoint(run), fs::canonical(run / "checkpoints" / "step-00000006"));
  EXPECT_FALSE(fs::exists(run / "latest.tmp"));
  EXPECT_FALSE(fs::exists(run / "checkpoints" / "step-00000006" / "tokenizer.model"));
}

TEST(Checkpointing, LoadNamesAStateFromOtherRanksOrUnreadable) {
  TempDir tmp;
  const fs::path run = tmp.file("run");
  ModelAndOptimizer a = make_run(tmp, 1);
  rat::save_checkpoint(run, *a.model, *a.opt, {5, 2}, "");
  const fs::path state = run / "checkpoints" / "step-00000005" / "trainer_state.json";
  rat::TrainState one_rank{0, 1};
  EXPECT_EQ(
      error_of([&] { rat::load_checkpoint(state.parent_path(), *a.model, *a.opt, one_rank); }),
      state.string() +
          ": checkpoint was written by 2 ranks but this run has 1; resume with the same "
          "number of ranks");
  // A run on 3 ranks that follows the 2-rank sample order (the trainer reads
  // it first: checkpoint_sample_world) loads it, and saves that order again.
  EXPECT_EQ(rat::checkpoint_sample_world(state.parent_path()), 2);
  rat::TrainState three_ranks{0, 3, 2};
  rat::load_checkpoint(state.parent_path(), *a.model, *a.opt, three_ranks);
  EXPECT_EQ(three_ranks.step, 5);
  rat::save_checkpoint(run, *a.model, *a.opt, {7, 3, 2}, "");
  const fs::path later = run / "checkpoints" / "step-00000007";
  EXPECT_EQ(rat::checkpoint_sample_world(later), 2);
  EXPECT_EQ(nlohmann::json::parse(slurp((later / "trainer_state.json").string()))["world"], 3);
  std::ofstream(state) << "{\"step\": 5}";
  rat::TrainState two_ranks{0, 2};
  EXPECT_EQ(
      error_of([&] { rat::load_checkpoint(state.parent_path(), *a.model, *a.opt, two_ranks); }),
      state.string() +
          ": unreadable trainer state, expected a JSON object with integer step, "
          "optimizer_steps and world");
}
