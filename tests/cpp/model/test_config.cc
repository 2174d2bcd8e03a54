// config.yaml: loading the authors' resolved schema, defaults, save/load round
// trips, and one test per way a file can be wrong, asserting that the message
// names the file (and the line, where the value is in the file), the dotted
// key and what was expected.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <functional>

#include "model/config.h"
#include "test_util.h"

namespace rat {
namespace {

using rat::testing::error_of;
using rat::testing::slurp;
using rat::testing::TempDir;

// A resolved hybrid config in the authors' shape, with the unrelated keys their
// files carry (wandb, optim, trainer, dropout, init, nulls) that must be ignored.
constexpr const char* kHybrid = R"(
data:
  seq_len: 128
  vocab_size: 512
  num_bytes: 2
  ignore_input_index: null
  global_batch_size: 512
  train: {_name_: lm_ordered, tokenized_file_path: /data/train.bin}
model:
  backbone:
    _name_: sequence_interleave
    num_layers: 5
    d_model: 64
    dropout: 0.0
    ln: rmsnorm
    interleave_step: 2
    init: {_name_: fixed, initializer_range: 0.02}
    seq_cell: {_name_: local_attention, d_head: 16, window_size: 32, chunk_size: null}
    seq_cell1: {_name_: rat, d_head: 16, chunk_size: 8, ngroups: 2}
    hidden_cell: {_name_: ffn, d_ffn: 256, act_fn: swiglu, bias: true}
  embedding:
    _name_: lm
    vocab_size: 512
    pe: {_name_: rope_interrope, dim: null, base: 500000, chunk_size: 8}
task: {_name_: lm, tie_embedding: false, ignore_index: -1}
wandb: {project: rat, job_type: fineweb_pretrain}
optim:
  optimizer: {_name_: adamw, lr: 8.0e-4, betas: [0.9, 0.95]}
trainer: {max_epoch: 1, dtype: bfloat16, gradient_clipping: 1.0}
)";

constexpr const char* kMinimalRat = R"(
data: {vocab_size: 100}
model:
  backbone:
    num_layers: 2
    d_model: 32
    seq_cell: {_name_: rat, d_head: 8, chunk_size: 4}
    hidden_cell: {d_ffn: 64}
  embedding:
    pe: {_name_: interrope}
)";

// Writes `base` after applying `edit` to its parsed tree; returns the path.
std::string write_edited(const TempDir& dir, const char* base,
                         const std::function<void(YAML::Node&)>& edit) {
  YAML::Node root = YAML::Load(base);
  edit(root);
  YAML::Emitter out;
  out << root;
  return dir.write("config.yaml", out.c_str());
}

// The error from loading kHybrid after `edit`.
std::string hybrid_error(const std::function<void(YAML::Node&)>& edit, const char* base = kHybrid) {
  TempDir dir;
  std::string path = write_edited(dir, base, edit);
  std::string msg = error_of([&] { load_model_config(path); });
  // `FILE: key: ...` or `FILE:LINE: key: ...`.
  EXPECT_EQ(msg.rfind(path + ":", 0), 0u) << msg;
  return msg;
}

YAML::Node backbone(YAML::Node& r) { return r["model"]["backbone"]; }

bool same_mixer(const MixerConfig& a, const MixerConfig& b) {
  return a.kind == b.kind && a.d_head == b.d_head && a.ngroups == b.ngroups &&
         a.chunk_size == b.chunk_size && a.window_size == b.window_size;
}

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.seq_len, b.seq_len);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.num_bytes, b.num_bytes);
  EXPECT_EQ(a.ignore_input_index, b.ignore_input_index);
  EXPECT_EQ(a.backbone, b.backbone);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.interleave_step, b.interleave_step);
  EXPECT_EQ(a.ffn.d_ffn, b.ffn.d_ffn);
  EXPECT_EQ(a.ffn.act, b.ffn.act);
  EXPECT_EQ(a.ffn.bias, b.ffn.bias);
  EXPECT_EQ(a.pe, b.pe);
  EXPECT_EQ(a.rope_base, b.rope_base);
  EXPECT_EQ(a.tie_embedding, b.tie_embedding);
  EXPECT_EQ(a.ignore_index, b.ignore_index);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i)
    EXPECT_TRUE(same_mixer(a.layers[i], b.layers[i])) << "layer " << i;
}

