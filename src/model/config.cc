// Reading, checking and writing config.yaml (SPEC.md "Checkpoints and
// configs"). Every error is one line: `<file>[:<line>]: <dotted.key>:
// <problem>, expected <what>` (the reader is model/yaml_reader.h).
#include "model/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>
#include <sstream>

#include "model/enum_names.h"
#include "model/mixer_kinds.h"
#include "model/yaml_reader.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace {

using Section = YamlSection;

constexpr const char* kExpectedTop = "a mapping with data, model and task";

[[noreturn]] void fail(const std::string& file, const std::string& key, const std::string& what) {
  yaml_fail(file, nullptr, key, what);
}

// The authors' defaults for a key a config omits (SPEC.md "Experiment
// configs"), from CLAIRE-Labo/RAT configs/model/backbone: layer/*.yaml (the
// MixerConfig initialisers; layer/ffn.yaml: d_ffn 4 * d_model, act_fn gelu,
// bias false), sequence.yaml (num_layers 12, d_model 768) and
// sequence_interleave.yaml (interleave_step 2).
constexpr int64_t kDefaultFfnMult = 4;
constexpr int64_t kDefaultNumLayers = 12, kDefaultDModel = 768, kDefaultInterleaveStep = 2;

// The authors' `init` mapping ({_name_, initializer_range}); `dflt` when absent.
InitConfig parse_init(const Section& parent, const InitConfig& dflt) {
  InitConfig c = dflt;
  const Section s = parent.section("init");
  if (!s.present()) return c;
  c.scheme = s.opt_enum("_name_", init_names()).value_or(c.scheme);
  c.initializer_range = s.opt_double("initializer_range").value_or(c.initializer_range);
  if (!(c.initializer_range >= 0.0))
    s.fail("initializer_range", "got " + (std::ostringstream() << c.initializer_range).str() +
                                    ", expected a number >= 0");
  return c;
}

// The backbone-wide options each layer config repeats (the authors' layer
// yamls interpolate ${model.backbone.*}): a cell's own value wins, the
// backbone's is the default.
struct BackboneOptions {
  NormKind ln = NormKind::kRmsNorm;
  bool bias = false;
  double dropout = 0.0;
};

MixerConfig parse_mixer(const Section& s, const BackboneOptions& o) {
  MixerConfig m;
  m.ln = o.ln;
  m.bias = o.bias;
  if (!s.present())
    fail(s.file(), s.path(), "missing, expected a mapping with _name_ and the mixer's sizes");
  // Kind names come from the descriptors (model/mixer_kinds.h).
  auto name = s.opt_str("_name_");
  if (!name) s.missing("_name_", "one of " + mixer_kind_names());
  m.kind = mixer_kind_from_name(*name, s.file() + ": " + s.key("_name_"));
  m.d_head = s.opt_int("d_head").value_or(m.d_head);
  m.ngroups = s.opt_int("ngroups").value_or(m.ngroups);
  m.chunk_size = s.opt_int("chunk_size").value_or(m.chunk_size);
  m.window_size = s.opt_int("window_size").value_or(m.window_size);
  m.ln = s.opt_enum("ln", norm_names()).value_or(m.ln);
  m.bias = s.opt_bool("bias").value_or(m.bias);
  // The authors' rat and rnn assert `bias is False` (rat.py, rnn.py).
  if (m.bias && (m.kind == MixerKind::kRat || m.kind == MixerKind::kRnn))
    fail(s.file(), s.key("bias"),
         std::string("true, but ") + mixer_name(m.kind) +
             " layers have no projection bias (the authors' assert bias is False), expected "
             "false");
  return m;
}

void check_positive(const std::string& where, const std::string& key, int64_t v) {
  if (v <= 0) fail(where, key, "got " + std::to_string(v) + ", expected a positive integer");
}

void check_backbone(const std::string& where, const std::string& name) {
  if (name != "sequence" && name != "sequence_interleave")
    fail(where, "model.backbone._name_",
         "unknown backbone '" + name + "', expected one of sequence, sequence_interleave");
}

bool uses_rope(PosEnc p) { return p == PosEnc::kRope || p == PosEnc::kRopeInterRope; }
bool uses_interrope(PosEnc p) { return p == PosEnc::kInterRope || p == PosEnc::kRopeInterRope; }

