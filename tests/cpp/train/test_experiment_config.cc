// Experiment configs read through the same YAML reader as config.yaml: every
// error names the file, the line of a value that is in the file, the dotted
// key and what was expected; command-line overrides have no line to cite.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"
#include "train/experiment.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

// Line numbers matter below: line 1 is `data:`.
constexpr const char* kExperiment =
    "data:\n"                                                                // 1
    "  vocab_size: 64\n"                                                     // 2
    "  batch_size: 2\n"                                                      // 3
    "  global_batch_size: 4\n"                                               // 4
    "  train: {_name_: lm_ordered, tokenized_file_path: /data/train.bin}\n"  // 5
    "model:\n"                                                               // 6
    "  backbone:\n"                                                          // 7
    "    num_layers: 1\n"                                                    // 8
    "    d_model: 16\n"                                                      // 9
    "    seq_cell: {_name_: rat, d_head: 8, chunk_size: 4}\n"                // 10
    "    hidden_cell: {d_ffn: 32}\n"                                         // 11
    "  embedding: {pe: {_name_: interrope}}\n"                               // 12
    "optim:\n"                                                               // 13
    "  optimizer: {_name_: adamw, lr: 1.0e-3, betas: [0.9, 0.95]}\n"         // 14
    "  lr_scheduler: {_name_: cosine, warmup_iter: 0.1}\n"                   // 15
    "trainer: {dtype: bfloat16, seed: 3}\n";                                 // 16

// kExperiment with the first `from` replaced by `to`, written to a file.
std::string edited(const TempDir& dir, const std::string& from, const std::string& to) {
  std::string text = kExperiment;
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return dir.write("exp.yaml", text);
}

TEST(ExperimentConfig, ReadsValuesAndPrecisionSpellings) {
  TempDir dir;
  const std::string p = dir.write("exp.yaml", kExperiment);
  Experiment e = load_experiment(p, {});
  EXPECT_EQ(e.precision, Precision::kBF16);
  EXPECT_EQ(e.batch_size, 2);
  EXPECT_EQ(e.global_batch_size, 4);
  EXPECT_DOUBLE_EQ(e.lr, 1e-3);
  EXPECT_DOUBLE_EQ(e.beta2, 0.95);
  EXPECT_EQ(e.seed, 3u);
  EXPECT_EQ(e.train.tokenized_file_path, "/data/train.bin");
  EXPECT_EQ(load_experiment(p, {"trainer.dtype=f32"}).precision, Precision::kF32);
  EXPECT_EQ(load_experiment(p, {"trainer.dtype=float32"}).precision, Precision::kF32);
  EXPECT_EQ(load_experiment(p, {"trainer.dtype=bf16"}).precision, Precision::kBF16);
  EXPECT_EQ(load_experiment(p, {"optim.optimizer.betas=[0.8, 0.9]"}).beta1, 0.8);
}