TEST(ConfigLoad, AuthorsHybridResolvesInterleavedLayers) {
  TempDir dir;
  ModelConfig c = load_model_config(dir.write("config.yaml", kHybrid));
  EXPECT_EQ(c.seq_len, 128);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.ignore_input_index, -1);  // null: none
  EXPECT_EQ(c.backbone, "sequence_interleave");
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.ffn.d_ffn, 256);
  EXPECT_EQ(c.ffn.act, Activation::kSwiglu);
  EXPECT_TRUE(c.ffn.bias);
  EXPECT_EQ(c.pe, PosEnc::kRopeInterRope);
  EXPECT_EQ(c.rope_base, 500000.0);
  EXPECT_FALSE(c.tie_embedding);
  EXPECT_EQ(c.ignore_index, -1);
  ASSERT_EQ(c.layers.size(), 5u);
  // SPEC.md "Backbones": layer i uses seq_cell1 (rat) when i % 2 == 0.
  const MixerKind want[] = {MixerKind::kRat, MixerKind::kLocalAttention, MixerKind::kRat,
                            MixerKind::kLocalAttention, MixerKind::kRat};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c.layers[i].kind, want[i]) << "layer " << i;
  EXPECT_EQ(c.layers[0].chunk_size, 8);
  EXPECT_EQ(c.layers[0].ngroups, 2);
  EXPECT_EQ(c.layers[1].window_size, 32);
  EXPECT_EQ(c.n_heads(c.layers[0]), 4);
}

TEST(ConfigLoad, InterleaveStepThree) {
  ModelConfig c;
  TempDir dir;
  c = load_model_config(write_edited(dir, kHybrid, [](YAML::Node& r) {
    backbone(r)["interleave_step"] = 3;
    backbone(r)["num_layers"] = 7;
  }));
  std::string kinds;
  for (const MixerConfig& m : c.layers) kinds += m.kind == MixerKind::kRat ? 'R' : 'L';
  EXPECT_EQ(kinds, "RLLRLLR");
}

// Sizes a config omits take the values of the authors' config tree
// (CLAIRE-Labo/RAT configs/model/backbone: sequence.yaml, sequence_interleave.yaml,
// layer/rat.yaml, layer/attention.yaml, layer/local_attention.yaml, layer/ffn.yaml).
TEST(ConfigLoad, OmittedSizesTakeTheAuthorsDefaults) {
  TempDir dir;
  ModelConfig c = load_model_config(write_edited(dir, kHybrid, [](YAML::Node& r) {
    for (const char* k : {"num_layers", "d_model", "interleave_step"}) backbone(r).remove(k);
    for (const char* k : {"d_head", "window_size"}) backbone(r)["seq_cell"].remove(k);
    for (const char* k : {"d_head", "chunk_size", "ngroups"}) backbone(r)["seq_cell1"].remove(k);
    backbone(r)["hidden_cell"].remove("d_ffn");
  }));
  EXPECT_EQ(c.num_layers, 12);
  EXPECT_EQ(c.d_model, 768);
  EXPECT_EQ(c.interleave_step, 2);
  EXPECT_EQ(c.ffn.d_ffn, 4 * 768);
  EXPECT_EQ(c.seq_cell.kind, MixerKind::kLocalAttention);
  EXPECT_EQ(c.seq_cell.d_head, 64);
  EXPECT_EQ(c.seq_cell.window_size, 1024);
  EXPECT_EQ(c.seq_cell1.kind, MixerKind::kRat);
  EXPECT_EQ(c.seq_cell1.d_head, 64);
  EXPECT_EQ(c.seq_cell1.chunk_size, 64);
  EXPECT_EQ(c.seq_cell1.ngroups, 2);
  // d_ffn follows the file's d_model when only d_ffn is omitted.
  c = load_model_config(write_edited(
      dir, kHybrid, [](YAML::Node& r) { backbone(r)["hidden_cell"].remove("d_ffn"); }));
  EXPECT_EQ(c.ffn.d_ffn, 4 * 64);
}

