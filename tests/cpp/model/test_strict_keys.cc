// Strict config files: every key in a model config.yaml or an experiment file
// is one rat reads; an unknown one is named with its file, line, dotted path
// and the closest valid key, and the authors' options rat lacks are named as
// such (not as typos).
#include <gtest/gtest.h>

#include <string>

#include "model/config.h"
#include "model/yaml_reader.h"
#include "test_util.h"
#include "train/experiment.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;

// Line numbers matter below: line 1 is `data:`.
constexpr const char* kModel =
    "data:\n"                                                  // 1
    "  vocab_size: 64\n"                                       // 2
    "model:\n"                                                 // 3
    "  backbone:\n"                                            // 4
    "    num_layers: 1\n"                                      // 5
    "    d_model: 16\n"                                        // 6
    "    seq_cell: {_name_: rat, d_head: 8, chunk_size: 4}\n"  // 7
    "    hidden_cell: {d_ffn: 32}\n"                           // 8
    "  embedding: {pe: {_name_: interrope}}\n";                // 9

// kModel with `line` inserted after line `after`.
std::string with_line(const TempDir& dir, int after, const std::string& line) {
  std::string text = kModel;
  size_t at = 0;
  for (int i = 0; i < after; ++i) at = text.find('\n', at) + 1;
  text.insert(at, line + "\n");
  return dir.write("config.yaml", text);
}

TEST(StrictKeys, UnknownKeyNamesFileLineKeyAndClosest) {
  TempDir dir;
  std::string p = with_line(dir, 6, "    d_modle: 16");
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ":7: unknown key 'model.backbone.d_modle', did you mean 'model.backbone.d_model'?");
  p = with_line(dir, 2, "  seqlen: 8");
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ":3: unknown key 'data.seqlen', did you mean 'data.seq_len'?");
  p = with_line(dir, 9, "task: {tie_embeding: false}");
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ":10: unknown key 'task.tie_embeding', did you mean 'task.tie_embedding'?");
  // Inside a flow mapping of a mixer.
  p = dir.write("config.yaml", std::string(kModel) + "optim: {optimizer: {lr: 1, betass: 2}}\n");
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ":10: unknown key 'optim.optimizer.betass', did you mean 'optim.optimizer.betas'?");
}

TEST(StrictKeys, AuthorsOptionsAreNotSupportedRatherThanUnknown) {
  TempDir dir;
  const std::string rat = " is not supported by rat, expected it absent, null or ";
  std::string p = with_line(dir, 9, "  head: {_name_: cls}");
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ":10: model.head._name_: 'cls'" + rat + "lm");
  p = with_line(dir, 0, "task: {_name_: cls}");
  EXPECT_EQ(error_of([&] { load_model_config(p); }), p + ":1: task._name_: 'cls'" + rat + "lm");
  // The options rat implements (ln, dropout, init, bias: tests/cpp/model/test_options.cc),
  // null (how the authors' resolved configs write an unused option), the sizes rat derives
  // and bookkeeping such as wandb are accepted.
  for (const char* ok : {"    dropout: null", "    dropout: 0.1", "    ln: layernorm",
                         "    bias: false", "    init: {_name_: fixed, initializer_range: 0.01}",
                         "    seq_cell1: null", "    seq_cell1: {num_head: 7, k_channel: 3}"}) {
    SCOPED_TRACE(ok);
    EXPECT_NO_THROW(load_model_config(with_line(dir, 6, ok)));
  }
  EXPECT_NO_THROW(load_model_config(with_line(dir, 0, "wandb: {project: x, mode: online}")));
}

TEST(StrictKeys, ExperimentFileAndOverridesAreCheckedAlike) {
  TempDir dir;
  std::string p = dir.write("exp.yaml", std::string(kModel) + "task: {ignore_idx: 1}\n");
  EXPECT_EQ(error_of([&] { load_experiment(p, {}); }),
            p + ":10: unknown key 'task.ignore_idx', did you mean 'task.ignore_index'?");
  p = dir.write("exp.yaml", std::string(kModel) + "trainer: {max_step: 3}\n");
  EXPECT_EQ(error_of([&] { load_experiment(p, {}); }),
            p + ":10: unknown key 'trainer.max_step', did you mean 'trainer.max_steps'?");
  // A mapping given on the command line brings its keys under the same check.
  p = dir.write("exp.yaml", kModel);
  const std::string ov = "model.backbone.seq_cell={_name_: rat, d_head: 8, chunk: 4}";
  EXPECT_EQ(error_of([&] { load_experiment(p, {ov}); }),
            "override '" + ov +
                "': unknown key 'model.backbone.seq_cell.chunk', did you mean "
                "'model.backbone.seq_cell.chunk_size'?");
  // The authors' options and ignored keys are accepted as overrides as in a file.
  EXPECT_EQ(error_of([&] { load_experiment(p, {"model.head._name_=cls"}); }),
            "override 'model.head._name_=cls': model.head._name_: 'cls' is not "
            "supported by rat, expected it absent, null or lm");
  EXPECT_EQ(error_of([&] {
              load_experiment(p, {"model.backbone.ln=layernorm", "wandb.mode=off"});
            }),
            p + ": data.train.tokenized_file_path: missing, expected the training data file");
}

TEST(StrictKeys, ClosestKeyAndEditDistance) {
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(closest_key("lrr", {"eps", "lr", "betas"}), "lr");
  EXPECT_EQ(closest_key("x", {}), "");
  // Equal distances: the longer common prefix wins.
  EXPECT_EQ(closest_key("a.chunk", {"a.d_head", "a.chunk_size"}), "a.chunk_size");
  // A key cut short goes to the key it begins, before shorter keys fewer edits away.
  EXPECT_EQ(closest_key("a.chunk", {"a.ln", "a.chunk_size"}), "a.chunk_size");
}

}  // namespace
}  // namespace rat