void check_mixer(const ModelConfig& c, const MixerConfig& m, const std::string& where,
                 const std::string& key) {
  const std::string pe_key = "model.embedding.pe._name_";
  if (!mixer_kind_info(m.kind).heads) {
    // rnn (channel-wise) and identity: d_head unused, any positional encoding is ignored.
    check_positive(where, key + ".d_head", m.d_head);
    return;
  }
  check_positive(where, key + ".d_head", m.d_head);
  if (c.d_model % m.d_head != 0)
    fail(where, key + ".d_head",
         "d_head " + std::to_string(m.d_head) + " does not divide d_model " +
             std::to_string(c.d_model) + ", expected a divisor of d_model");
  const int64_t heads = c.d_model / m.d_head;
  // Sizes only some kinds have.
  if (m.kind == MixerKind::kRat) {
    check_positive(where, key + ".ngroups", m.ngroups);
    if (heads % m.ngroups != 0)
      fail(where, key + ".ngroups",
           "ngroups " + std::to_string(m.ngroups) + " does not divide the " +
               std::to_string(heads) + " heads (d_model / d_head), expected a divisor of " +
               std::to_string(heads));
    if (m.chunk_size < 1)
      fail(where, key + ".chunk_size",
           "got " + std::to_string(m.chunk_size) + ", expected an integer >= 1");
  }
  if (m.kind == MixerKind::kLocalAttention && m.window_size < 0)
    fail(where, key + ".window_size",
         "got " + std::to_string(m.window_size) + ", expected an integer >= 0");
  // The positional encoding must give the kind the rotation its descriptor says it uses.
  bool rotary = false;
  switch (mixer_kind_info(m.kind).rotation) {
    case Rotation::kChunkIndex:
      if (!uses_interrope(c.pe))
        fail(where, pe_key,
             std::string("'") + pe_name(c.pe) + "' gives " + mixer_name(m.kind) + " (" + key +
                 ") no chunk-index rotation, expected interrope or rope_interrope");
      rotary = true;
      break;
    case Rotation::kTokenPosition:
      if (!uses_rope(c.pe))
        fail(where, pe_key,
             std::string("'") + pe_name(c.pe) + "' gives " + mixer_name(m.kind) + " (" + key +
                 ") no token-position rotation, expected rope or rope_interrope");
      rotary = true;
      break;
    case Rotation::kNone: break;
  }
  if (rotary && m.d_head % 2 != 0)
    fail(where, key + ".d_head",
         "d_head " + std::to_string(m.d_head) + " is odd but rotary '" + pe_name(c.pe) +
             "' rotates half-pairs, expected an even d_head");
}

void emit_init(YAML::Emitter& out, const char* key, const InitConfig& c) {
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "_name_" << YAML::Value << init_name(c.scheme);
  out << YAML::Key << "initializer_range" << YAML::Value << c.initializer_range;
  out << YAML::EndMap;
}

void emit_mixer(YAML::Emitter& out, const MixerConfig& m) {
  out << YAML::BeginMap;
  out << YAML::Key << "_name_" << YAML::Value << mixer_name(m.kind);
  out << YAML::Key << "d_head" << YAML::Value << m.d_head;
  if (m.kind == MixerKind::kAttention || m.kind == MixerKind::kLocalAttention) {
    out << YAML::Key << "ln" << YAML::Value << norm_name(m.ln);
    out << YAML::Key << "bias" << YAML::Value << m.bias;
  }
  if (m.kind == MixerKind::kRat) {
    out << YAML::Key << "ngroups" << YAML::Value << m.ngroups;
    out << YAML::Key << "chunk_size" << YAML::Value << m.chunk_size;
  }
  if (m.kind == MixerKind::kLocalAttention)
    out << YAML::Key << "window_size" << YAML::Value << m.window_size;
  out << YAML::EndMap;
}

}  // namespace

void ModelConfig::resolve(const std::string& where) {
  check_positive(where, "data.seq_len", seq_len);
  check_positive(where, "data.vocab_size", vocab_size);
  if (num_bytes != 2 && num_bytes != 4)
    fail(where, "data.num_bytes", "got " + std::to_string(num_bytes) + ", expected 2 or 4");
  const int64_t max_vocab = num_bytes == 2 ? (int64_t(1) << 16) : (int64_t(1) << 31);
  if (vocab_size > max_vocab)
    fail(where, "data.vocab_size",
         "vocab " + std::to_string(vocab_size) + " does not fit in " + std::to_string(num_bytes) +
             "-byte tokens (at most " + std::to_string(max_vocab) + " ids), expected " +
             (num_bytes == 2 ? "num_bytes 4 or a smaller vocab" : "a smaller vocab"));
  if (ignore_input_index < -1 || ignore_input_index >= vocab_size)
    fail(where, "data.ignore_input_index",
         "got " + std::to_string(ignore_input_index) + ", expected -1 (none) or a token id below " +
             std::to_string(vocab_size));
  check_backbone(where, backbone);
  check_positive(where, "model.backbone.num_layers", num_layers);
  check_positive(where, "model.backbone.d_model", d_model);
  check_positive(where, "model.backbone.hidden_cell.d_ffn", ffn.d_ffn);
  if (!(rope_base > 0.0))
    fail(where, "model.embedding.pe.base",
         "got " + (std::ostringstream() << rope_base).str() + ", expected a positive number");
  const bool interleave = backbone == "sequence_interleave";
  if (interleave) check_positive(where, "model.backbone.interleave_step", interleave_step);
  check_mixer(*this, seq_cell, where, "model.backbone.seq_cell");
  if (interleave) check_mixer(*this, seq_cell1, where, "model.backbone.seq_cell1");

  layers.clear();
  for (int64_t i = 0; i < num_layers; ++i)
    layers.push_back(interleave && i % interleave_step == 0 ? seq_cell1 : seq_cell);
}