TEST(ConfigLoad, DefaultsFillOptionalKeys) {
  TempDir dir;
  ModelConfig c = load_model_config(dir.write("config.yaml", kMinimalRat));
  EXPECT_EQ(c.seq_len, 1024);
  EXPECT_EQ(c.num_bytes, 2);
  EXPECT_EQ(c.ignore_input_index, -1);
  EXPECT_EQ(c.backbone, "sequence");
  EXPECT_EQ(c.interleave_step, 1);
  EXPECT_EQ(c.seq_cell.ngroups, 2);  // the authors' layer/rat.yaml
  EXPECT_EQ(c.ffn.act, Activation::kGelu);
  EXPECT_FALSE(c.ffn.bias);
  EXPECT_EQ(c.rope_base, 10000.0);
  EXPECT_TRUE(c.tie_embedding);
  EXPECT_EQ(c.ignore_index, -100);
  ASSERT_EQ(c.layers.size(), 2u);
  EXPECT_EQ(c.layers[1].kind, MixerKind::kRat);
  EXPECT_EQ(c.layers[1].chunk_size, 4);
}

TEST(ConfigLoad, VocabFromEmbeddingOnly) {
  TempDir dir;
  ModelConfig c = load_model_config(write_edited(dir, kMinimalRat, [](YAML::Node& r) {
    r.remove("data");
    r["model"]["embedding"]["vocab_size"] = 77;
  }));
  EXPECT_EQ(c.vocab_size, 77);
}

TEST(ConfigLoad, RnnNeedsNeitherDHeadNorPe) {
  TempDir dir;
  ModelConfig c = load_model_config(write_edited(dir, kMinimalRat, [](YAML::Node& r) {
    backbone(r)["seq_cell"] = YAML::Load("{_name_: rnn}");
    r["model"].remove("embedding");
  }));
  EXPECT_EQ(c.layers[0].kind, MixerKind::kRnn);
  EXPECT_EQ(c.pe, PosEnc::kEmpty);
}

TEST(ConfigLoad, YamlBooleanSpellings) {
  TempDir dir;
  ModelConfig c = load_model_config(write_edited(dir, kMinimalRat, [](YAML::Node& r) {
    backbone(r)["hidden_cell"]["bias"] = "yes";
    r["task"]["tie_embedding"] = "False";
  }));
  EXPECT_TRUE(c.ffn.bias);
  EXPECT_FALSE(c.tie_embedding);
}

TEST(ConfigNames, EnumNames) {
  EXPECT_STREQ(mixer_name(MixerKind::kRat), "rat");
  EXPECT_STREQ(mixer_name(MixerKind::kAttention), "attention");
  EXPECT_STREQ(mixer_name(MixerKind::kLocalAttention), "local_attention");
  EXPECT_STREQ(mixer_name(MixerKind::kRnn), "rnn");
  EXPECT_STREQ(activation_name(Activation::kGelu), "gelu");
  EXPECT_STREQ(activation_name(Activation::kFastGelu), "fastgelu");
  EXPECT_STREQ(activation_name(Activation::kRelu), "relu");
  EXPECT_STREQ(activation_name(Activation::kSwiglu), "swiglu");
  EXPECT_STREQ(pe_name(PosEnc::kRope), "rope");
  EXPECT_STREQ(pe_name(PosEnc::kInterRope), "interrope");
  EXPECT_STREQ(pe_name(PosEnc::kRopeInterRope), "rope_interrope");
  EXPECT_STREQ(pe_name(PosEnc::kEmpty), "empty");
}

// --- round trips ---------------------------------------------------------

ModelConfig attention_config() {
  ModelConfig c;
  c.seq_len = 256;
  c.vocab_size = 70000;
  c.num_bytes = 4;
  c.ignore_input_index = 2;
  c.num_layers = 3;
  c.d_model = 48;
  c.seq_cell.kind = MixerKind::kAttention;
  c.seq_cell.d_head = 12;
  c.ffn = {192, Activation::kFastGelu, true};
  c.pe = PosEnc::kRope;
  c.rope_base = 12345.678;
  c.tie_embedding = false;
  c.ignore_index = -7;
  c.resolve("attention_config");
  return c;
}

