// train/run_dir: a new run never mixes into a previous run's directory; --overwrite
// clears only a rat run directory.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"
#include "train/run_dir.h"

using rat::testing::error_of;
using rat::testing::TempDir;
namespace fs = std::filesystem;

TEST(RunDir, MissingOrEmptyIsClaimed) {
  TempDir tmp;
  rat::claim_run_dir(tmp.file("new"), false, false);  // created later by the trainer
  rat::claim_run_dir(tmp.path(), false, false);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
  // A run that failed before its first step left only its config: no history.
  tmp.write("config.yaml", "data: {}\n");
  rat::claim_run_dir(tmp.path(), false, false);
  EXPECT_TRUE(fs::exists(tmp.file("config.yaml")));
}

TEST(RunDir, PreviousRunIsRefusedWithBothWaysOut) {
  TempDir tmp;
  tmp.write("metrics.jsonl", "{\"step\": 1, \"loss\": 3}\n");
  tmp.write("config.yaml", "data: {}\n");
  fs::create_directories(tmp.file("checkpoints/step-00000001"));
  fs::create_directory_symlink("checkpoints/step-00000001", tmp.file("latest"));
  const std::string msg = error_of([&] { rat::claim_run_dir(tmp.path(), false, false); });
  EXPECT_HAS(msg, tmp.path() + ": the run directory holds a previous run (");
  EXPECT_HAS(msg, "metrics.jsonl");
  EXPECT_HAS(msg, "add --overwrite to replace it, or trainer.load_checkpoint=true to resume it");
  EXPECT_EQ(rat::testing::slurp(tmp.file("metrics.jsonl")), "{\"step\": 1, \"loss\": 3}\n");
  rat::claim_run_dir(tmp.path(), /*resuming=*/true, false);  // resuming: left as it is
  EXPECT_TRUE(fs::exists(tmp.file("metrics.jsonl")));
  rat::claim_run_dir(tmp.path(), false, /*overwrite=*/true);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(RunDir, NoLatestSaysResumeCannotHelp) {
  TempDir tmp;
  tmp.write("metrics.jsonl", "{}\n");
  const std::string msg = error_of([&] { rat::claim_run_dir(tmp.path(), false, false); });
  EXPECT_HAS(msg,
             "add --overwrite to replace it (it has no latest checkpoint, so "
             "trainer.load_checkpoint=true cannot resume it)");
}

TEST(RunDir, OverwriteNeverEmptiesAForeignDirectory) {
  TempDir tmp;
  tmp.write("notes.txt", "keep\n");
  fs::create_directory(tmp.file("src"));
  for (bool overwrite : {false, true}) {
    const std::string msg = error_of([&] { rat::claim_run_dir(tmp.path(), false, overwrite); });
    EXPECT_HAS(msg, "not a rat run directory");
    EXPECT_HAS(msg, "notes.txt");
  }
  EXPECT_TRUE(fs::exists(tmp.file("notes.txt")));
  EXPECT_TRUE(fs::exists(tmp.file("src")));
  EXPECT_FALSE(rat::looks_like_run_dir(tmp.path()));
  const std::string file = tmp.write("run.txt", "x");
  EXPECT_HAS(error_of([&] { rat::claim_run_dir(file, false, true); }), "expected a directory");
}
