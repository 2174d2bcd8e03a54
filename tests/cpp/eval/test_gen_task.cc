// Generate-and-score tasks (eval/gen_task.h): the middle truncation and
// RULER's string_match_all on hand-computed cases, the case reader's
// FILE:LINE messages, and the batched greedy generation on a small model
// trained here with its own tokenizer (batch independence, per-case budgets,
// eos, truncation to the context, ids without tokenizer). The heatmap
// (eval/heatmap.h): a PNG when gnuplot runs, a clear error when it is missing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/tokenizer.h"
#include "eval/gen_task.h"
#include "eval/heatmap.h"
#include "generate/generate.h"
#include "model/model.h"
#include "test_util.h"
#include "train/experiment.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/gnuplot.h"

using namespace rat;
using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

namespace {

std::vector<int32_t> iota(int32_t n) {
  std::vector<int32_t> v(size_t(n), 0);
  for (int32_t i = 0; i < n; ++i) v[size_t(i)] = i;
  return v;
}

// The authors' rule with max_prefill = limit + 1 keeps (max_prefill - 1) // 2
// tokens from the front and the rest from the back; written out by hand.
TEST(TruncateMiddle, HandCases) {
  const auto ten = iota(10);
  EXPECT_EQ(truncate_middle(ten, 10), ten);  // exactly at the limit: untouched
  EXPECT_EQ(truncate_middle(ten, 11), ten);
  EXPECT_EQ(truncate_middle(ten, 9), (std::vector<int32_t>{0, 1, 2, 3, 5, 6, 7, 8, 9}));
  EXPECT_EQ(truncate_middle(ten, 8), (std::vector<int32_t>{0, 1, 2, 3, 6, 7, 8, 9}));
  EXPECT_EQ(truncate_middle(ten, 5), (std::vector<int32_t>{0, 1, 7, 8, 9}));  // odd: back +1
  EXPECT_EQ(truncate_middle(ten, 4), (std::vector<int32_t>{0, 1, 8, 9}));
  EXPECT_EQ(truncate_middle(ten, 1), (std::vector<int32_t>{9}));
  EXPECT_EQ(truncate_middle(iota(11), 10), (std::vector<int32_t>{0, 1, 2, 3, 4, 6, 7, 8, 9, 10}));
  EXPECT_NE(error_of([&] { truncate_middle(ten, 0); }).find(">= 1"), std::string::npos);
}

TEST(StringMatchAll, HandCases) {
  EXPECT_DOUBLE_EQ(string_match_all("The special magic number is 1234567.", {"1234567"}), 1.0);
  EXPECT_DOUBLE_EQ(
      string_match_all("numbers 1111111 and 3333333", {"1111111", "2222222", "3333333", "4444444"}),
      0.5);
  EXPECT_DOUBLE_EQ(string_match_all("The answer is GREEN.", {"green"}), 1.0);  // case
  EXPECT_DOUBLE_EQ(string_match_all("the answer is green", {"Green Grass"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("", {"12345"}), 0.0);  // none found
  EXPECT_DOUBLE_EQ(string_match_all("1234", {"12345"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("1234512345", {"12345", "12345", "9"}), 2.0 / 3.0);
}

TEST(ReadGenCases, ReadsFieldsAndLimit) {
  TempDir d;
  const std::string p =
      d.write("c.jsonl",
              "{\"prompt\": \"Q?\", \"answers\": [\"a\", \"b\"], \"id\": 7}\r\n\n"
              "{\"prompt_ids\": [3, 4], \"answers\": [\"x\"], \"max_new_tokens\": 5}\n"
              "{\"prompt\": \"R\", \"answers\": [\"c\"]}\n");
  auto c = read_gen_cases(p, -1, false);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].prompt, "Q?");
  EXPECT_FALSE(c[0].has_ids);
  EXPECT_EQ(c[0].answers, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c[0].max_new_tokens, -1);
  EXPECT_EQ(c[0].fields["id"], 7);
  EXPECT_EQ(c[1].line, 3);
  EXPECT_TRUE(c[1].has_ids);
  EXPECT_EQ(c[1].prompt_ids, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(c[1].max_new_tokens, 5);
  EXPECT_EQ(read_gen_cases(p, 2, false).size(), 2u);
}

TEST(ReadGenCases, MalformedLinesNamed) {
  TempDir d;
  auto err = [&](const std::string& line, bool niah = false) {
    const std::string p =
        d.write("bad.jsonl", "{\"prompt\": \"ok\", \"answers\": [\"a\"]}\n\n" + line + "\n");
    return error_of([&] { read_gen_cases(p, -1, niah); });
  };
  const std::string at = d.file("bad.jsonl") + ":3: ";
  EXPECT_EQ(err("{\"prompt\": 1").rfind(at + "not JSON", 0), 0u) << err("{\"prompt\": 1");
  EXPECT_EQ(err("[1]").rfind(at + "not a JSON object", 0), 0u);
  EXPECT_EQ(err("{\"answers\": [\"a\"]}").rfind(at + "no \"prompt\"", 0), 0u);
  EXPECT_EQ(err("{\"prompt\": \"p\", \"prompt_ids\": [1], \"answers\": [\"a\"]}")
                .rfind(at + "both \"prompt\" and \"prompt_ids\"", 0),
            0u);
  EXPECT_EQ(
      err("{\"prompt\": 3, \"answers\": [\"a\"]}").rfind(at + "\"prompt\" is not a string", 0), 0u);
  EXPECT_EQ(err("{\"prompt_ids\": [], \"answers\": [\"a\"]}").rfind(at + "\"prompt_ids\"", 0), 0u);
  EXPECT_EQ(err("{\"prompt_ids\": [1, -2], \"answers\": [\"a\"]}")
                .rfind(at + "\"prompt_ids\" holds -2", 0),
            0u);
  EXPECT_EQ(err("{\"prompt\": \"p\"}").rfind(at + "\"answers\" is missing", 0), 0u);
  EXPECT_EQ(err("{\"prompt\": \"p\", \"answers\": []}").rfind(at + "\"answers\" is not", 0), 0u);
  EXPECT_EQ(err("{\"prompt\": \"p\", \"answers\": [1]}").rfind(at + "\"answers\" holds", 0), 0u);
  EXPECT_EQ(err("{\"prompt\": \"p\", \"answers\": [\"a\"], \"max_new_tokens\": -1}")
                .rfind(at + "\"max_new_tokens\" is -1", 0),
            0u);
  EXPECT_EQ(err("{\"prompt\": \"p\", \"answers\": [\"a\"], \"depth\": 0.5}", true)
                .rfind(d.file("bad.jsonl") + ":1: \"length\"", 0),
            0u);  // the first line already lacks niah's fields
  const std::string empty = d.write("empty.jsonl", "\n  \n");
  EXPECT_NE(error_of([&] { read_gen_cases(empty, -1, false); }).find("no case"), std::string::npos);
  EXPECT_NE(
      error_of([&] { read_gen_cases(d.file("missing.jsonl"), -1, false); }).find("cannot read"),
      std::string::npos);
}

// A 2-layer RAT model trained for 40 steps on a repetitive text, with the
// BPE tokenizer trained on the same text: enough for greedy outputs that are
// not all one token.
class GenTaskModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    namespace fs = std::filesystem;
    const fs::path dir = dir_->path();
    fs::create_directories(dir / "data");
    std::string text;
    for (int i = 0; i < 120; ++i)
      text += "The magic number for key " + std::to_string(i % 13) + " is " +
              std::to_string(1000 + 7 * (i % 13)) + ". The grass is green.\n";
    { std::ofstream(dir / "corpus.txt") << text; }
    const std::string tp =
        train_tokenizer({(dir / "corpus.txt").string()}, (dir / "data" / "tok").string(), 300);
    fs::rename(tp, dir / "data" / "tokenizer.model");
    tok_ = new Tokenizer(Tokenizer::load((dir / "data" / "tokenizer.model").string()));
    std::vector<int32_t> ids = tok_->encode(text);
    std::vector<uint16_t> u16(ids.begin(), ids.end());
    for (const char* name : {"train.bin", "val.bin"}) {
      std::ofstream f(dir / "data" / name, std::ios::binary);
      f.write(reinterpret_cast<const char*>(u16.data()), std::streamsize(u16.size() * 2));
    }
    const std::string V = std::to_string(tok_->vocab_size());
    std::ofstream f(dir / "exp.yaml");
    f << "data: {seq_len: 48, vocab_size: " << V << ", num_bytes: 2, ignore_input_index: 2,\n"
      << "  batch_size: 4, global_batch_size: 4,\n"
      << "  train: {_name_: lm_ordered, tokenized_file_path: "
      << (dir / "data" / "train.bin").string()
      << "},\n  val: {_name_: lm_ordered, tokenized_file_path: "
      << (dir / "data" / "val.bin").string() << "}, val_samples: 2}\n"
      << "model:\n  backbone: {_name_: sequence, num_layers: 2, d_model: 32, interleave_step: 1,\n"
      << "    seq_cell: {_name_: rat, d_head: 8, ngroups: 1, chunk_size: 8},\n"
      << "    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}\n"
      << "  embedding: {vocab_size: " << V << ", pe: {_name_: interrope, base: 10000}}\n"
      << "task: {tie_embedding: true, ignore_index: -100}\n"
      << "optim:\n  optimizer: {_name_: adamw, lr: 1.0e-2, weight_decay: 0.1, betas: [0.9, "
         "0.95], eps: 1.0e-8}\n"
      << "  lr_scheduler: {_name_: cosine, warmup_iter: 0.1, eta_min: 1.0e-4}\n"
      << "trainer: {seed: 1, dtype: float32, max_steps: 40, gradient_clipping: 1.0, "
         "log_interval: 10,\n  eval_interval: 0, save_checkpoint: true, load_checkpoint: false, "
         "save_interval: 1.0,\n  save_dir: "
      << (dir / "run").string() << "}\n";
    f.close();
    TrainOptions opt;
    opt.quiet = true;
    opt.run_dir = (dir / "run").string();
    train(load_experiment((dir / "exp.yaml").string(), {}), opt);
    model_ = load_model_dir((dir / "run" / "latest").string()).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
    delete dir_;
  }

  static std::vector<GenCase> cases() {
    std::vector<GenCase> cs;
    const char* prompts[] = {"The magic number for key 3 is", "The grass", "key 11 is 10",
                             "The magic number for key 12 is 1084. The grass is green.\nThe",
                             "green.\n"};
    int64_t line = 1;
    for (const char* p : prompts) {
      GenCase c;
      c.line = line++;
      c.prompt = p;
      c.answers = {"1021"};
      cs.push_back(c);
    }
    cs[1].max_new_tokens = 3;
    cs[4].max_new_tokens = 0;
    GenCase ids;
    ids.line = line++;
    ids.has_ids = true;
    ids.prompt_ids = {5, 9, 14, 20};
    ids.answers = {"x"};
    cs.push_back(ids);
    return cs;
  }

  static GenTaskOptions options(int64_t batch) {
    GenTaskOptions o;
    o.batch_size = batch;
    o.default_new_tokens = 10;
    o.context = 48;
    o.eos_id = tok_->eos_id();
    return o;
  }

  static TempDir* dir_;
  static Tokenizer* tok_;
  static Model* model_;
};
TempDir* GenTaskModel::dir_ = nullptr;
Tokenizer* GenTaskModel::tok_ = nullptr;
Model* GenTaskModel::model_ = nullptr;

// Greedy answers depend on the case alone: batch 1, 2, 4 and all at once
// give the same ids, and each case's ids are the generation loop's own for
// that prompt alone.
TEST_F(GenTaskModel, BatchSizeDoesNotChangeGreedyOutputs) {
  const auto cs = cases();
  const auto one = run_gen_cases(*model_, tok_, cs, options(1), "t.jsonl");
  for (int64_t b : {2, 4, 6}) {
    const auto many = run_gen_cases(*model_, tok_, cs, options(b), "t.jsonl");
    for (size_t i = 0; i < cs.size(); ++i) {
      EXPECT_EQ(many[i].ids, one[i].ids) << "case " << i << ", batch " << b;
      EXPECT_EQ(many[i].prediction, one[i].prediction) << "case " << i << ", batch " << b;
    }
  }
  std::set<std::string> distinct;
  for (const auto& o : one) distinct.insert(o.prediction);
  EXPECT_GE(distinct.size(), 3u) << "the model should not answer everything alike";
  // Budgets: the line's, else the default; 0 generates nothing.
  EXPECT_EQ(one[1].ids.size(), 3u);
  EXPECT_EQ(one[1].new_tokens, 3);
  EXPECT_TRUE(one[4].ids.empty());
  EXPECT_EQ(one[4].prediction, "");
  EXPECT_EQ(one[0].new_tokens, 10);
  // The first case alone through generate() directly.
  GenerateOptions g;
  g.sampling.greedy = true;
  g.max_new_tokens = 10;
  g.eos_id = tok_->eos_id();
  const auto r = generate(*model_, {tok_->encode(cs[0].prompt)}, g);
  EXPECT_EQ(one[0].ids, r.ids[0]);
  std::vector<int32_t> text_ids;
  for (int32_t id : r.ids[0])
    if (id != g.eos_id) text_ids.push_back(id);
  EXPECT_EQ(one[0].prediction, tok_->decode(text_ids));
  // A smaller budget is a prefix of the larger one's answer.
  auto o = options(4);
  o.max_new_tokens = 4;
  const auto four = run_gen_cases(*model_, tok_, cs, o, "t.jsonl");
  for (size_t i = 0; i < cs.size(); ++i) {
    ASSERT_LE(four[i].ids.size(), 4u);
    if (one[i].ids.size() >= 4) {
      EXPECT_EQ(four[i].ids, std::vector<int32_t>(one[i].ids.begin(), one[i].ids.begin() + 4));
    }
  }
}

// eos ends a case and is no part of its text: taking the first greedy id of
// case 0 as eos stops it after one token.
TEST_F(GenTaskModel, EosStopsACase) {
  auto cs = cases();
  cs.resize(1);
  const auto free = run_gen_cases(*model_, tok_, cs, options(1), "t.jsonl");
  ASSERT_FALSE(free[0].ids.empty());
  auto o = options(1);
  o.eos_id = free[0].ids[0];
  const auto stopped = run_gen_cases(*model_, tok_, cs, o, "t.jsonl");
  EXPECT_EQ(stopped[0].ids, std::vector<int32_t>{free[0].ids[0]});
  EXPECT_EQ(stopped[0].finish, "eos");
  EXPECT_EQ(stopped[0].prediction, "");
  EXPECT_EQ(free[0].finish, "length");
}

// Prompts longer than context - new tokens keep their two ends (gen's
// default); a fixed limit applies as given; -1 never cuts.
TEST_F(GenTaskModel, LongPromptsCutInTheMiddle) {
  GenCase c;
  c.line = 1;
  for (int i = 0; i < 12; ++i) c.prompt += "The magic number for key 5 is 1035. ";
  c.answers = {"1035"};
  c.max_new_tokens = 6;
  const auto all = tok_->encode(c.prompt);
  ASSERT_GT(all.size(), 48u);
  auto o = options(1);
  const auto r = run_gen_cases(*model_, tok_, {c}, o, "t.jsonl");
  EXPECT_EQ(r[0].prompt_tokens_in, int64_t(all.size()));
  EXPECT_EQ(r[0].prompt_tokens, 48 - 6);
  // Same ids as the cut prompt given as ids.
  GenCase ids = c;
  ids.has_ids = true;
  ids.prompt_ids = truncate_middle(all, 42);
  const auto r2 = run_gen_cases(*model_, tok_, {ids}, o, "t.jsonl");
  EXPECT_EQ(r2[0].ids, r[0].ids);
  o.max_prompt_tokens = 17;
  EXPECT_EQ(run_gen_cases(*model_, tok_, {c}, o, "t.jsonl")[0].prompt_tokens, 17);
  o.max_prompt_tokens = -1;  // niah: evaluated past the context
  EXPECT_EQ(run_gen_cases(*model_, tok_, {c}, o, "t.jsonl")[0].prompt_tokens, int64_t(all.size()));
  // No room left for any prompt token.
  o.max_prompt_tokens = 0;
  o.max_new_tokens = 48;
  EXPECT_NE(error_of([&] {
              run_gen_cases(*model_, tok_, {c}, o, "t.jsonl");
            }).find("t.jsonl:1: max_new_tokens 48 leaves no room"),
            std::string::npos);
}

TEST_F(GenTaskModel, BadCasesNamed) {
  auto cs = cases();
  // A text prompt without tokenizer; ids-only cases need none and print ids.
  EXPECT_NE(error_of([&] {
              run_gen_cases(*model_, nullptr, cs, options(2), "t.jsonl");
            }).find("t.jsonl:1: a text \"prompt\" needs the model's tokenizer.model"),
            std::string::npos);
  std::vector<GenCase> ids_only = {cs[5]};
  const auto r = run_gen_cases(*model_, nullptr, ids_only, options(2), "t.jsonl");
  const auto with_tok = run_gen_cases(*model_, tok_, ids_only, options(2), "t.jsonl");
  ASSERT_EQ(r[0].ids, with_tok[0].ids);
  std::string joined;
  for (int32_t id : r[0].ids)
    if (id != tok_->eos_id()) joined += (joined.empty() ? "" : " ") + std::to_string(id);
  EXPECT_EQ(r[0].prediction, joined);
  ids_only[0].prompt_ids.push_back(int32_t(model_->config().vocab_size));
  EXPECT_NE(error_of([&] { run_gen_cases(*model_, tok_, ids_only, options(2), "t.jsonl"); })
                .find("t.jsonl:6: token id " + std::to_string(model_->config().vocab_size) +
                      " is outside the model's vocabulary"),
            std::string::npos);
  cs[2].prompt = "";
  EXPECT_NE(error_of([&] {
              run_gen_cases(*model_, tok_, cs, options(2), "t.jsonl");
            }).find("t.jsonl:3: the prompt encodes to no tokens"),
            std::string::npos);
}

// The predictions file keeps the line's fields and reads back as JSONL.
TEST_F(GenTaskModel, PredictionsFileKeepsFields) {
  TempDir d;
  const std::string p = d.write("c.jsonl",
                                "{\"prompt\": \"The grass\", \"answers\": [\"is green\"], "
                                "\"id\": \"q1\", \"max_new_tokens\": 4}\n");
  const auto cs = read_gen_cases(p, -1, false);
  const auto outs = run_gen_cases(*model_, tok_, cs, options(1), p);
  write_predictions(d.file("pred.jsonl"), cs, outs, {0.25});
  const auto j = nlohmann::json::parse(slurp(d.file("pred.jsonl")));
  EXPECT_EQ(j["id"], "q1");
  EXPECT_EQ(j["prompt"], "The grass");
  EXPECT_EQ(j["answers"][0], "is green");
  EXPECT_EQ(j["prediction"], outs[0].prediction);
  EXPECT_EQ(j["score"], 0.25);
  EXPECT_FALSE(std::filesystem::exists(d.file("pred.jsonl.tmp")));
}

TEST(Heatmap, WritesPngWhenGnuplotRuns) {
  TempDir d;
  try {
    require_gnuplot("probe");
  } catch (const Error&) {
    GTEST_SKIP() << "gnuplot is not installed";
  }
  const std::string out = d.file("heat.png");
  write_heatmap(out,
                {{1024, 0.0, 1.0, 2},
                 {1024, 0.5, 0.5, 2},
                 {4096, 0.0, 0.25, 1},
                 {4096, 1.0, 0.0, 1}},  // sparse: (1024, 1.0) and (4096, 0.5) are missing
                "test");
  const std::string png = slurp(out);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_NE(error_of([&] { write_heatmap(d.file("none.png"), {}, "t"); }).find("no score"),
            std::string::npos);
}

TEST(Heatmap, ClearErrorWithoutGnuplot) {
  TempDir d;
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  ::setenv("PATH", d.path().c_str(), 1);  // an empty directory: no gnuplot on it
  const std::string out = d.file("heat.png");
  const std::string e1 = error_of([&] { require_gnuplot(out); });
  const std::string e2 = error_of([&] { write_heatmap(out, {{64, 0.5, 1.0, 1}}, "t"); });
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_NE(e1.find(out + ": gnuplot not found; install gnuplot-nox"), std::string::npos) << e1;
  EXPECT_NE(e2.find("gnuplot not found"), std::string::npos) << e2;
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

}  // namespace
