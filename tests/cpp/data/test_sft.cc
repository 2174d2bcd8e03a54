// SFT data: `rat sft-data`'s library half (build_sft_data) and training on it
// counts answer tokens only.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "data/sft.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "train/experiment.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace rat;
using rat::testing::error_of;
using rat::testing::TempDir;

namespace {

constexpr int kVocab = 320;

// Little-endian uint16 file -> ids, 0xFF9C read as -100.
std::vector<int32_t> read_u16(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<int32_t> out;
  unsigned char b[2];
  while (f.read(reinterpret_cast<char*>(b), 2)) {
    const int v = b[0] | (b[1] << 8);
    out.push_back(v == 0xFF9C ? -100 : v);
  }
  return out;
}

struct Example {
  std::string prompt, answer;
};

class SftTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    static const char* words[] = {"what",  "is",    "the",   "gate",   "of",  "a",
                                  "chunk", "state", "token", "answer", "rat", "layer",
                                  "key",   "value", "yes",   "no"};
    std::mt19937 rng(3);
    auto sentence = [&](int n) {
      std::string s;
      for (int i = 0; i < n; ++i) {
        if (i) s += ' ';
        s += words[rng() % 16];
      }
      return s;
    };
    std::string text;
    for (int i = 0; i < 200; ++i) text += sentence(8) + ".\n";
    dir_->write("text.txt", text);
    tokenizer_ =
        new std::string(train_tokenizer({dir_->file("text.txt")}, dir_->file("tok"), kVocab));
    examples_ = new std::vector<Example>;
    std::string jsonl;
    for (int i = 0; i < 24; ++i) {
      Example e{sentence(2 + int(rng() % 5)) + "?", sentence(1 + int(rng() % 4)) + "."};
      examples_->push_back(e);
      jsonl += nlohmann::json{{"prompt", e.prompt}, {"answer", e.answer}}.dump() + "\n";
      if (i == 5) jsonl += "\n";  // blank lines are skipped
    }
    jsonl_ = new std::string(dir_->write("qa.jsonl", jsonl));
  }
  static void TearDownTestSuite() {
    delete examples_;
    delete jsonl_;
    delete tokenizer_;
    delete dir_;
  }
  static TempDir* dir_;
  static std::string *tokenizer_, *jsonl_;
  static std::vector<Example>* examples_;
};
TempDir* SftTest::dir_;
std::string *SftTest::tokenizer_, *SftTest::jsonl_;
std::vector<Example>* SftTest::examples_;

}  // namespace

// The files hold template(prompt) + answer + eos per example; labels are the
// next id on answer positions (eos included) and -100 elsewhere, rebuilt here
// independently from the examples.
TEST_F(SftTest, FilesMarkExactlyTheAnswers) {
  SftOptions o;
  o.jsonl = *jsonl_;
  o.tokenizer = *tokenizer_;
  o.out_prefix = dir_->file("out/qa");
  o.prompt_template = "Q: {prompt}\nA: ";
  SftReport r = build_sft_data(o);
  EXPECT_EQ(r.examples, 24);
  EXPECT_EQ(r.skipped_blank_lines, 1);
  EXPECT_EQ(r.num_bytes, 2);
  const Tokenizer tok = Tokenizer::load(*tokenizer_);
  std::vector<int32_t> want_in, want_lab;  // want_lab[i]: target of position i
  int64_t answer_ids = 0;
  for (const Example& e : *examples_) {
    for (int32_t id : tok.encode("Q: " + e.prompt + "\nA: "))
      want_in.push_back(id), want_lab.push_back(-100);
    for (int32_t id : tok.encode(e.answer))
      want_in.push_back(id), want_lab.push_back(id), ++answer_ids;
    want_in.push_back(tok.eos_id()), want_lab.push_back(tok.eos_id());
  }
  want_lab.erase(want_lab.begin());
  want_lab.push_back(-100);
  const std::vector<int32_t> in = read_u16(r.inputs_path), lab = read_u16(r.labels_path);
  EXPECT_EQ(in, want_in);
  EXPECT_EQ(lab, want_lab);
  int64_t counted = 0;
  for (size_t i = 0; i < lab.size(); ++i)
    if (lab[i] != -100) {
      ++counted;
      EXPECT_EQ(lab[i], in[i + 1]) << i;
    }
  EXPECT_EQ(counted, answer_ids + 24);
  EXPECT_EQ(r.answer_labels, counted);
  EXPECT_GT(counted, 0);
  EXPECT_LT(counted, int64_t(lab.size()) / 2) << "prompts should dominate the test data";
  // The tokenizer travels with the data (and so into every checkpoint).
  EXPECT_EQ(r.tokenizer_path, dir_->file("out/tokenizer.model"));
  EXPECT_EQ(rat::testing::slurp(r.tokenizer_path), rat::testing::slurp(*tokenizer_));
  auto j = nlohmann::json::parse(rat::testing::slurp(r.report_path));
  EXPECT_EQ(j["answer_labels"].get<int64_t>(), counted);
}

