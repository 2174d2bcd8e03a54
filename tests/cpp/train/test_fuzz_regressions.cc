// Inputs the fuzz targets (fuzz/, docs/reliability.md) found escaping as something other than
// rat::Error, reduced to their cause. Each must now be one rat::Error naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "data/sft.h"
#include "data/tokenizer.h"
#include "eval/metrics.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "train/compose.h"
#include "train/plot.h"

using rat::testing::error_of;
using rat::testing::TempDir;

// fuzz/compose.cc: a YAML syntax error in a config tree's file escaped compose() as
// YAML::ParserException (its "is the file empty?" pre-check parsed it unguarded).
TEST(FuzzRegressionCompose, SyntaxErrorInConfigYamlNamesTheFile) {
  TempDir dir;
  dir.write("config.yaml",
            "defaults:\n  - _self_\ntrainer: {max_epoch: 1, save_dir: ${base_dir}/ckpt}\n");
  const std::string msg = error_of([&] { rat::compose(dir.path(), {}); });
  EXPECT_NE(msg.find("config.yaml:3"), std::string::npos) << msg;
}

TEST(FuzzRegressionCompose, SyntaxErrorInAGroupOptionNamesTheFile) {
  TempDir dir;
  dir.write("config.yaml", "defaults:\n  - _self_\n  - model: a\n");
  std::filesystem::create_directories(dir.file("model"));
  dir.write("model/a.yaml", "x: [1, 2\n");
  const std::string msg = error_of([&] { rat::compose(dir.path(), {}); });
  EXPECT_NE(msg.find("a.yaml"), std::string::npos) << msg;
}

// fuzz/compose.cc: compose_file read config.yaml with YAML::LoadFile, unguarded.
TEST(FuzzRegressionCompose, ComposeFileWithBadConfigYamlNamesIt) {
  TempDir dir;
  dir.write("config.yaml", "defaults:\n  - _self_\n  - experiment: null\nx: {a: ${b}}\n");
  std::filesystem::create_directories(dir.file("experiment"));
  const std::string x = dir.write("experiment/x.yaml", "defaults:\n  - _self_\n");
  const std::string msg = error_of([&] { rat::compose_file(x, {}); });
  EXPECT_NE(msg.find("config.yaml:4"), std::string::npos) << msg;
}

// fuzz/compose.cc: a `group=option` or `+group=option` override whose option is not YAML
// escaped as YAML::ParserException.
TEST(FuzzRegressionCompose, GroupOverrideThatIsNotYamlNamesTheOverride) {
  TempDir dir;
  dir.write("config.yaml", "defaults:\n  - _self_\n  - model: a\n");
  std::filesystem::create_directories(dir.file("model"));
  dir.write("model/a.yaml", "x: 1\n");
  for (const char* ov : {"model=[", "+model@m={"}) {
    const std::string msg = error_of([&] { rat::compose(dir.path(), {ov}); });
    EXPECT_NE(msg.find(std::string("override '") + ov + "'"), std::string::npos) << msg;
  }
}

// fuzz/metrics.cc: a metrics.jsonl record whose "step" is not a number escaped read_metric as
// nlohmann::json::type_error.
TEST(FuzzRegressionMetrics, NonNumericStepNamesTheLine) {
  TempDir dir;
  dir.write("metrics.jsonl", "{\"step\": 1, \"loss\": 2}\n{\"step\": \"a\", \"loss\": 1}\n");
  const std::string msg = error_of([&] { rat::read_metric(dir.path(), "loss"); });
  EXPECT_NE(msg.find("metrics.jsonl:2: 'step' is string"), std::string::npos) << msg;
}

// fuzz/compose.cc: compose_file iterated a config.yaml whose defaults is a mapping as a list:
// YAML::InvalidNode escaped.
TEST(FuzzRegressionCompose, ComposeFileWithDefaultsMappingNamesIt) {
  TempDir dir;
  dir.write("config.yaml", "defaults: {a: b}\n");
  // and without any defaults key (an invalid node in yaml-cpp):
  TempDir bare;
  bare.write("config.yaml", "x: 1\n");
  std::filesystem::create_directories(bare.file("experiment"));
  const std::string y = bare.write("experiment/x.yaml", "defaults:\n  - _self_\n");
  EXPECT_NE(error_of([&] { rat::compose_file(y, {}); }).find("selects no group"),
            std::string::npos);
  std::filesystem::create_directories(dir.file("experiment"));
  const std::string x = dir.write("experiment/x.yaml", "defaults:\n  - _self_\n");
  const std::string msg = error_of([&] { rat::compose_file(x, {}); });
  EXPECT_NE(msg.find("config.yaml:1: defaults: got"), std::string::npos) << msg;
}

// fuzz/safetensors.cc: a header number beyond double (1e999) made json::parse throw
// out_of_range, which the reader's parse_error handler did not catch.
TEST(FuzzRegressionJson, SafetensorsHeaderNumberOverflow) {
  TempDir dir;
  const std::string header = "{\"a\": 21e308}";
  std::string bytes(8, '\0');
  bytes[0] = char(header.size());
  const std::string p = dir.write("m.safetensors", bytes + header);
  const std::string msg = error_of([&] { rat::SafetensorsReader r(p); });
  EXPECT_NE(msg.find("header is not valid JSON"), std::string::npos) << msg;
}

// The same out_of_range in the JSONL readers (metrics.jsonl, predictions): each caught
// parse_error only.
TEST(FuzzRegressionJson, JsonlNumberOverflowNamesTheLine) {
  TempDir dir;
  dir.write("metrics.jsonl", "{\"step\": 1, \"loss\": 1e999}\n");
  EXPECT_NE(error_of([&] { rat::read_metric(dir.path(), "loss"); }).find("metrics.jsonl:1"),
            std::string::npos);
  const std::string p = dir.write("pred.jsonl", "{\"prediction\": \"a\", \"answers\": [1e999]}\n");
  EXPECT_NE(error_of([&] { rat::score_predictions(p, rat::Metric::kQaF1); }).find("pred.jsonl:1"),
            std::string::npos);
}

// fuzz/tokenizer.cc: a model whose piece list holds "\0" made sentencepiece's trie builder
// throw Darts::Details::Exception out of SentencePieceProcessor::Load (CI of 2026-12-02).
// The input is the fuzzer's own, kept in the seed corpus.
TEST(FuzzRegressionTokenizer, NulPieceThatBreaksTheTrieNamesTheFile) {
  const std::string p =
      std::string(RAT_SOURCE_DIR) + "/fuzz/corpus/tokenizer/regression-darts-nul-piece";
  const std::string msg = error_of([&] { rat::Tokenizer::load(p); });
  EXPECT_NE(msg.find(p + ": not a sentencepiece model"), std::string::npos) << msg;
}

// fuzz/sft.cc: a --template that is not UTF-8 made the report's json::dump throw
// type_error after the token files were written. Now the report is written with the
// bytes replaced, and the run succeeds.
TEST(FuzzRegressionSft, NonUtf8TemplateStillWritesTheReport) {
  TempDir dir;
  rat::SftOptions o;
  o.jsonl = dir.write("data.jsonl", "{\"prompt\": \"a b\", \"answer\": \"c\"}\n");
  o.tokenizer = std::string(RAT_SOURCE_DIR) + "/fuzz/corpus/tokenizer/tiny.model";
  o.out_prefix = dir.file("sft");
  o.prompt_template = "Q\xff\xfe: {prompt}\nA:";
  const rat::SftReport r = rat::build_sft_data(o);
  EXPECT_EQ(r.examples, 1);
  EXPECT_TRUE(std::filesystem::exists(r.report_path));
}