const KeySchema& config_file_schema() {
  static const KeySchema schema = [] {
    KeySchema s;
    auto add = [&](const std::string& section, std::initializer_list<const char*> names) {
      for (const char* n : names) s.keys.push_back(section + "." + n);
    };
    // The model (this file) ...
    add("data", {"seq_len", "vocab_size", "num_bytes", "ignore_input_index"});
    add("model.backbone",
        {"_name_", "num_layers", "d_model", "interleave_step", "ln", "bias", "dropout"});
    for (const char* cell : {"seq_cell", "seq_cell1"})
      add(std::string("model.backbone.") + cell,
          {"_name_", "d_head", "ngroups", "chunk_size", "window_size", "ln", "bias"});
    add("model.backbone.hidden_cell", {"_name_", "d_ffn", "act_fn", "bias", "ln", "dropout"});
    for (const char* sec : {"model.backbone.init", "model.embedding.init", "model.head.init"})
      add(sec, {"_name_", "initializer_range"});
    add("model.embedding", {"vocab_size"});
    add("model.embedding.pe", {"_name_", "base"});
    add("task", {"tie_embedding", "ignore_index"});
    // ... and what an experiment adds (train/experiment.cc reads them).
    add("data", {"batch_size", "global_batch_size", "val_samples", "dir"});
    for (const char* split : {"train", "val"})
      add(std::string("data.") + split, {"_name_", "tokenized_file_path", "tokenized_input_path",
                                         "tokenized_label_path", "limit_tokens"});
    add("optim.optimizer",
        {"_name_", "lr", "weight_decay", "betas", "eps", "alpha", "momentum", "centered"});
    add("optim.lr_scheduler", {"_name_", "warmup_iter", "eta_min", "step_size", "gamma"});
    add("trainer", {"seed", "dtype", "max_epoch", "max_steps", "gradient_clipping", "log_interval",
                    "eval_interval", "eval_when_log", "save_checkpoint", "load_checkpoint",
                    "save_interval", "save_dir", "pretrained_path", "activation_checkpointing"});
    add("trainer.fsdp", {"sharding_strategy"});

    // The authors' keys (CLAIRE-Labo/RAT configs/) that rat reads no value
    // from. Ignored, whatever their value: bookkeeping (wandb, hydra) and the
    // sizes their layer configs repeat, which rat derives.
    auto ignored = [&](const std::string& section, std::initializer_list<const char*> names) {
      for (const char* n : names) s.ignored.push_back(section.empty() ? n : section + "." + n);
    };
    ignored("", {"defaults", "base_dir", "wandb", "wandb_use", "hydra"});
    ignored("data", {"_name_"});
    for (const char* split : {"data.train", "data.val"})
      ignored(split, {"batch_size", "global_batch_size", "seq_len", "num_bytes", "vocab_size",
                      "ignore_input_index"});
    for (const char* cell : {"seq_cell", "seq_cell1", "hidden_cell"})
      ignored(std::string("model.backbone.") + cell,
              {"d_model", "num_head", "k_channel", "seq_len"});
    ignored("model.embedding", {"seq_len", "d_model"});
    ignored("model.embedding.pe", {"dim", "max_num_chunk", "chunk_size", "max_seq_len"});
    ignored("model.head", {"vocab_size", "d_model"});
    ignored("task", {"loss", "metric"});
    // Keys the authors' modules receive and never use: the layers are
    // initialised with the backbone's init (Base.init_weights), attention,
    // rat and rnn take no dropout, LMEmbedding stores its dropout unused.
    for (const char* cell : {"seq_cell", "seq_cell1", "hidden_cell"})
      ignored(std::string("model.backbone.") + cell, {"init"});
    for (const char* cell : {"seq_cell", "seq_cell1"})
      ignored(std::string("model.backbone.") + cell, {"dropout"});
    ignored("model.embedding", {"dropout"});
    ignored("optim.lr_scheduler", {"T_max"});
    ignored("trainer",
            {"test_speed", "device", "torch_compile", "global_batch_size", "check_gradient_norm"});
    // Their options rat does not implement, at the value rat's fixed
    // behaviour amounts to (anything else would build a different model).
    auto unsupported = [&](const std::string& key, const char* rat_value) {
      s.unsupported.emplace_back(key, rat_value);
    };
    unsupported("model.embedding._name_", "lm");
    unsupported("model.head._name_", "lm");
    unsupported("task._name_", "lm");
    return s;
  }();
  return schema;
}