TEST(ConfigRoundTrip, SaveThenLoadIsEqual) {
  TempDir dir;
  std::vector<ModelConfig> configs;
  configs.push_back(load_model_config(dir.write("a.yaml", kHybrid)));
  configs.push_back(load_model_config(dir.write("b.yaml", kMinimalRat)));
  configs.push_back(attention_config());
  ModelConfig rnn = attention_config();
  rnn.seq_cell.kind = MixerKind::kRnn;
  rnn.pe = PosEnc::kEmpty;
  rnn.ffn.act = Activation::kRelu;
  rnn.resolve("rnn");
  configs.push_back(rnn);
  for (size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE("config " + std::to_string(i));
    std::string p1 = dir.file("saved1.yaml"), p2 = dir.file("saved2.yaml");
    save_model_config(configs[i], p1);
    ModelConfig back = load_model_config(p1);
    expect_same(configs[i], back);
    save_model_config(back, p2);
    EXPECT_EQ(slurp(p1), slurp(p2));  // a fixed point after one save
  }
}

TEST(ConfigRoundTrip, SavedFileHasOnlySchemaKeysAndNames) {
  TempDir dir;
  std::string p = dir.file("saved.yaml");
  save_model_config(load_model_config(dir.write("a.yaml", kHybrid)), p);
  YAML::Node r = YAML::LoadFile(p);
  EXPECT_FALSE(r["wandb"]);
  EXPECT_FALSE(r["optim"]);
  EXPECT_EQ(r["model"]["backbone"]["_name_"].as<std::string>(), "sequence_interleave");
  EXPECT_EQ(r["model"]["backbone"]["seq_cell1"]["_name_"].as<std::string>(), "rat");
  EXPECT_EQ(r["model"]["backbone"]["hidden_cell"]["_name_"].as<std::string>(), "ffn");
  EXPECT_EQ(r["model"]["embedding"]["pe"]["_name_"].as<std::string>(), "rope_interrope");
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST(ConfigRoundTrip, PyYamlReadsSavedFile) {
  if (std::system("/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 with PyYAML not available";
  TempDir dir;
  std::string p = dir.file("saved.yaml");
  save_model_config(load_model_config(dir.write("a.yaml", kHybrid)), p);
  std::string cmd = "/usr/bin/python3 -c \"import yaml,sys; c=yaml.safe_load(open('" + p +
                    "')); b=c['model']['backbone']; "
                    "sys.exit(0 if b['seq_cell1']['chunk_size']==8 and b['d_model']==64 and "
                    "c['model']['embedding']['pe']['base']==500000 and "
                    "c['task']['tie_embedding'] is False and b['hidden_cell']['bias'] is True "
                    "else 1)\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

TEST(ConfigRoundTrip, SaveToMissingDirectoryNamesPath) {
  std::string p = "/nonexistent_rat_dir/config.yaml";
  std::string msg = error_of([&] { save_model_config(attention_config(), p); });
  EXPECT_HAS(msg, p);
}

// --- bad files -------------------------------------------------------------

TEST(ConfigErrors, MissingFile) {
  std::string msg = error_of([] { load_model_config("/nonexistent_rat_dir/config.yaml"); });
  EXPECT_HAS(msg, "/nonexistent_rat_dir/config.yaml: cannot open");
  EXPECT_HAS(msg, "No such file");
}

TEST(ConfigErrors, YamlSyntaxErrorNamesLine) {
  TempDir dir;
  std::string p = dir.write("config.yaml", "data:\n  vocab_size: 10\nmodel: {backbone: [1, 2\n");
  std::string msg = error_of([&] { load_model_config(p); });
  EXPECT_HAS(msg, p + ":4: not a YAML mapping (");  // yaml-cpp reports the end of input
  EXPECT_HAS(msg, "), expected a mapping with data, model and task");
  TempDir dir2;
  std::string p2 = dir2.write("config.yaml", "data:\n  vocab_size: 10\n   bad: indent\n");
  std::string msg2 = error_of([&] { load_model_config(p2); });
  EXPECT_HAS(msg2, p2 + ":3: not a YAML mapping (");
  // Markdown is not YAML: yaml-cpp's own words stay in parentheses.
  std::string p3 = dir2.write("README.md", "# rat\n\n* fast\n* small\n");
  std::string msg3 = error_of([&] { load_model_config(p3); });
  EXPECT_HAS(msg3, p3 + ":3: not a YAML mapping (");
  EXPECT_HAS(msg3, "alias");
}

TEST(ConfigErrors, EmptyOrNotAMapping) {
  TempDir dir;
  std::string p = dir.write("config.yaml", "");
  std::string msg = error_of([&] { load_model_config(p); });
  EXPECT_EQ(msg,
            p + ": not a YAML mapping (empty file), expected a mapping with data, model and task");
  p = dir.write("config.yaml", "- 1\n- 2\n");
  msg = error_of([&] { load_model_config(p); });
  EXPECT_EQ(
      msg, p + ":1: not a YAML mapping (got a list), expected a mapping with data, model and task");
}

// A value in the file is cited by line; a missing key has none to cite.
TEST(ConfigErrors, BadValueNamesItsLine) {
  TempDir dir;
  std::string text = kMinimalRat;  // line 1 is empty, line 6 holds d_model
  text.replace(text.find("d_model: 32"), 11, "d_model: sixty");
  std::string p = dir.write("config.yaml", text);
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ":6: model.backbone.d_model: got 'sixty', expected an integer");
  text = kMinimalRat;
  text.replace(text.find("_name_: interrope"), 17, "_name_: alibi");
  p = dir.write("config.yaml", text);
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ":10: model.embedding.pe._name_: unknown positional encoding 'alibi', expected "
                "one of rope, interrope, rope_interrope, empty");
  text = kMinimalRat;
  text.replace(text.find("{vocab_size: 100}"), 17, "{seq_len: 8}");
  p = dir.write("config.yaml", text);
  EXPECT_EQ(error_of([&] { load_model_config(p); }),
            p + ": data.vocab_size: missing, expected a positive integer here or in "
                "model.embedding.vocab_size");
}

TEST(ConfigErrors, UnknownMixer) {
  std::string msg =
      hybrid_error([](YAML::Node& r) { backbone(r)["seq_cell1"]["_name_"] = "ratt"; });
  EXPECT_HAS(msg,
             ": model.backbone.seq_cell1._name_: unknown mixer 'ratt', expected one of rat, "
             "attention, local_attention, rnn");
}

TEST(ConfigErrors, MissingMixerName) {
  std::string msg = hybrid_error([](YAML::Node& r) { backbone(r)["seq_cell"].remove("_name_"); });
  EXPECT_HAS(msg, "model.backbone.seq_cell._name_: missing, expected one of rat");
}

TEST(ConfigErrors, MissingRequiredSizes) {
  struct Case {
    std::function<void(YAML::Node&)> edit;
    const char* key;
  };
  std::vector<Case> cases = {
      {[](YAML::Node& r) { backbone(r).remove("hidden_cell"); },
       "model.backbone.hidden_cell: missing, expected a mapping"},
      {[](YAML::Node& r) { backbone(r).remove("seq_cell"); },
       "model.backbone.seq_cell: missing, expected a mapping"},
      {[](YAML::Node& r) { backbone(r).remove("seq_cell1"); },
       "model.backbone.seq_cell1: missing, expected a mapping"},
      {[](YAML::Node& r) { r.remove("model"); }, "model: missing, expected a mapping"},
      {[](YAML::Node& r) { r["model"].remove("backbone"); },
       "model.backbone: missing, expected a mapping"},
      {[](YAML::Node& r) { r["model"]["embedding"].remove("pe"); },
       "model.embedding.pe: missing, expected a mapping with _name_ one of rope, interrope"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    EXPECT_HAS(hybrid_error(c.edit), std::string(": ") + c.key);
  }
}

TEST(ConfigErrors, VocabMissingOrDisagreeing) {
  std::string msg = hybrid_error([](YAML::Node& r) {
    r["data"].remove("vocab_size");
    r["model"]["embedding"].remove("vocab_size");
  });
  EXPECT_HAS(msg,
             "data.vocab_size: missing, expected a positive integer here or in "
             "model.embedding.vocab_size");
  msg = hybrid_error([](YAML::Node& r) { r["model"]["embedding"]["vocab_size"] = 513; });
  EXPECT_HAS(msg,
             "model.embedding.vocab_size: 513 disagrees with data.vocab_size 512, expected "
             "equal values");
}

TEST(ConfigErrors, UnknownNames) {
  std::string msg = hybrid_error([](YAML::Node& r) { backbone(r)["_name_"] = "seq"; });
  EXPECT_HAS(msg,
             "model.backbone._name_: unknown backbone 'seq', expected one of sequence, "
             "sequence_interleave");
  msg = hybrid_error([](YAML::Node& r) { backbone(r)["hidden_cell"]["act_fn"] = "gelu2"; });
  EXPECT_HAS(msg,
             "model.backbone.hidden_cell.act_fn: unknown activation 'gelu2', expected one of "
             "gelu, fastgelu, relu, swiglu");
  msg = hybrid_error([](YAML::Node& r) { backbone(r)["hidden_cell"]["_name_"] = "moe"; });
  EXPECT_HAS(msg, "model.backbone.hidden_cell._name_: unknown hidden cell 'moe', expected ffn");
  msg = hybrid_error([](YAML::Node& r) { r["model"]["embedding"]["pe"]["_name_"] = "alibi"; });
  EXPECT_HAS(msg,
             "model.embedding.pe._name_: unknown positional encoding 'alibi', expected one "
             "of rope, interrope, rope_interrope, empty");
}

TEST(ConfigErrors, WrongTypesNameTheKey) {
  std::string msg = hybrid_error([](YAML::Node& r) { backbone(r)["d_model"] = "sixty-four"; });
  EXPECT_HAS(msg, "model.backbone.d_model: got 'sixty-four', expected an integer");
  msg = hybrid_error([](YAML::Node& r) { backbone(r)["d_model"] = 64.5; });
  EXPECT_HAS(msg, "model.backbone.d_model: got '64.5', expected an integer");
  msg = hybrid_error([](YAML::Node& r) { backbone(r)["num_layers"] = YAML::Load("[1, 2]"); });
  EXPECT_HAS(msg, "model.backbone.num_layers: got a list, expected an integer");
  msg = hybrid_error([](YAML::Node& r) { r["data"]["seq_len"] = "99999999999999999999"; });
  EXPECT_HAS(msg, "data.seq_len: got '99999999999999999999' (out of range), expected a 64-bit");
  msg = hybrid_error([](YAML::Node& r) { backbone(r)["hidden_cell"]["bias"] = "maybe"; });
  EXPECT_HAS(msg, "model.backbone.hidden_cell.bias: got 'maybe', expected true or false");
  msg = hybrid_error([](YAML::Node& r) { r["model"]["embedding"]["pe"]["base"] = "ten"; });
  EXPECT_HAS(msg, "model.embedding.pe.base: got 'ten', expected a number");
  msg =
      hybrid_error([](YAML::Node& r) { backbone(r)["seq_cell"]["_name_"] = YAML::Load("{a: 1}"); });
  EXPECT_HAS(msg, "model.backbone.seq_cell._name_: got a mapping, expected a string");
  msg = hybrid_error([](YAML::Node& r) { backbone(r)["seq_cell"] = "rat"; });
  EXPECT_HAS(msg, "model.backbone.seq_cell: got 'rat', expected a mapping");
  msg = hybrid_error([](YAML::Node& r) { backbone(r)["d_model"] = "six\nty"; });
  EXPECT_HAS(msg, "model.backbone.d_model: got 'six\\nty', expected an integer");  // one line
  msg = hybrid_error([](YAML::Node& r) { r["task"] = 3; });
  EXPECT_HAS(msg, "task: got '3', expected a mapping");
}

TEST(ConfigErrors, CrossKeyConstraints) {
  struct Case {
    std::function<void(YAML::Node&)> edit;
    const char* msg;
  };
  std::vector<Case> cases = {
      {[](YAML::Node& r) { backbone(r)["seq_cell1"]["d_head"] = 24; },
       "model.backbone.seq_cell1.d_head: d_head 24 does not divide d_model 64, expected a "
       "divisor of d_model"},
      {[](YAML::Node& r) { backbone(r)["seq_cell1"]["ngroups"] = 3; },
       "model.backbone.seq_cell1.ngroups: ngroups 3 does not divide the 4 heads (d_model / "
       "d_head), expected a divisor of 4"},
      {[](YAML::Node& r) { backbone(r)["seq_cell1"]["ngroups"] = 0; },
       "model.backbone.seq_cell1.ngroups: got 0, expected a positive integer"},
      {[](YAML::Node& r) { backbone(r)["seq_cell1"]["chunk_size"] = 0; },
       "model.backbone.seq_cell1.chunk_size: got 0, expected an integer >= 1"},
      {[](YAML::Node& r) { backbone(r)["seq_cell"]["window_size"] = -1; },
       "model.backbone.seq_cell.window_size: got -1, expected an integer >= 0"},
      {[](YAML::Node& r) { r["model"]["embedding"]["pe"]["_name_"] = "interrope"; },
       "model.embedding.pe._name_: 'interrope' gives local_attention (model.backbone.seq_cell) "
       "no token-position rotation, expected rope or rope_interrope"},
      {[](YAML::Node& r) { r["model"]["embedding"]["pe"]["_name_"] = "rope"; },
       "model.embedding.pe._name_: 'rope' gives rat (model.backbone.seq_cell1) no chunk-index "
       "rotation, expected interrope or rope_interrope"},
      {[](YAML::Node& r) { r["model"]["embedding"]["pe"]["_name_"] = "empty"; },
       "model.embedding.pe._name_: 'empty' gives local_attention"},
      {[](YAML::Node& r) {
         backbone(r)["d_model"] = 60;
         backbone(r)["seq_cell"]["d_head"] = 15;
         backbone(r)["seq_cell1"]["d_head"] = 15;
         backbone(r)["seq_cell1"]["ngroups"] = 1;
       },
       "model.backbone.seq_cell.d_head: d_head 15 is odd but rotary 'rope_interrope' rotates "
       "half-pairs, expected an even d_head"},
      {[](YAML::Node& r) { backbone(r)["hidden_cell"]["d_ffn"] = 0; },
       "model.backbone.hidden_cell.d_ffn: got 0, expected a positive integer"},
      {[](YAML::Node& r) { backbone(r)["num_layers"] = -2; },
       "model.backbone.num_layers: got -2, expected a positive integer"},
      {[](YAML::Node& r) { backbone(r)["d_model"] = 0; },
       "model.backbone.d_model: got 0, expected a positive integer"},
      {[](YAML::Node& r) { backbone(r)["interleave_step"] = 0; },
       "model.backbone.interleave_step: got 0, expected a positive integer"},
      {[](YAML::Node& r) { r["data"]["seq_len"] = 0; },
       "data.seq_len: got 0, expected a positive integer"},
      {[](YAML::Node& r) { r["data"]["num_bytes"] = 3; }, "data.num_bytes: got 3, expected 2 or 4"},
      {[](YAML::Node& r) {
         r["data"]["vocab_size"] = 70000;
         r["model"]["embedding"]["vocab_size"] = 70000;
       },
       "data.vocab_size: vocab 70000 does not fit in 2-byte tokens (at most 65536 ids), expected "
       "num_bytes 4 or a smaller vocab"},
      {[](YAML::Node& r) { r["data"]["ignore_input_index"] = 512; },
       "data.ignore_input_index: got 512, expected -1 (none) or a token id below 512"},
      {[](YAML::Node& r) { r["model"]["embedding"]["pe"]["base"] = 0; },
       "model.embedding.pe.base: got 0, expected a positive number"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.msg);
    EXPECT_HAS(hybrid_error(c.edit), std::string(": ") + c.msg);
  }
}

TEST(ConfigErrors, VocabFitsFourBytes) {
  TempDir dir;
  ModelConfig c = load_model_config(write_edited(dir, kHybrid, [](YAML::Node& r) {
    r["data"]["vocab_size"] = 70000;
    r["data"]["num_bytes"] = 4;
    r["model"]["embedding"]["vocab_size"] = 70000;
  }));
  EXPECT_EQ(c.vocab_size, 70000);
  c = load_model_config(write_edited(dir, kHybrid, [](YAML::Node& r) {
    r["data"]["vocab_size"] = 65536;
    r["model"]["embedding"]["vocab_size"] = 65536;
  }));
  EXPECT_EQ(c.vocab_size, 65536);
}

TEST(ConfigErrors, ResolveOnBuiltConfigNamesWhere) {
  ModelConfig c = attention_config();
  c.seq_cell.d_head = 7;
  std::string msg = error_of([&] { c.resolve("my_run"); });
  EXPECT_HAS(msg, "my_run: model.backbone.seq_cell.d_head: d_head 7 does not divide d_model 48");
  c = attention_config();
  c.backbone = "interleaved";
  msg = error_of([&] { c.resolve("my_run"); });
  EXPECT_HAS(msg, "my_run: model.backbone._name_: unknown backbone 'interleaved'");
}

}  // namespace
}  // namespace rat
