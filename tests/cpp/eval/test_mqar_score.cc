// `rat eval --task mqar` (eval/mqar.h: read_mqar_test, score_mqar) and the
// argmax output of Model::label_log_probs it stands on: the argmax is the
// first id of the largest logit (torch.argmax's choice), the accuracy and
// per-example accuracy equal the float64 PyTorch oracle's
// (tests/python/eval_oracle.py) on golden models, and broken task files are
// named with what was expected.
//
// The oracle compares argmaxes of float64 logits with ours in fp32, whose
// logits are within ~1e-6 x max|logit| of its (tests/reference/check_case.cc
// bounds them by 2e-5 x max|logit|). An argmax can differ only where the
// oracle's top-2 margin is below twice that bound; such near-ties are
// excused (and counted), any other difference fails. The answer NLL, a sum
// of positive terms, gets 1e-5 relative (see test_rolling.cc).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>

#include "data/sft.h"
#include "eval/mqar.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

using namespace rat;
using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

namespace {

std::unique_ptr<Model> small_model(int64_t V, uint64_t seed) {
  ModelConfig c;
  c.seq_len = 64;
  c.vocab_size = V;
  c.num_layers = 2;
  c.d_model = 32;
  c.seq_cell.kind = MixerKind::kRat;
  c.seq_cell.d_head = 8;
  c.seq_cell.chunk_size = 4;
  c.ffn.d_ffn = 64;
  c.pe = PosEnc::kRopeInterRope;
  c.resolve("test");
  auto m = std::make_unique<Model>(c);
  m->init(seed);
  // Scaled as the golden cases are, so the logits spread over O(1).
  for (const ParamSpec& s : m->layout().specs()) {
    const float k = s.name == "embedding.wte.weight" ? 0.25f / 0.02f
                    : s.shape.size() == 2            ? (1.f / std::sqrt(float(s.shape[1]))) / 0.02f
                                                     : 1.f;
    for (int64_t i = 0; i < s.numel; ++i) m->params()[s.offset + i] *= k;
  }
  return m;
}

TEST(LabelLogProbsArgmax, FirstLargestLogitAtEveryPosition) {
  const int64_t B = 2, T = 150, V = 53, N = B * T;  // N > one 256-row block of logits
  auto m = small_model(V, 5);
  std::mt19937 rng(3);
  std::vector<int32_t> ids(static_cast<size_t>(N)), labels(static_cast<size_t>(N));
  for (auto& i : ids) i = int32_t(rng() % V);
  for (auto& i : labels) i = int32_t(rng() % V);
  for (int64_t i = 0; i < N; i += 7) labels[size_t(i)] = -100;  // ignored rows get an argmax too
  std::vector<float> lp(static_cast<size_t>(N)), lp_plain(lp), logits(static_cast<size_t>(N * V));
  std::vector<int32_t> best(static_cast<size_t>(N), -1);
  m->label_log_probs(ids.data(), labels.data(), B, T, lp.data(), best.data());
  m->label_log_probs(ids.data(), labels.data(), B, T, lp_plain.data());
  m->logits(ids.data(), B, T, logits.data());
  for (int64_t r = 0; r < N; ++r) {
    const float* row = logits.data() + r * V;
    int64_t want = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > row[want]) want = v;
    EXPECT_EQ(best[size_t(r)], want) << "row " << r;
    // Asking for the argmax leaves the log-probabilities as they were.
    EXPECT_EQ(lp[size_t(r)], lp_plain[size_t(r)]) << "row " << r;
  }
}

TEST(LabelLogProbsArgmax, TiesGoToTheFirstId) {
  // V 32: a multiple of every GEMM kernel's column block (AVX-512's and
  // AVX2's), so no column of the head goes through a tail kernel whose sums
  // run in another order, which would break the ties by rounding.
  const int64_t V = 32, T = 9;
  auto m = small_model(V, 6);
  // Tied head: equal embedding rows make every logit of a position equal.
  float* wte = m->params() + m->layout().find("embedding.wte.weight")->offset;
  const int64_t D = m->config().d_model;
  for (int64_t v = 1; v < V; ++v)
    for (int64_t d = 0; d < D; ++d) wte[v * D + d] = wte[d];
  std::vector<int32_t> ids(T, 3), labels(T, 7), best(T, -1);
  std::vector<float> lp(T);
  m->label_log_probs(ids.data(), labels.data(), 1, T, lp.data(), best.data());
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_EQ(best[size_t(t)], 0) << "t " << t;
    EXPECT_NEAR(lp[size_t(t)], -std::log(double(V)), 1e-5);
  }
}