TEST_F(SftTest, BadLinesAreNamedByLineNumberAndNothingIsWritten) {
  SftOptions o;
  o.tokenizer = *tokenizer_;
  o.out_prefix = dir_->file("bad/qa");
  auto msg_for = [&](const std::string& body) {
    o.jsonl = dir_->write("bad.jsonl", body);
    return error_of([&] { build_sft_data(o); });
  };
  const std::string good = "{\"prompt\": \"p\", \"answer\": \"a\"}\n";
  std::string m = msg_for(good + good + "{\"prompt\": \"p\", \"answer\": \n");
  EXPECT_NE(m.find("bad.jsonl:3: not valid JSON"), std::string::npos) << m;
  m = msg_for(good + "\n{\"prompt\": \"p\"}\n");
  EXPECT_NE(m.find("bad.jsonl:3: \"answer\" is missing"), std::string::npos) << m;
  m = msg_for("{\"prompt\": 3, \"answer\": \"a\"}\n");
  EXPECT_NE(m.find("bad.jsonl:1: \"prompt\" is not a string"), std::string::npos) << m;
  m = msg_for(good + "[1, 2]\n");
  EXPECT_NE(m.find("bad.jsonl:2: expected a JSON object"), std::string::npos) << m;
  m = msg_for(good + "{\"prompt\": \"p\", \"answer\": \"\"}\n");
  EXPECT_NE(m.find("bad.jsonl:2: \"answer\" is empty"), std::string::npos) << m;
  m = msg_for("\n\n");
  EXPECT_NE(m.find("no examples"), std::string::npos) << m;
  o.prompt_template = "no placeholder";
  m = msg_for(good);
  EXPECT_NE(m.find("{prompt}"), std::string::npos) << m;
  o.prompt_template = "Q: {prompt}\nA: ";
  fs::create_directories(dir_->file("other"));
  dir_->write("other/tokenizer.model", "not this tokenizer");
  o.out_prefix = dir_->file("other/qa");
  m = msg_for(good);
  EXPECT_NE(m.find("is a different tokenizer"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(dir_->file("other/qa.inputs.bin")));
  EXPECT_FALSE(fs::exists(dir_->file("bad/qa.inputs.bin")));
  EXPECT_FALSE(fs::exists(dir_->file("bad/qa.labels.bin")));
}

// One optimiser step on SFT data: the logged loss is the mean NLL over the
// answer positions only, recomputed here from full logits (in double) of the
// same two samples read straight from the files.
TEST_F(SftTest, TrainingCountsOnlyAnswerTokens) {
  SftOptions o;
  o.jsonl = *jsonl_;
  o.tokenizer = *tokenizer_;
  o.out_prefix = dir_->file("train/qa");
  SftReport r = build_sft_data(o);
  const int64_t T = 32, B = 2;
  std::ofstream(dir_->file("exp.yaml"))
      << "data: {seq_len: " << T << ", vocab_size: " << kVocab
      << ", num_bytes: 2, ignore_input_index: " << r.eos_id
      << ", batch_size: 2, global_batch_size: 2,\n"
      << "  train: {_name_: sft_ordered, tokenized_input_path: " << r.inputs_path
      << ", tokenized_label_path: " << r.labels_path << "}}\n"
      << "model:\n  backbone: {_name_: sequence, num_layers: 1, d_model: 32, interleave_step: 1,\n"
         "    seq_cell: {_name_: rat, d_head: 8, ngroups: 2, chunk_size: 4},\n"
         "    hidden_cell: {_name_: ffn, d_ffn: 64, act_fn: gelu, bias: false}}\n"
      << "  embedding: {vocab_size: " << kVocab << ", pe: {_name_: interrope, base: 10000}}\n"
      << "task: {tie_embedding: true, ignore_index: -100}\n"
         "optim: {optimizer: {_name_: adamw, lr: 1.0e-3}}\n"
         "trainer: {seed: 5, dtype: float32, max_steps: 1, log_interval: 1, save_checkpoint: "
         "false,\n"
         "  pretrained_path: "
      << dir_->file("init") << "}\n";
  Experiment e = load_experiment(dir_->file("exp.yaml"), {});
  // A starting model whose logits vary a lot between positions (weights x 8
  // of the small SPEC init), so a mean over the wrong positions cannot agree.
  {
    Model m(e.model);
    m.init(e.seed);
    for (int64_t i = 0; i < m.layout().total(); ++i) m.params()[i] *= 8.f;
    save_model_dir(m, dir_->file("init"));
  }
  TrainOptions q;
  q.quiet = true;
  q.run_dir = dir_->file("run");
  train(e, q);
  double logged = 0;
  {
    std::ifstream f(dir_->file("run/metrics.jsonl"));
    std::string line;
    ASSERT_TRUE(std::getline(f, line));
    logged = nlohmann::json::parse(line)["loss"].get<double>();
  }

  std::unique_ptr<Model> m = load_model_dir(dir_->file("init"));
  const std::vector<int32_t> in = read_u16(r.inputs_path), lab = read_u16(r.labels_path);
  std::vector<int32_t> ids(in.begin(), in.begin() + B * T);
  std::vector<float> logits(size_t(B * T * kVocab));
  m->logits(ids.data(), B, T, logits.data());
  double answer_nll = 0, all_nll = 0;
  int64_t answers = 0;
  for (int64_t i = 0; i < B * T; ++i) {
    const float* z = &logits[size_t(i * kVocab)];
    double mx = z[0], s = 0;
    for (int v = 0; v < kVocab; ++v) mx = std::max(mx, double(z[v]));
    for (int v = 0; v < kVocab; ++v) s += std::exp(double(z[v]) - mx);
    const int32_t next = i + 1 < int64_t(in.size()) ? in[size_t(i + 1)] : 0;
    const double nll = std::log(s) + mx - double(z[next]);
    all_nll += nll;
    if (lab[size_t(i)] != -100) answer_nll += nll, ++answers;
  }
  ASSERT_GT(answers, 0);
  ASSERT_LT(answers, B * T / 2);
  const double answer_mean = answer_nll / double(answers), all_mean = all_nll / double(B * T);
  // f32 forward on both sides; the loss is a mean of O(10) values: 1e-5 relative.
  EXPECT_NEAR(logged, answer_mean, 1e-5 * answer_mean) << answers << " answer labels";
  EXPECT_GT(std::abs(all_mean - answer_mean), 1e-2 * answer_mean)
      << "the test data must tell answer-only from all-token means";
}
