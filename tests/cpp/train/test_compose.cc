// Hydra composition and OmegaConf interpolation (train/compose.h,
// train/interpolate.h) on small trees written here with hand-worked
// expectations, then the shipped configs/ tree: each of the authors' ten
// experiments against values read off their files (CLAIRE-Labo/RAT
// configs/experiment/{fineweb_edu,sft}/*-xl.yaml and the groups they use).
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "test_util.h"
#include "train/compose.h"
#include "train/experiment.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::TempDir;
namespace fs = std::filesystem;

// A config tree in a scratch folder.
struct Tree {
  TempDir dir;
  Tree& add(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(dir.file(rel)).parent_path());
    dir.write(rel, text);
    return *this;
  }
  ComposedConfig compose(const std::vector<std::string>& ov = {},
                         const std::vector<std::string>& addable = {}) const {
    return rat::compose(dir.path(), ov, addable);
  }
};

std::string at(const ComposedConfig& c, const std::string& dotted) {
  YAML::Node n = c.tree;
  size_t start = 0;
  for (;;) {
    size_t dot = dotted.find('.', start);
    const std::string k = dotted.substr(start, dot - start);
    const YAML::Node& cn = n;
    YAML::Node next = cn[k];
    if (!next.IsDefined()) return "<absent>";
    n.reset(next);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (n.IsNull()) return "<null>";
  if (n.IsScalar()) return n.Scalar();
  return (std::ostringstream() << "<" << n.size() << ">").str();  // a mapping or list: its size
}

TEST(Compose, SelfPositionDecidesWhoWins) {
  Tree t;
  t.add("g/x.yaml", "v: from_x\nonly_x: 1\n");
  // _self_ last (and when absent: Hydra 1.1 appends it): the file's own keys win.
  t.add("config.yaml", "defaults:\n  - g: x\n  - _self_\ng:\n  v: from_self\n");
  EXPECT_EQ(at(t.compose(), "g.v"), "from_self");
  EXPECT_EQ(at(t.compose(), "g.only_x"), "1");
  t.add("config.yaml", "defaults:\n  - g: x\ng:\n  v: from_self\n");
  EXPECT_EQ(at(t.compose(), "g.v"), "from_self");
  // _self_ first: the defaults after it win.
  t.add("config.yaml", "defaults:\n  - _self_\n  - g: x\ng:\n  v: from_self\n  own: 2\n");
  EXPECT_EQ(at(t.compose(), "g.v"), "from_x");
  EXPECT_EQ(at(t.compose(), "g.own"), "2");
}

TEST(Compose, DefaultsMergeInListOrderDepthFirst) {
  Tree t;
  t.add("a/one.yaml", "defaults:\n  - /b: two\n  - _self_\nk: one\n");
  t.add("b/two.yaml", "k: two\n");
  t.add("b/three.yaml", "k: three\n");
  // a/one pulls b/two (package b); the later /b: three replaces b.k.
  t.add("config.yaml", "defaults:\n  - a: one\n  - b: three\n");
  ComposedConfig c = t.compose();
  EXPECT_EQ(at(c, "a.k"), "one");
  EXPECT_EQ(at(c, "b.k"), "three");
  // Mappings merge key by key; a list is replaced whole.
  t.add("b/two.yaml", "m: {x: 1, y: 2}\nl: [1, 2, 3]\n");
  t.add("b/three.yaml", "m: {y: 3}\nl: [4]\n");
  c = t.compose();
  EXPECT_EQ(at(c, "b.m.x"), "1");
  EXPECT_EQ(at(c, "b.m.y"), "3");
  EXPECT_EQ(at(c, "b.l"), "<1>");
}

TEST(Compose, PackagesFromGroupHeaderAndAt) {
  Tree t;
  t.add("model/layer/rat.yaml", "_name_: rat\n");
  t.add("exp/e.yaml",
        "# a comment first\n# @package _global_\ndefaults:\n"
        "  - /model/layer@model.cells.first: rat\n  - /model/layer: rat\n  - _self_\n"
        "top: 1\n");
  t.add("config.yaml", "defaults:\n  - _self_\n  - exp: null\n");
  ComposedConfig c = t.compose({"exp=e"});
  EXPECT_EQ(at(c, "model.cells.first._name_"), "rat");  // group@pkg
  EXPECT_EQ(at(c, "model.layer._name_"), "rat");        // the group's own path
  EXPECT_EQ(at(c, "top"), "1");                         // _global_: at the top
  EXPECT_EQ(at(c, "exp"), "<absent>");
  // Without the header the experiment lands at its group, exp.
  t.add("exp/e.yaml", "top: 1\n");
  EXPECT_EQ(at(t.compose({"exp=e"}), "exp.top"), "1");
}

TEST(Compose, Interpolations) {
  Tree t;
  t.add("config.yaml",
        "base: /data\n"
        "d: {seq_len: 4096, name: nqa, chunk: 16,\n"
        "    train: {path: '${base}/${..name}/x-${..seq_len}.bin', seq: '${..seq_len}'}}\n"
        "sizes: {d_model: 2048, d_head: 128, heads: '${eval:${.d_model} // ${.d_head}}',\n"
        "        ffn: '${eval:\"4 * ${.d_model}\"}', big: '${eval:\"110*10**9\"}',\n"
        "        neg: '${eval:-7 // 2}', real: '${eval:7 / 2}', pow: '${eval:2 ** 3 ** 2}'}\n"
        "init: {_name_: fixed, range: 0.02}\n"
        "cell: {init: '${init}', k: '${oc.select:sizes.d_head,null}',\n"
        "       none: '${oc.select:sizes.absent,null}', dflt: '${oc.select:sizes.absent,7}'}\n"
        "job: {type: 'sft_${..d.name}', none: 'x${cell.none}'}\n"
        "chain: {a: '${chain.b}', b: '${chain.c}', c: 5}\n"
        "stamp: 'y${now:%Y}'\n"
        "hydra: {run: {dir: '${now:%H}'}}\n");
  ComposedConfig c = t.compose();
  EXPECT_EQ(at(c, "d.train.path"), "/data/nqa/x-4096.bin");
  EXPECT_EQ(at(c, "d.train.seq"), "4096");
  EXPECT_EQ(at(c, "sizes.heads"), "16");
  EXPECT_EQ(at(c, "sizes.ffn"), "8192");
  EXPECT_EQ(at(c, "sizes.big"), "110000000000");
  EXPECT_EQ(at(c, "sizes.neg"), "-4");  // Python floors
  EXPECT_EQ(at(c, "sizes.real"), "3.5");
  EXPECT_EQ(at(c, "sizes.pow"), "512");           // right-associative
  EXPECT_EQ(at(c, "cell.init._name_"), "fixed");  // a mapping, copied
  EXPECT_EQ(at(c, "cell.k"), "128");
  EXPECT_EQ(at(c, "cell.none"), "<null>");
  EXPECT_EQ(at(c, "cell.dflt"), "7");
  EXPECT_EQ(at(c, "job.type"), "sft_nqa");
  EXPECT_EQ(at(c, "job.none"), "xNone");  // OmegaConf's str(None)
  EXPECT_EQ(at(c, "chain.a"), "5");
  EXPECT_EQ(at(c, "stamp").size(), 5u);  // y and a four-digit year
  EXPECT_EQ(at(c, "stamp").find_first_not_of("y0123456789"), std::string::npos);
  EXPECT_EQ(at(c, "hydra"), "<absent>");  // Hydra's own settings leave the job's config
}

TEST(Compose, OverridesGroupsAndKeysBeforeInterpolation) {
  Tree t;
  t.add("data/a.yaml", "_name_: a\nseq_len: 8\npath: 'p/${._name_}-${.seq_len}'\n");
  t.add("data/b.yaml", "_name_: b\nseq_len: 8\npath: 'q/${._name_}-${.seq_len}'\n");
  t.add("config.yaml", "defaults:\n  - data: a\ntrainer: {steps: 1}\n");
  EXPECT_EQ(at(t.compose(), "data.path"), "p/a-8");
  EXPECT_EQ(at(t.compose({"data=b"}), "data.path"), "q/b-8");
  // A key override reaches every interpolation that names it.
  EXPECT_EQ(at(t.compose({"data._name_=z", "data.seq_len=1024"}), "data.path"), "p/z-1024");
  EXPECT_EQ(at(t.compose({"data=b", "data._name_=z"}), "data.path"), "q/z-8");
  // New keys: + always; plain key=value only for the caller's `addable` keys.
  EXPECT_EQ(at(t.compose({"+trainer.extra.x=3"}), "trainer.extra.x"), "3");
  EXPECT_EQ(at(t.compose({"trainer.max_steps=3"}, {"trainer.max_steps"}), "trainer.max_steps"),
            "3");
  EXPECT_EQ(at(t.compose({"~trainer.steps"}), "trainer.steps"), "<absent>");
  EXPECT_EQ(at(t.compose({"++trainer.steps=4"}), "trainer.steps"), "4");
  EXPECT_EQ(at(t.compose({"data.path=${data._name_}!"}), "data.path"), "a!");
  // `group: null` loads nothing, and an override may pick an option for it.
  t.add("config.yaml", "defaults:\n  - data: null\n");
  EXPECT_EQ(at(t.compose(), "data"), "<absent>");
  EXPECT_EQ(at(t.compose({"data=b"}), "data._name_"), "b");
}

TEST(Compose, Errors) {
  Tree t;
  t.add("data/a.yaml", "_name_: a\n");
  t.add("data/sub/b.yaml", "_name_: b\n");
  t.add("config.yaml",
        "defaults:\n"            // 1
        "  - data: a\n"          // 2
        "x: 1\n"                 // 3
        "y: '${data.nope}'\n");  // 4
  std::string e = error_of([&] { t.compose({"data=c"}); });
  EXPECT_NE(e.find("override 'data=c': group 'data' has no option 'c'"), std::string::npos) << e;
  EXPECT_NE(e.find("expected one of: a, sub/b"), std::string::npos) << e;
  e = error_of([&] { t.compose(); });
  EXPECT_NE(e.find("config.yaml:4: y: interpolation '${data.nope}' names 'data.nope'"),
            std::string::npos)
      << e;
  t.add("config.yaml", "defaults:\n  - data: c\n");
  e = error_of([&] { t.compose(); });
  EXPECT_NE(e.find("config.yaml:2: group 'data' has no option 'c'"), std::string::npos) << e;
  t.add("config.yaml", "a: '${b}'\nb: {c: '${a}'}\n");
  e = error_of([&] { t.compose(); });
  EXPECT_NE(e.find("interpolation cycle"), std::string::npos) << e;
  t.add("config.yaml", "a: '${b}'\nb: '${a}'\n");
  e = error_of([&] { t.compose(); });
  EXPECT_NE(e.find("interpolation cycle a -> b -> a"), std::string::npos) << e;
  t.add("config.yaml", "a: '${eval:2 * x}'\nb: '${nope:1}'\nc: '${a'\n");
  EXPECT_NE(error_of([&] { t.compose(); }).find("is not arithmetic on numbers"), std::string::npos);
  t.add("config.yaml", "defaults:\n  - data: a\nx: 1\n");
  e = error_of([&] { t.compose({"x"}); });
  EXPECT_NE(e.find("override 'x': expected key=value"), std::string::npos) << e;
  e = error_of([&] { t.compose({"data._nam_=q"}); });
  EXPECT_NE(e.find("no key 'data._nam_', did you mean 'data._name_'?"), std::string::npos) << e;
  e = error_of([&] { t.compose({"+x=2"}); });
  EXPECT_NE(e.find("'x' is already in the config"), std::string::npos) << e;
  e = error_of([&] { t.compose({"data/sub=b"}); });
  EXPECT_NE(e.find("no entry of the defaults tree has group 'data/sub', expected one of: data"),
            std::string::npos)
      << e;
  e = error_of([&] { t.compose({"x=1", "x=2"}); });
  EXPECT_NE(e.find("already overridden by 'x=1'"), std::string::npos) << e;
  t.add("data/a.yaml", "defaults:\n  - /data: a\n");
  e = error_of([&] { t.compose(); });
  EXPECT_NE(e.find("defaults cycle"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { rat::compose(t.dir.file("data"), {}); }).find("no config.yaml"),
            std::string::npos);
}

TEST(Compose, FileWithDefaultsComposesInItsTree) {
  Tree t;
  t.add("data/a.yaml", "n: 1\n");
  t.add("experiment/f/e.yaml", "# @package _global_\ndefaults:\n  - /data: a\nk: 2\n");
  t.add("config.yaml", "defaults:\n  - _self_\n  - experiment: null\nk: 0\n");
  EXPECT_TRUE(has_defaults_list(t.dir.file("experiment/f/e.yaml")));
  EXPECT_FALSE(has_defaults_list(t.dir.file("data/a.yaml")));
  ComposedConfig c = compose_file(t.dir.file("experiment/f/e.yaml"), {"data.n=3"});
  EXPECT_EQ(at(c, "k"), "2");
  EXPECT_EQ(at(c, "data.n"), "3");
  std::string e =
      error_of([&] { compose_file(t.dir.file("experiment/f/e.yaml"), {"experiment=f/e"}); });
  EXPECT_NE(e.find("not both"), std::string::npos) << e;
}

TEST(Compose, UnknownKeyNamesItsFileAndLine) {
  Tree t;
  t.add("model/backbone/s.yaml", "_name_: sequence\nnum_layers: 2\nnum_layrs: 3\n");
  t.add("config.yaml", "defaults:\n  - /model/backbone: s\n");
  ComposedConfig c = t.compose();
  std::string e = error_of([&] { check_composed_keys(c, config_file_schema()); });
  EXPECT_NE(e.find("model/backbone/s.yaml:3: unknown key 'model.backbone.num_layrs', did you "
                   "mean 'model.backbone.num_layers'?"),
            std::string::npos)
      << e;
  t.add("model/backbone/s.yaml", "_name_: sequence\n");
  t.add("model/head/h.yaml", "_name_: lm\n");
  t.add("config.yaml", "defaults:\n  - /model/backbone: s\n  - /model/head: h\n");
  c = t.compose({"model.head._name_=cls"});
  e = error_of([&] { check_composed_keys(c, config_file_schema()); });
  EXPECT_NE(e.find("override 'model.head._name_=cls'"), std::string::npos) << e;
  EXPECT_NE(e.find("'cls' is not supported by rat"), std::string::npos) << e;
}

// The shipped tree, through the same path as `rat train experiment=NAME`.
Experiment shipped(const std::string& name, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> ov{"experiment=" + name};
  ov.insert(ov.end(), extra.begin(), extra.end());
  ComposedConfig c = rat::compose(std::string(RAT_SOURCE_DIR) + "/configs", ov, experiment_keys());
  check_composed_keys(c, config_file_schema());
  return load_experiment(c.tree, c.source, {});
}

TEST(ComposeShipped, PretrainingAsTheAuthorsFiles) {
  for (const char* m : {"attention", "attention_localattention_interleave", "rat",
                        "rat_localattention_interleave", "rnn"}) {
    SCOPED_TRACE(m);
    const std::string mixer = m;
    Experiment e = shipped("fineweb_edu/" + mixer + "-xl");
    EXPECT_EQ(e.model.num_layers, 24);
    EXPECT_EQ(e.model.d_model, 2048);
    EXPECT_EQ(e.model.seq_len, 4096);
    EXPECT_EQ(e.model.vocab_size, 32000);
    EXPECT_EQ(e.model.ffn.d_ffn, 8192);  // ${eval:"4 * ${.d_model}"}
    EXPECT_EQ(e.batch_size, 2);
    EXPECT_EQ(e.global_batch_size, 512);
    EXPECT_EQ(e.optimizer, "adamw");
    EXPECT_DOUBLE_EQ(e.lr, 8e-4);
    EXPECT_DOUBLE_EQ(e.weight_decay, 0.1);
    EXPECT_DOUBLE_EQ(e.beta1, 0.9);
    EXPECT_DOUBLE_EQ(e.beta2, 0.95);
    EXPECT_DOUBLE_EQ(e.warmup_iter, 0.05);
    EXPECT_DOUBLE_EQ(e.eta_min, 1e-6);
    EXPECT_DOUBLE_EQ(e.gradient_clipping, 1.0);
    EXPECT_EQ(e.log_interval, 100);
    EXPECT_EQ(e.seed, 1005u);
    EXPECT_EQ(e.precision, Precision::kBF16);
    EXPECT_TRUE(e.save_checkpoint);
    EXPECT_EQ(e.save_dir, "./exp/ckpt/fineweb_pretrain");
    EXPECT_EQ(e.train.tokenized_file_path, "./data/fineweb_edu_100B/llama-train.bin");
    EXPECT_EQ(e.train.limit_tokens, 110000000000LL);  // ${eval:"110*10**9"}
    EXPECT_EQ(e.val.limit_tokens, 512000LL * 1024);
    const bool interleave = mixer.find("interleave") != std::string::npos;
    EXPECT_EQ(e.model.backbone, interleave ? "sequence_interleave" : "sequence");
    const MixerConfig& rat_cell = interleave ? e.model.seq_cell1 : e.model.seq_cell;
    if (mixer.rfind("rat", 0) == 0) {
      EXPECT_EQ(rat_cell.kind, MixerKind::kRat);
      EXPECT_EQ(rat_cell.chunk_size, 16);
      EXPECT_EQ(rat_cell.ngroups, 2);  // layer/rat.yaml
      EXPECT_EQ(rat_cell.d_head, 128);
    }
    if (interleave) {
      EXPECT_EQ(e.model.interleave_step, 2);
      EXPECT_EQ(e.model.seq_cell.kind, MixerKind::kLocalAttention);
      EXPECT_EQ(e.model.seq_cell.window_size, 1024);
    }
    if (mixer == "attention") {
      EXPECT_EQ(e.model.seq_cell.d_head, 128);
    }
    EXPECT_EQ(e.model.pe, mixer == "rat"                             ? PosEnc::kInterRope
                          : mixer == "rat_localattention_interleave" ? PosEnc::kRopeInterRope
                          : mixer == "rnn"                           ? PosEnc::kEmpty
                                                                     : PosEnc::kRope);
  }
}

TEST(ComposeShipped, SftAsTheAuthorsFiles) {
  Experiment e = shipped("sft/rat-xl");
  EXPECT_DOUBLE_EQ(e.lr, 1e-5);
  EXPECT_DOUBLE_EQ(e.weight_decay, 0.01);
  EXPECT_EQ(e.global_batch_size, 128);
  EXPECT_EQ(e.model.seq_len, 4096);
  EXPECT_EQ(e.log_interval, 20);
  EXPECT_TRUE(e.eval_when_log);
  EXPECT_DOUBLE_EQ(e.save_interval, 1.0);
  EXPECT_EQ(e.train.name, "sft_random");
  EXPECT_EQ(e.val.name, "sft_ordered");
  EXPECT_EQ(e.train.tokenized_input_path, "./data/sft/narrativeqa/llama-train-4096-inputs.bin");
  EXPECT_EQ(e.val.tokenized_label_path, "./data/sft/narrativeqa/llama-validation-4096-labels.bin");
  EXPECT_EQ(e.pretrained_path, "./pretrain_1B_100BT_fineweb/ratl16");  // chunk_size interpolated
  EXPECT_EQ(e.save_dir, "./exp/ckpt/sft_narrativeqa");
  // The authors' README: data._name_ picks the dataset, and every path follows.
  e = shipped("sft/rat_localattention_interleave-xl",
              {"data._name_=narrativeqa_summary", "data.seq_len=1024"});
  EXPECT_EQ(e.train.tokenized_label_path,
            "./data/sft/narrativeqa_summary/llama-train-1024-labels.bin");
  EXPECT_EQ(e.model.seq_len, 1024);
  EXPECT_EQ(e.pretrained_path, "./pretrain_1B_100BT_fineweb/ratl16_localattention_l2");
  EXPECT_EQ(e.save_dir, "./exp/ckpt/sft_narrativeqa_summary");
  EXPECT_EQ(shipped("sft/rnn-xl").pretrained_path, "./pretrain_1B_100BT_fineweb/rnn");
  EXPECT_EQ(shipped("sft/attention_localattention_interleave-xl").pretrained_path,
            "./pretrain_1B_100BT_fineweb/attention_localattention_l2");
  // A group override inside the experiment's own defaults list.
  e = shipped("sft/attention-xl", {"optim/optimizer=adam", "model.backbone.seq_cell.d_head=64"});
  EXPECT_EQ(e.optimizer, "adam");
  EXPECT_DOUBLE_EQ(e.lr, 1e-5);  // the experiment's _self_ still wins
  EXPECT_EQ(e.model.seq_cell.d_head, 64);
}

}  // namespace
}  // namespace rat