bool have_torch() {
  return std::system("/usr/bin/python3 -c 'import torch, yaml' >/dev/null 2>&1") == 0;
}

// A golden model (make_case.py), a task written by write_mqar, and the
// oracle's task with every other answer relabelled to its argmax.
void check_against_oracle(const std::string& config, const MqarOptions& opt, int64_t B) {
  TempDir dir;
  const std::string py = "/usr/bin/python3 " RAT_PYTHON_DIR "/";
  std::string cmd = py + "make_case.py --config " RAT_PYTHON_DIR "/cases/" + config +
                    ".yaml --out " + dir.file("case") + " >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  write_mqar(opt, 2, 9, 11, dir.file("task/k"));
  cmd = py + "eval_oracle.py mqar --model " + dir.file("case/model") + " --prefix " +
        dir.file("task/k") + " --out-prefix " + dir.file("task/k2") + " --out " +
        dir.file("oracle.json");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto want = nlohmann::json::parse(slurp(dir.file("oracle.json")));
  auto model = load_model_dir(dir.file("case/model"));
  const MqarTask task = read_mqar_test(dir.file("task/k2"));
  ASSERT_EQ(task.examples, 9);
  const MqarScore s = score_mqar(*model, task, B);
  EXPECT_EQ(s.answers, want["answers"].get<int64_t>());
  EXPECT_EQ(s.answers, 9 * opt.pairs);
  EXPECT_EQ(s.examples, 9);

  // Our argmax at every answer position, against the oracle's.
  const int64_t T = opt.seq_len;
  std::vector<float> lp(size_t(9 * T));
  std::vector<int32_t> best(size_t(9 * T));
  model->label_log_probs(task.inputs.data(), task.labels.data(), 9, T, lp.data(), best.data());
  int64_t near_ties = 0, flips = 0;
  for (const auto& a : want["per_answer"]) {
    const int64_t at = a["example"].get<int64_t>() * T + a["t"].get<int64_t>();
    ASSERT_EQ(task.labels[size_t(at)], a["label"].get<int32_t>());
    if (best[size_t(at)] == a["argmax"].get<int32_t>()) continue;
    const bool near = a["margin"].get<double>() <= 4e-5 * a["max_abs_logit"].get<double>();
    near_ties += near;
    EXPECT_TRUE(near) << config << ": argmax " << best[size_t(at)] << " vs oracle " << a["argmax"]
                      << " at margin " << a["margin"];
    flips += best[size_t(at)] == a["label"].get<int32_t>() ? 1 : -1;
  }
  // With no near-tie the counts must be the oracle's exactly.
  EXPECT_EQ(s.correct, want["correct"].get<int64_t>() + flips) << config;
  if (near_ties == 0) {
    EXPECT_EQ(s.examples_correct, want["examples_correct"].get<int64_t>()) << config;
    EXPECT_DOUBLE_EQ(s.acc(), want["acc"].get<double>());
  }
  EXPECT_GT(s.correct, 0) << "the oracle's relabelling makes about half the answers right";
  EXPECT_LT(s.correct, s.answers);
  const double nll = want["answer_nll"];
  EXPECT_LE(std::fabs(s.answer_nll - nll), 1e-5 * nll) << config;
}

TEST(MqarOracle, AccuracyEqualsFloat64TorchArgmax) {
  if (!have_torch()) GTEST_SKIP() << "/usr/bin/python3 with torch and PyYAML not available";
  MqarOptions o;
  o.vocab = 64, o.pairs = 3, o.seq_len = 16;  // rat_g1: V 64, T 16
  check_against_oracle("rat_g1", o, 4);
  o.vocab = 100, o.pairs = 4, o.seq_len = 26;  // the RAT / local attention hybrid: V 100
  check_against_oracle("hybrid_rat_local", o, 9);
  o.vocab = 60, o.pairs = 2, o.seq_len = 12;
  check_against_oracle("attention", o, 2);
}

// ---- The reader: every broken file is named, with what was expected.

