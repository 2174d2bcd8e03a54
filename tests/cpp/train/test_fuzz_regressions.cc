// Inputs the fuzz targets (fuzz/, docs/reliability.md) found escaping as something other than
// rat::Error, reduced to their cause. Each must now be one rat::Error naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

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