ModelConfig load_model_config(const std::string& path) {
  const YAML::Node root = load_yaml_mapping(path, kExpectedTop);
  check_known_keys(root, path, config_file_schema());
  return model_config_from_yaml(root, path);
}

ModelConfig model_config_from_yaml(const YAML::Node& root, const std::string& path) {
  if (!root.IsMap())
    throw Error(path + ": not a YAML mapping (" +
                (root.IsDefined() && !root.IsNull() ? "got " + describe_yaml(root)
                                                    : std::string("empty file")) +
                "), expected " + kExpectedTop);
  ModelConfig c;
  const Section top(path, root, "");
  const Section data = top.section("data");
  const Section model = top.section("model");
  const Section backbone = model.section("backbone");
  const Section embedding = model.section("embedding");
  const Section pe = embedding.section("pe");
  const Section task = top.section("task");
  if (!model.present()) top.missing("model", "a mapping with backbone and embedding");
  if (!backbone.present())
    model.missing("backbone", "a mapping with num_layers, d_model, seq_cell, hidden_cell");

  // data
  c.seq_len = data.opt_int("seq_len").value_or(c.seq_len);
  c.num_bytes = data.opt_int("num_bytes").value_or(c.num_bytes);
  c.ignore_input_index = data.opt_int("ignore_input_index").value_or(c.ignore_input_index);
  auto v_data = data.opt_int("vocab_size");
  auto v_emb = embedding.opt_int("vocab_size");
  if (v_data && v_emb && *v_data != *v_emb)
    embedding.fail("vocab_size", std::to_string(*v_emb) + " disagrees with data.vocab_size " +
                                     std::to_string(*v_data) + ", expected equal values");
  if (!v_data && !v_emb)
    data.missing("vocab_size", "a positive integer here or in model.embedding.vocab_size");
  c.vocab_size = v_data ? *v_data : *v_emb;

  // model.backbone
  c.backbone = backbone.opt_str("_name_").value_or(c.backbone);
  if (c.backbone != "sequence" &&
      c.backbone != "sequence_interleave")  // before the keys it gives meaning to
    backbone.fail("_name_", "unknown backbone '" + c.backbone +
                                "', expected one of sequence, sequence_interleave");
  const bool interleave = c.backbone == "sequence_interleave";
  c.num_layers = backbone.opt_int("num_layers").value_or(kDefaultNumLayers);
  c.d_model = backbone.opt_int("d_model").value_or(kDefaultDModel);
  // sequence has no interleave_step in the authors' tree; 1 is what it does.
  c.interleave_step =
      backbone.opt_int("interleave_step").value_or(interleave ? kDefaultInterleaveStep : 1);
  BackboneOptions opt;
  opt.ln = backbone.opt_enum("ln", norm_names()).value_or(opt.ln);
  opt.bias = backbone.opt_bool("bias").value_or(opt.bias);
  opt.dropout = backbone.opt_double("dropout").value_or(opt.dropout);
  c.ln = opt.ln;
  c.init = parse_init(backbone, InitConfig{});
  c.embedding_init = parse_init(embedding, c.init);
  c.head_init = parse_init(model.section("head"), c.init);
  c.seq_cell = parse_mixer(backbone.section("seq_cell"), opt);
  if (interleave) c.seq_cell1 = parse_mixer(backbone.section("seq_cell1"), opt);

  const Section hidden = backbone.section("hidden_cell");
  if (!hidden.present()) backbone.missing("hidden_cell", "a mapping with _name_: ffn and d_ffn");
  if (auto name = hidden.opt_str("_name_"); name && *name != "ffn")
    hidden.fail("_name_", "unknown hidden cell '" + *name + "', expected ffn");
  c.ffn.d_ffn = hidden.opt_int("d_ffn").value_or(kDefaultFfnMult * c.d_model);
  c.ffn.act = hidden.opt_enum("act_fn", activation_names()).value_or(Activation::kGelu);
  c.ffn.bias = hidden.opt_bool("bias").value_or(opt.bias);
  c.ffn.ln = hidden.opt_enum("ln", norm_names()).value_or(opt.ln);
  c.ffn.dropout = hidden.opt_double("dropout").value_or(opt.dropout);
  if (!(c.ffn.dropout >= 0.0 && c.ffn.dropout < 1.0))
    (hidden.has("dropout") ? hidden : backbone)
        .fail("dropout", "got " + (std::ostringstream() << c.ffn.dropout).str() +
                             ", expected a probability in [0, 1)");

  // model.embedding.pe: needed unless no mixer rotates (rnn, identity ignore it).
  auto rotates = [](const MixerConfig& m) {
    return mixer_kind_info(m.kind).rotation != Rotation::kNone;
  };
  bool none_rotates = !rotates(c.seq_cell) && (!interleave || !rotates(c.seq_cell1));
  if (none_rotates && !pe.has("_name_"))
    c.pe = PosEnc::kEmpty;
  else if (!pe.present())
    embedding.missing("pe", "a mapping with _name_ " + pos_enc_names().choices());
  else if (auto v = pe.opt_enum("_name_", pos_enc_names()))
    c.pe = *v;
  else
    pe.missing("_name_", pos_enc_names().choices());
  c.rope_base = pe.opt_double("base").value_or(c.rope_base);

  // task
  c.tie_embedding = task.opt_bool("tie_embedding").value_or(c.tie_embedding);
  c.ignore_index = task.opt_int("ignore_index").value_or(c.ignore_index);

  c.resolve(path);
  return c;
}