struct TaskFiles {
  TempDir dir;
  std::string prefix = dir.file("k");
  MqarOptions opt;
  TaskFiles() {
    opt.vocab = 40, opt.pairs = 2, opt.seq_len = 12;
    write_mqar(opt, 1, 5, 3, prefix);
  }
};

TEST(MqarRead, ReadsTheTestSplitAndItsLimit) {
  TaskFiles f;
  const MqarTask all = read_mqar_test(f.prefix);
  EXPECT_EQ(all.examples, 5);
  EXPECT_EQ(all.opt.vocab, 40);
  EXPECT_EQ(all.opt.pairs, 2);
  EXPECT_EQ(all.opt.seq_len, 12);
  const MqarSplit want = make_mqar(f.opt, 5, 3, 1);  // the test split is stream 1
  EXPECT_EQ(all.inputs, want.inputs);
  EXPECT_EQ(all.labels, want.labels);  // -100 restored from 0xFF9C
  const MqarTask two = read_mqar_test(f.prefix, 2);
  EXPECT_EQ(two.examples, 2);
  EXPECT_EQ(two.labels, std::vector<int32_t>(want.labels.begin(), want.labels.begin() + 24));
  EXPECT_EQ(read_mqar_test(f.prefix, 99).examples, 5);
}

TEST(MqarRead, BrokenFilesAreNamed) {
  TaskFiles f;
  const std::string p = f.prefix;
  auto has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  };
  has(error_of([&] { read_mqar_test(p + "_missing"); }), p + "_missing.json: cannot read");
  const std::string report = slurp(p + ".json");
  f.dir.write("k.json", "{\"task\": \"mqar\", ");
  has(error_of([&] { read_mqar_test(p); }), p + ".json: not JSON");
  f.dir.write("k.json", "{\"task\": \"niah\"}");
  has(error_of([&] { read_mqar_test(p); }), p + ".json: key task: expected \"mqar\"");
  auto j = nlohmann::json::parse(report);
  j.erase("pairs");
  f.dir.write("k.json", j.dump());
  has(error_of([&] { read_mqar_test(p); }), p + ".json: key pairs: expected an integer");
  j = nlohmann::json::parse(report);
  j["test"]["examples"] = "5";
  f.dir.write("k.json", j.dump());
  has(error_of([&] { read_mqar_test(p); }), p + ".json: key test.examples: expected an integer");
  j = nlohmann::json::parse(report);
  j["seq_len"] = 13;
  f.dir.write("k.json", j.dump());
  has(error_of([&] { read_mqar_test(p); }), p + ".json: --seq-len 13: expected an even length");
  j = nlohmann::json::parse(report);
  j["test"]["examples"] = 6;  // the files hold 5
  f.dir.write("k.json", j.dump());
  has(error_of([&] { read_mqar_test(p); }),
      p + ".test.inputs.bin: 60 ids, expected 72 (examples x seq_len of the report)");
  f.dir.write("k.json", report);

  const std::string labels = slurp(p + ".test.labels.bin");
  f.dir.write("k.test.labels.bin", labels.substr(0, labels.size() - 2));
  has(error_of([&] { read_mqar_test(p); }), p + ".test.labels.bin: 59 ids, expected 60");
  std::string bad = labels;
  bad[6] = char(41), bad[7] = 0;  // label 41 at position 3, vocab 40
  f.dir.write("k.test.labels.bin", bad);
  has(error_of([&] { read_mqar_test(p); }),
      p + ".test.labels.bin: label 41 at position 3, expected -100 or an id below the report's "
          "vocab 40");
  f.dir.write("k.test.labels.bin", labels);
  std::filesystem::remove(p + ".test.inputs.bin");
  has(error_of([&] { read_mqar_test(p); }), p + ".test.inputs.bin");
  has(error_of([&] { read_mqar_test(p, 0); }), "--limit 0");
}

TEST(MqarScore, ModelVocabBelowTheTaskIsRefused) {
  TaskFiles f;
  auto m = small_model(32, 1);
  const MqarTask t = read_mqar_test(f.prefix);
  EXPECT_NE(error_of([&] {
              score_mqar(*m, t, 2);
            }).find("the model's vocab_size 32 is below the task's vocab 40"),
            std::string::npos);
}

}  // namespace
