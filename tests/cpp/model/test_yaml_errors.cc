// model/yaml_reader's words for a user's mistakes (issue 14): a file that is not
// YAML is said in plain words with its line, never only yaml-cpp's grammar terms;
// a long key name suggests its abbreviation.
#include <gtest/gtest.h>

#include <string>

#include "model/yaml_reader.h"
#include "test_util.h"
#include "train/experiment.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

TEST(YamlErrors, MarkdownIsNotYamlInPlainWords) {
  TempDir dir;
  const std::string md = dir.write("README.md", "# rat\n\n*fast* and small\n");
  std::string msg = error_of([&] { load_experiment(md, {}); });
  EXPECT_HAS(msg, md + ":3: not a YAML mapping (a '*' starts a YAML alias, and no '&' anchor "
                       "defines it at line 3, column 1: '*fast* and small'; is README.md a YAML "
                       "file?), expected an experiment config");
  EXPECT_EQ(msg.find("referenced anchor"), std::string::npos) << msg;
  const std::string list = dir.write("NOTES.md", "# rat\n\n* fast\n* small\n");
  msg = error_of([&] { load_experiment(list, {}); });
  EXPECT_HAS(msg, list +
                      ":3: not a YAML mapping (a '*' starts a YAML alias, and no alias name "
                      "follows it at line 3, column 2: '* fast'; is NOTES.md a YAML file?)");
  const std::string prose = dir.write("notes.txt", "# rat\n\nSome text.\n");
  msg = error_of([&] { load_experiment(prose, {}); });
  EXPECT_HAS(msg, prose + ":3: not a YAML mapping (got 'Some text.'; is notes.txt a YAML file?)");
}

TEST(YamlErrors, SyntaxErrorsGiveLineColumnAndText) {
  TempDir dir;
  const std::string p = dir.write("exp.yaml", "data:\n  seq_len: 64\n  bad: [1, 2\n");
  const std::string msg =
      error_of([&] { parse_yaml_mapping(rat::testing::slurp(p), p, "a config"); });
  EXPECT_HAS(msg, p + ":");
  EXPECT_HAS(msg, "never closed");
  EXPECT_EQ(msg.find("YAML file?"), std::string::npos) << msg;  // a .yaml file: no question
  EXPECT_HAS(msg, "), expected a config");
}

TEST(YamlErrors, LongKeyNameSuggestsItsAbbreviation) {
  EXPECT_EQ(closest_key("optim.optimizer.learning_rate",
                        {"optim.optimizer._name_", "optim.optimizer.lr", "optim.optimizer.centered",
                         "optim.optimizer.eps"}),
            "optim.optimizer.lr");
  // Only within the same section, and spelling neighbours still win otherwise.
  EXPECT_EQ(closest_key("a.learning_rate", {"b.lr", "a.learning_rat"}), "a.learning_rat");
  EXPECT_EQ(closest_key("trainer.max_step", {"trainer.max_steps", "trainer.ms"}),
            "trainer.max_steps");
}

}  // namespace
}  // namespace rat
