// End to end: `rat train` on text tokenized by our tokenizer writes checkpoint
// model directories that carry tokenizer.model (SPEC.md "Checkpoints": a model
// directory holds tokenizer.model when a tokenizer belongs to it), and the
// generation loop runs from such a directory, text in, text out.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "data/tokenizer.h"
#include "generate/generate.h"
#include "model/model.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace rat {
namespace {

using rat::testing::slurp;

TEST(GenerateTrained, CheckpointCarriesTokenizerAndGenerates) {
  const rat::testing::TempDir tmp_dir;  // per process: ctest -j runs tests at once
  const fs::path dir = tmp_dir.path();
  fs::create_directories(dir / "data");
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "The Python interpreter reads line " + std::to_string(i % 7) + " of the program.\n";
  { std::ofstream(dir / "corpus.txt") << text; }
  const std::string tok_path =
      train_tokenizer({(dir / "corpus.txt").string()}, (dir / "data" / "tokenizer").string(), 320);
  Tokenizer tok = Tokenizer::load(tok_path);
  // The trainer takes the tokenizer from next to the training data, as
  // scripts/prepare_corpus.sh lays it out (data/pydoc/tokenizer.model).
  fs::rename(tok_path, dir / "data" / "tokenizer.model");
  std::vector<int32_t> ids = tok.encode(text);
  std::vector<uint16_t> u16(ids.begin(), ids.end());
  for (const char* name : {"train.bin", "val.bin"}) {
    std::ofstream f(dir / "data" / name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(u16.data()), std::streamsize(u16.size() * 2));
  }
  const std::string V = std::to_string(tok.vocab_size());
  {
    std::ofstream f(dir / "exp.yaml");
    f << "data: {seq_len: 32, vocab_size: " << V << ", num_bytes: 2, ignore_input_index: 2,\n"
      << "  batch_size: 2, global_batch_size: 2,\n"
      << "  train: {_name_: lm_ordered, tokenized_file_path: "
      << (dir / "data" / "train.bin").string()
      << "},\n  val: {_name_: lm_ordered, tokenized_file_path: "
      << (dir / "data" / "val.bin").string() << "}, val_samples: 2}\n"
      << "model:\n  backbone: {_name_: sequence, num_layers: 1, d_model: 32, interleave_step: 1,\n"
      << "    seq_cell: {_name_: rat, d_head: 8, ngroups: 1, chunk_size: 4},\n"
      << "    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}\n"
      << "  embedding: {vocab_size: " << V << ", pe: {_name_: interrope, base: 10000}}\n"
      << "task: {tie_embedding: true, ignore_index: -100}\n"
      << "optim:\n  optimizer: {_name_: adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], "
         "eps: 1.0e-8}\n"
      << "  lr_scheduler: {_name_: cosine, warmup_iter: 0.2, eta_min: 1.0e-6}\n"
      << "trainer: {seed: 1, dtype: float32, max_steps: 3, gradient_clipping: 1.0, "
         "log_interval: 1,\n  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, "
         "save_interval: 1.0,\n  save_dir: "
      << (dir / "run").string() << "}\n";
  }
  TrainOptions opt;
  opt.quiet = true;
  opt.run_dir = (dir / "run").string();
  TrainSummary s = train(load_experiment((dir / "exp.yaml").string(), {}), opt);
  const fs::path latest = dir / "run" / "latest";
  ASSERT_TRUE(fs::exists(latest / "tokenizer.model"));
  EXPECT_EQ(slurp(latest / "tokenizer.model"), slurp(dir / "data" / "tokenizer.model"));

  auto model = load_model_dir(latest.string());
  Tokenizer mtok = Tokenizer::load((latest / "tokenizer.model").string());
  GenerateOptions g;
  g.max_new_tokens = 6;
  g.sampling.greedy = true;
  int64_t calls = 0;
  GenerateResult r = generate(*model, {mtok.encode("The Python interpreter")}, g,
                              [&](int64_t, int32_t) { return ++calls > 0; });
  ASSERT_EQ(r.ids.size(), 1u);
  EXPECT_EQ(int64_t(r.ids[0].size()), calls);
  EXPECT_GE(r.ids[0].size(), 1u);
  EXPECT_LE(r.ids[0].size(), 6u);
  for (int32_t id : r.ids[0]) EXPECT_LT(id, tok.vocab_size());
  EXPECT_NO_THROW(mtok.decode(r.ids[0]));
  (void)s;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rat