TEST(ExperimentConfig, BadValuesNameFileLineAndKey) {
  TempDir dir;
  struct Case {
    const char *from, *to, *msg;
  };
  const Case cases[] = {
      {"dtype: bfloat16", "dtype: fp16",
       ":16: trainer.dtype: unknown precision 'fp16', expected one of f32, bf16, float32, "
       "bfloat16"},
      {"lr: 1.0e-3", "lr: fast", ":14: optim.optimizer.lr: got 'fast', expected a number"},
      {"lr: 1.0e-3", "lr: -1", ":14: optim.optimizer.lr: got -1, expected a positive number"},
      {"[0.9, 0.95]", "[0.9]",
       ":14: optim.optimizer.betas: got a list of 1, expected two numbers (beta1, beta2)"},
      {"_name_: lm_ordered", "_name_: lm_shuffled",
       ":5: data.train._name_: unknown loader 'lm_shuffled', expected one of lm_ordered, "
       "lm_random, sft_ordered, sft_random"},
      {"batch_size: 2", "batch_size: 0", ":3: data.batch_size: got 0, expected a positive integer"},
      {"global_batch_size: 4", "global_batch_size: 5",
       ":4: data.global_batch_size: got 5, expected a positive multiple of data.batch_size 2"},
      {"_name_: cosine", "_name_: linear",
       ":15: optim.lr_scheduler._name_: unknown scheduler 'linear', expected one of cosine, "
       "constant, step"},
      {"seed: 3", "seed: [3]", ":16: trainer.seed: got a list, expected an integer"},
      {"d_model: 16", "d_model: 16.5",
       ":9: model.backbone.d_model: got '16.5', expected an integer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.to);
    const std::string p = edited(dir, c.from, c.to);
    EXPECT_EQ(error_of([&] { load_experiment(p, {}); }), p + c.msg);
  }
  // A missing key has no line.
  const std::string p = edited(dir, ", tokenized_file_path: /data/train.bin", "");
  EXPECT_EQ(error_of([&] { load_experiment(p, {}); }),
            p + ": data.train.tokenized_file_path: missing, expected the training data file");
}

TEST(ExperimentConfig, OverrideErrorsNameFileAndKeyWithoutALine) {
  TempDir dir;
  const std::string p = dir.write("exp.yaml", kExperiment);
  EXPECT_EQ(error_of([&] { load_experiment(p, {"trainer.dtype=half"}); }),
            p + ": trainer.dtype: unknown precision 'half', expected one of f32, bf16, float32, "
                "bfloat16");
  EXPECT_EQ(error_of([&] { load_experiment(p, {"optim.optimizer.betas=[1, 2, 3]"}); }),
            p + ": optim.optimizer.betas: got a list of 3, expected two numbers (beta1, beta2)");
  EXPECT_EQ(error_of([&] { load_experiment(p, {"model.backbone.d_model=x"}); }),
            p + ": model.backbone.d_model: got 'x', expected an integer");
}

TEST(ExperimentConfig, NotYamlOrMissingFileNamesTheFile) {
  TempDir dir;
  // `rat train README.md`: yaml-cpp's own words, inside the file-named message.
  const std::string md = dir.write("README.md", "# rat\n\n* fast\n* small\n");
  std::string msg = error_of([&] { load_experiment(md, {}); });
  EXPECT_HAS(msg, md + ":3: not a YAML mapping (");
  EXPECT_HAS(msg, "alias");
  EXPECT_HAS(msg, "), expected an experiment config");
  const std::string list = dir.write("list.yaml", "- a\n- b\n");
  EXPECT_EQ(error_of([&] { load_experiment(list, {}); }),
            list +
                ":1: not a YAML mapping (got a list), expected an experiment config (a "
                "mapping with data, model, optim and trainer)");
  msg = error_of([&] { load_experiment(dir.file("nope.yaml"), {}); });
  EXPECT_HAS(msg, dir.file("nope.yaml") + ": cannot open (No such file or directory)");
}

}  // namespace
}  // namespace rat

namespace rat {
namespace {

// Keys an experiment omits take the authors' defaults (CLAIRE-Labo/RAT
// configs/config.yaml trainer, configs/optim/optimizer/*.yaml,
// configs/optim/lr_scheduler/cosine.yaml; PyTorch's Adam weight decay 0).
TEST(ExperimentConfig, OmittedKeysTakeTheAuthorsDefaults) {
  TempDir dir;
  std::string text = kExperiment;
  text = text.substr(0, text.find("optim:")) + "optim: {optimizer: {_name_: adamw}}\n";
  Experiment e = load_experiment(dir.write("exp.yaml", text), {});
  EXPECT_EQ(e.lr, 1e-4);
  EXPECT_EQ(e.weight_decay, 0.1);
  EXPECT_EQ(e.beta1, 0.9);
  EXPECT_EQ(e.beta2, 0.999);
  EXPECT_EQ(e.eps, 1e-8);
  EXPECT_EQ(e.scheduler, "cosine");
  EXPECT_EQ(e.warmup_iter, 0.1);
  EXPECT_EQ(e.eta_min, 1e-7);
  EXPECT_EQ(e.seed, 1005u);
  EXPECT_EQ(e.precision, Precision::kF32);
  EXPECT_EQ(e.max_epoch, 1);
  EXPECT_EQ(e.gradient_clipping, 0.0);
  EXPECT_EQ(e.log_interval, 50);
  EXPECT_FALSE(e.eval_when_log);
  EXPECT_FALSE(e.save_checkpoint);
  EXPECT_FALSE(e.load_checkpoint);
  EXPECT_EQ(e.save_interval, 0.1);
  EXPECT_EQ(e.model.seq_cell.ngroups, 2);
  const std::string p = dir.write("exp.yaml", text);
  Experiment sgd = load_experiment(p, {"optim.optimizer._name_=sgd"});
  EXPECT_EQ(sgd.lr, 0.1);
  EXPECT_EQ(sgd.weight_decay, 5e-4);
  Experiment adam = load_experiment(p, {"optim.optimizer._name_=adam"});
  EXPECT_EQ(adam.lr, 1e-4);
  EXPECT_EQ(adam.weight_decay, 0.0);
  EXPECT_EQ(adam.beta2, 0.999);
  // Values in the file still win.
  EXPECT_EQ(load_experiment(p, {"optim.optimizer._name_=sgd", "optim.optimizer.lr=0.5"}).lr, 0.5);
}

}  // namespace
}  // namespace rat
