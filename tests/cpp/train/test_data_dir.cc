// data.dir and relative data paths (train/data_dir.h): the keys a
// tokenize.json decides, the command line winning over it, and relative paths
// found next to the config or in its project, with errors naming the key, the
// path and every place tried. tokenize.json files are written by hand here.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_util.h"
#include "train/experiment.h"

namespace fs = std::filesystem;

namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

// A config as configs/experiment/pydoc/rat-small.yaml is: another corpus's
// paths and sizes, relative to the project root.
constexpr const char* kConfig =
    "data:\n"
    "  seq_len: 8\n"
    "  vocab_size: 4096\n"
    "  num_bytes: 2\n"
    "  ignore_input_index: 2\n"
    "  train: {_name_: lm_random, tokenized_file_path: data/pydoc/train.bin}\n"
    "  val: {_name_: lm_ordered, tokenized_file_path: data/pydoc/val.bin}\n"
    "model:\n"
    "  backbone:\n"
    "    num_layers: 1\n"
    "    d_model: 16\n"
    "    seq_cell: {_name_: rat, d_head: 8, chunk_size: 4}\n"
    "    hidden_cell: {d_ffn: 32}\n"
    "  embedding: {vocab_size: 4096, pe: {_name_: interrope}}\n";

// PROJECT/configs/experiment/exp.yaml and PROJECT/data/mine (a tokenize
// output with vocab 300, uint32 ids, eos 7, `val_docs` val documents).
struct Project {
  TempDir root;
  std::string config, data;
  explicit Project(int val_docs = 3) {
    fs::create_directories(root.file("configs/experiment"));
    fs::create_directories(root.file("data/mine"));
    config = root.write("configs/experiment/exp.yaml", kConfig);
    data = root.file("data/mine");
    root.write("data/mine/train.bin", std::string(40, '\1'));
    root.write("data/mine/val.bin", std::string(8, '\1'));
    root.write("data/mine/tokenize.json",
               "{\"vocab_size\": 300, \"num_bytes\": 4, \"eos_id\": 7, \"val_documents\": " +
                   std::to_string(val_docs) + ", \"train_file\": \"elsewhere/train.bin\"}");
  }
};

// Runs f with the current directory set to `dir`, restoring it after.
template <class F>
void in_dir(const std::string& dir, F&& f) {
  const fs::path old = fs::current_path();
  fs::current_path(dir);
  try {
    f();
  } catch (...) {
    fs::current_path(old);
    throw;
  }
  fs::current_path(old);
}

TEST(DataDir, FillsEveryDataKeyFromTokenizeJson) {
  Project p;
  TempDir elsewhere;
  in_dir(elsewhere.path(), [&] {
    // Relative to the project root (the folder holding configs/), from another directory.
    const rat::Experiment e = rat::load_experiment(p.config, {"data.dir=data/mine"});
    EXPECT_EQ(e.missing_data, "");
    const std::string dir = fs::weakly_canonical(p.data).string();
    EXPECT_EQ(e.train.tokenized_file_path, dir + "/train.bin");
    EXPECT_EQ(e.val.tokenized_file_path, dir + "/val.bin");
    EXPECT_EQ(e.model.vocab_size, 300);
    EXPECT_EQ(e.model.num_bytes, 4);
    EXPECT_EQ(e.model.ignore_input_index, 7);
    EXPECT_EQ(e.resolved["model"]["embedding"]["vocab_size"].as<int>(), 300);
    EXPECT_EQ(e.resolved["data"]["dir"].as<std::string>(), dir);
  });
}

TEST(DataDir, CommandLineKeysWin) {
  Project p;
  const rat::Experiment e = rat::load_experiment(
      p.config, {"data.dir=" + p.data, "data.ignore_input_index=-1", "data.vocab_size=512",
                 "data.val.tokenized_file_path=" + p.data + "/train.bin"});
  EXPECT_EQ(e.model.ignore_input_index, -1);
  EXPECT_EQ(e.model.vocab_size, 512);  // and the embedding's with it: no disagreement
  EXPECT_EQ(e.resolved["model"]["embedding"]["vocab_size"].as<int>(), 512);
  EXPECT_EQ(e.val.tokenized_file_path, p.data + "/train.bin");
  EXPECT_EQ(e.train.tokenized_file_path, p.data + "/train.bin");
  EXPECT_EQ(e.model.num_bytes, 4);
}

