// SFT validation (data.val._name_ sft_*): scored on the (inputs, labels) pair,
// and run by the trainer (it used to be skipped without a word).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../test_util.h"
#include "data/tokens.h"
#include "model/model.h"
#include "train/evaluate.h"
#include "train/experiment.h"
#include "train/trainer.h"

namespace rat {
namespace {

using testing::TempDir;

void write_u16(const std::string& path, const std::vector<int32_t>& ids) {
  std::vector<uint16_t> v;
  for (int32_t x : ids) v.push_back(uint16_t(x));  // -100 becomes 0xff9c, as write_sft_ids does
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 2));
}

constexpr int64_t kEos = 2;

// A token file F and the SFT pair that says the same thing: inputs F[0, n-1),
// labels F[1, n) with -100 after the end-of-document id (SPEC.md "Data").
struct Files {
  std::string lm, inputs, labels;
};
Files write_files(const TempDir& d, int64_t n) {
  std::mt19937 rng(7);
  std::vector<int32_t> f(static_cast<size_t>(n));
  for (auto& x : f) x = int32_t(rng() % 10u == 0 ? kEos : 3 + rng() % 60u);
  std::vector<int32_t> in(f.begin(), f.end() - 1), lab(f.begin() + 1, f.end());
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i] == kEos) lab[i] = -100;
  Files r{d.file("lm.bin"), d.file("in.bin"), d.file("lab.bin")};
  write_u16(r.lm, f), write_u16(r.inputs, in), write_u16(r.labels, lab);
  return r;
}

const char* kModel =
    "model:\n  backbone: {_name_: sequence, num_layers: 2, d_model: 16, interleave_step: 1,\n"
    "    seq_cell: {_name_: rat, d_head: 8, ngroups: 1, chunk_size: 4},\n"
    "    hidden_cell: {_name_: ffn, d_ffn: 24, act_fn: gelu, bias: false}}\n"
    "  embedding: {vocab_size: 64, pe: {_name_: interrope, base: 10000}}\n"
    "task: {tie_embedding: true, ignore_index: -100}\n";

// The SFT path and the token-file path are two readers of the same samples:
// every sample's ids and labels agree, so the scores are the same numbers.
TEST(SftValidation, PairScoresAsTheTokenFileItCameFrom) {
  TempDir d;
  const Files f = write_files(d, 16 * 9 + 1);
  const Experiment e = load_experiment(
      d.write("e.yaml",
              std::string("data: {seq_len: 16, vocab_size: 64, num_bytes: 2, ignore_input_index: 2,"
                          " batch_size: 2, global_batch_size: 2,\n  train: {_name_: lm_ordered, "
                          "tokenized_file_path: ") +
                  f.lm + "}}\n" + kModel + "trainer: {max_steps: 1, save_checkpoint: false}\n"),
      {});
  Model model(e.model);
  model.init(3);
  const TokenFile lm(f.lm, 2), in(f.inputs, 2), lab(f.labels, 2);
  for (int64_t B : {1, 4}) {
    const EvalResult a = evaluate(model, lm, 16, B);
    const EvalResult b = evaluate_sft(model, in, lab, 16, B);
    EXPECT_EQ(a.samples, 9);
    EXPECT_EQ(b.samples, a.samples);
    EXPECT_EQ(b.tokens, a.tokens);
    EXPECT_GT(a.tokens, 9 * 12);  // about 10% of labels are masked
    EXPECT_DOUBLE_EQ(b.loss, a.loss) << "batch " << B;
  }
  // Samples past the pair's end are refused, naming the inputs file.
  EXPECT_THROW(evaluate_sft(model, in, lab, 16, 2, 8, 2), Error);
}

// A run whose validation split is SFT writes val records (it wrote none).
TEST(SftValidation, TrainerValidatesOnTheSftSplit) {
  TempDir d;
  const Files f = write_files(d, 16 * 40 + 1);
  const std::string run = d.file("run");
  const Experiment e = load_experiment(
      d.write("e.yaml",
              "data: {seq_len: 16, vocab_size: 64, num_bytes: 2, ignore_input_index: 2,"
              " batch_size: 2, global_batch_size: 2, val_samples: 6,\n"
              "  train: {_name_: sft_ordered, tokenized_input_path: " +
                  f.inputs + ", tokenized_label_path: " + f.labels +
                  "},\n  val: {_name_: sft_ordered, tokenized_input_path: " + f.inputs +
                  ", tokenized_label_path: " + f.labels + "}}\n" + kModel +
                  "trainer: {max_steps: 3, eval_interval: 1, log_interval: 1, save_checkpoint: "
                  "false, seed: 1}\n"),
      {});
  TrainOptions opt;
  opt.quiet = true;
  opt.run_dir = run;
  train(e, opt);
  std::ifstream m(run + "/metrics.jsonl");
  int val_records = 0;
  for (std::string line; std::getline(m, line);)
    if (line.find("\"val_loss\"") != std::string::npos) ++val_records;
  EXPECT_EQ(val_records, 3);
}

}  // namespace
}  // namespace rat