void save_model_config(const ModelConfig& cfg, const std::string& path) {
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << YAML::BeginMap;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "seq_len" << YAML::Value << cfg.seq_len;
  out << YAML::Key << "vocab_size" << YAML::Value << cfg.vocab_size;
  out << YAML::Key << "num_bytes" << YAML::Value << cfg.num_bytes;
  out << YAML::Key << "ignore_input_index" << YAML::Value << cfg.ignore_input_index;
  out << YAML::EndMap;

  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "backbone" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "_name_" << YAML::Value << cfg.backbone;
  out << YAML::Key << "num_layers" << YAML::Value << cfg.num_layers;
  out << YAML::Key << "d_model" << YAML::Value << cfg.d_model;
  out << YAML::Key << "interleave_step" << YAML::Value << cfg.interleave_step;
  out << YAML::Key << "ln" << YAML::Value << norm_name(cfg.ln);
  emit_init(out, "init", cfg.init);
  out << YAML::Key << "seq_cell" << YAML::Value;
  emit_mixer(out, cfg.seq_cell);
  if (cfg.backbone == "sequence_interleave") {
    out << YAML::Key << "seq_cell1" << YAML::Value;
    emit_mixer(out, cfg.seq_cell1);
  }
  out << YAML::Key << "hidden_cell" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "_name_" << YAML::Value << "ffn";
  out << YAML::Key << "d_ffn" << YAML::Value << cfg.ffn.d_ffn;
  out << YAML::Key << "act_fn" << YAML::Value << activation_name(cfg.ffn.act);
  out << YAML::Key << "bias" << YAML::Value << cfg.ffn.bias;
  out << YAML::Key << "ln" << YAML::Value << norm_name(cfg.ffn.ln);
  out << YAML::Key << "dropout" << YAML::Value << cfg.ffn.dropout;
  out << YAML::EndMap;  // hidden_cell
  out << YAML::EndMap;  // backbone
  out << YAML::Key << "embedding" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "vocab_size" << YAML::Value << cfg.vocab_size;
  out << YAML::Key << "pe" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "_name_" << YAML::Value << pe_name(cfg.pe);
  out << YAML::Key << "base" << YAML::Value << cfg.rope_base;
  out << YAML::EndMap;  // pe
  emit_init(out, "init", cfg.embedding_init);
  out << YAML::EndMap;  // embedding
  out << YAML::Key << "head" << YAML::Value << YAML::BeginMap;
  emit_init(out, "init", cfg.head_init);
  out << YAML::EndMap;  // head
  out << YAML::EndMap;  // model

  out << YAML::Key << "task" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "tie_embedding" << YAML::Value << cfg.tie_embedding;
  out << YAML::Key << "ignore_index" << YAML::Value << cfg.ignore_index;
  out << YAML::EndMap;
  out << YAML::EndMap;
  if (!out.good()) throw Error(path + ": cannot emit YAML (" + out.GetLastError() + ")");
  write_file_atomic(path, std::string(out.c_str()) + "\n");
}

}  // namespace rat