TEST(DataDir, NoValidationDocumentsDropsTheConfigsValFile) {
  Project p(0);
  const rat::Experiment e = rat::load_experiment(p.config, {"data.dir=" + p.data});
  EXPECT_EQ(e.val.tokenized_file_path, "");  // not data/pydoc/val.bin of the config
  EXPECT_EQ(e.missing_data, "");
}

TEST(DataDir, BadDataDir) {
  Project p;
  TempDir elsewhere;
  in_dir(elsewhere.path(), [&] {
    const std::string root = fs::weakly_canonical(p.root.path()).string();
    const std::string cwd = fs::current_path().string();
    EXPECT_EQ(error_of([&] { rat::load_experiment(p.config, {"data.dir=data/other"}); }),
              "data.dir: data/other not found, expected the --out-dir of `rat tokenize` (tried " +
                  cwd + "/data/other, " + root + "/configs/experiment/data/other, " + root +
                  "/data/other; relative data paths are looked up in the current directory, "
                  "then the config file's folder, then the project root holding its configs/ "
                  "folder)");
  });
  fs::remove(p.data + "/tokenize.json");
  EXPECT_EQ(error_of([&] { rat::load_experiment(p.config, {"data.dir=" + p.data}); }),
            "data.dir: " + p.data +
                " has no tokenize.json, expected the --out-dir of a finished `rat tokenize` (it "
                "writes tokenize.json last)");
  p.root.write("data/mine/tokenize.json", "{\"vocab_size\": 300, \"num_bytes\": 4}");
  EXPECT_EQ(error_of([&] { rat::load_experiment(p.config, {"data.dir=" + p.data}); }),
            p.data +
                "/tokenize.json: \"eos_id\" missing, expected the tokenize.json that `rat "
                "tokenize` writes");
  p.root.write("data/mine/tokenize.json",
               "{\"vocab_size\": 300, \"num_bytes\": 4, \"eos_id\": 2, \"val_documents\": 1}");
  EXPECT_EQ(error_of([&] {
              rat::load_experiment(p.config, {"data.dir=" + p.data, "data.train._name_=sft_ordered",
                                              "data.train.tokenized_input_path=x.bin"});
            }),
            "data.dir: " + p.data +
                " holds language-model token files, but data.train._name_ is sft_ordered; "
                "expected lm_ordered or lm_random");
}

TEST(DataDir, RelativePathsAndMissingFiles) {
  Project p;
  TempDir elsewhere;
  in_dir(elsewhere.path(), [&] {
    const std::string root = fs::weakly_canonical(p.root.path()).string();
    // The config's own paths: data/pydoc/... exists in no base.
    rat::Experiment e = rat::load_experiment(p.config, {});
    const std::string cwd = fs::current_path().string();
    EXPECT_EQ(e.missing_data,
              "data.train.tokenized_file_path: data/pydoc/train.bin not found, expected a token "
              "file (tried " +
                  cwd + "/data/pydoc/train.bin, " + root +
                  "/configs/experiment/data/pydoc/train.bin, " + root +
                  "/data/pydoc/train.bin; relative data paths are looked up in the current "
                  "directory, then the config file's folder, then the project root holding its "
                  "configs/ folder)");
    EXPECT_EQ(error_of([&] { rat::check_data_files(e); }), e.missing_data);
    // Next to the config file.
    p.root.write("configs/experiment/near.bin", "xx");
    e = rat::load_experiment(p.config, {"data.train.tokenized_file_path=near.bin",
                                        "data.val.tokenized_file_path=data/mine/val.bin"});
    EXPECT_EQ(e.train.tokenized_file_path, root + "/configs/experiment/near.bin");
    EXPECT_EQ(e.val.tokenized_file_path, root + "/data/mine/val.bin");
    EXPECT_NO_THROW(rat::check_data_files(e));
    // In the current directory first: kept as written.
    fs::create_directories("data/mine");
    std::ofstream("data/mine/val.bin") << "yy";
    e = rat::load_experiment(p.config, {"data.val.tokenized_file_path=data/mine/val.bin"});
    EXPECT_EQ(e.val.tokenized_file_path, "data/mine/val.bin");
    // An absolute path that does not exist.
    e = rat::load_experiment(p.config, {"data.train.tokenized_file_path=/nonexistent/t.bin"});
    EXPECT_EQ(e.missing_data,
              "data.train.tokenized_file_path: /nonexistent/t.bin does not exist, expected a "
              "token file");
  });
}

}  // namespace
