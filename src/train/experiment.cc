#include "train/experiment.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "model/enum_names.h"
#include "model/yaml_reader.h"
#include "util/error.h"

namespace rat {

const std::vector<std::string>& experiment_keys() { return config_file_schema().keys; }

namespace {

// The node at a dotted path (Undefined if absent). yaml-cpp nodes are handles,
// so walking with operator[] on a const copy never inserts.
YAML::Node lookup(const YAML::Node& root, const std::string& dotted) {
  std::stringstream ss(dotted);
  std::string part;
  YAML::Node n = root;
  while (std::getline(ss, part, '.')) {
    if (!n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    const YAML::Node& cn = n;
    YAML::Node next = cn[part];
    if (!next.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
    n.reset(next);
  }
  return n;
}

std::string number(double v) { return (std::ostringstream() << v).str(); }

void assign(YAML::Node root, const std::string& dotted, const YAML::Node& value) {
  std::vector<std::string> parts;
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  YAML::Node n = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!n[parts[i]].IsMap()) n[parts[i]] = YAML::Node(YAML::NodeType::Map);
    n.reset(n[parts[i]]);
  }
  n[parts.back()] = value;
}

DataSplit read_split(const YamlSection& s) {
  DataSplit d;
  d.name = s.opt_str("_name_").value_or(d.name);
  if (d.name != "lm_ordered" && d.name != "lm_random" && d.name != "sft_ordered" &&
      d.name != "sft_random")
    s.fail("_name_", "unknown loader '" + d.name +
                         "', expected one of lm_ordered, lm_random, sft_ordered, sft_random");
  d.tokenized_file_path = s.opt_str("tokenized_file_path").value_or("");
  d.tokenized_input_path = s.opt_str("tokenized_input_path").value_or("");
  d.tokenized_label_path = s.opt_str("tokenized_label_path").value_or("");
  d.limit_tokens = s.opt_int("limit_tokens").value_or(-1);
  return d;
}

const EnumNames<Recompute>& recompute_names() {
  static const EnumNames<Recompute> names(
      "activation checkpointing",
      {{"none", Recompute::kNone}, {"block", Recompute::kBlock}, {"mixer", Recompute::kMixer}});
  return names;
}

}  // namespace

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  return load_experiment(
      load_yaml_mapping(path,
                        "an experiment config (a mapping with data, model, optim and trainer)"),
      path, overrides, ConfigOrigin{path, {}});
}

void check_data_files(const Experiment& e) {
  if (!e.missing_data.empty()) throw Error(e.missing_data);
}

Experiment load_experiment(YAML::Node root, const std::string& path,
                           const std::vector<std::string>& overrides, const ConfigOrigin& origin) {
  // The file's own keys first, so their errors cite its lines.
  check_known_keys(root, path, config_file_schema());
  const auto& keys = experiment_keys();
  for (const std::string& ov : overrides) {
    size_t eq = ov.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("override '" + ov + "': expected dotted.key=value");
    std::string key = ov.substr(0, eq), val = ov.substr(eq + 1);
    const KeySchema& schema = config_file_schema();
    auto listed = [&](const std::vector<std::string>& v) {
      return std::find(v.begin(), v.end(), key) != v.end();
    };
    // Under an ignored key (`wandb.mode` under `wandb`) is ignored too.
    auto under_ignored = [&] {
      for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1))
        if (std::find(schema.ignored.begin(), schema.ignored.end(), key.substr(0, dot)) !=
            schema.ignored.end())
          return true;
      return false;
    };
    const bool known = listed(keys) || listed(schema.ignored) || under_ignored() ||
                       lookup(root, key).IsDefined() ||
                       std::any_of(schema.unsupported.begin(), schema.unsupported.end(),
                                   [&](const auto& u) { return u.first == key; });
    if (!known)
      throw Error("override '" + ov + "': unknown key '" + key + "', did you mean '" +
                  closest_key(key, keys) + "'?");
    YAML::Node v;
    try {
      v = yaml_without_marks(YAML::Load(val));
    } catch (const YAML::Exception&) {
      v = YAML::Node(val);  // not YAML (e.g. "a: b: c"): the text as a string
    }
    assign(root, key, v);
    // The file passed, so anything wrong now is the override's: an authors'
    // option set to a value rat lacks, or a mapping value with unknown keys.
    check_known_keys(root, "override '" + ov + "'", schema);
  }

  ConfigOrigin from = origin;
  for (const std::string& k : override_keys(overrides)) from.command_line_keys.insert(k);
  Experiment e;
  e.missing_data = resolve_data_paths(root, from);
  e.source = path;
  e.resolved = root;
  e.model = model_config_from_yaml(root, path);
  const YamlSection top(path, root, "");
  const YamlSection data = top.section("data"), optim = top.section("optim");
  const YamlSection optimizer = optim.section("optimizer"), sched = optim.section("lr_scheduler");
  const YamlSection trainer = top.section("trainer");
  e.batch_size = data.opt_int("batch_size").value_or(1);
  e.global_batch_size = data.opt_int("global_batch_size").value_or(e.batch_size);
  e.val_samples = data.opt_int("val_samples").value_or(-1);
  e.train = read_split(data.section("train"));
  e.val = read_split(data.section("val"));
  e.optimizer = optimizer.opt_str("_name_").value_or(e.optimizer);
  // The authors' defaults per optimizer (configs/optim/optimizer/*.yaml, and
  // PyTorch's where their file has none: Adam's weight decay 0, eps 1e-8).
  // rmsprop: the authors have no file, so torch.optim.RMSprop's defaults.
  if (e.optimizer == "sgd")
    e.lr = 0.1, e.weight_decay = 5e-4, e.momentum = 0.9;
  else if (e.optimizer == "adam")
    e.weight_decay = 0.0;
  else if (e.optimizer == "rmsprop")
    e.lr = 1e-2, e.weight_decay = 0.0;
  e.lr = optimizer.opt_double("lr").value_or(e.lr);
  e.weight_decay = optimizer.opt_double("weight_decay").value_or(e.weight_decay);
  if (auto betas = optimizer.opt_double_list("betas")) {
    if (betas->size() != 2)
      optimizer.fail("betas", "got a list of " + std::to_string(betas->size()) +
                                  ", expected two numbers (beta1, beta2)");
    e.beta1 = (*betas)[0], e.beta2 = (*betas)[1];
  }
  e.eps = optimizer.opt_double("eps").value_or(e.eps);
  e.alpha = optimizer.opt_double("alpha").value_or(e.alpha);
  e.momentum = optimizer.opt_double("momentum").value_or(e.momentum);
  e.centered = optimizer.opt_bool("centered").value_or(e.centered);
  if (e.optimizer != "rmsprop")
    for (const char* k : {"alpha", "centered"})
      if (optimizer.has(k))
        optimizer.fail(k, "is an rmsprop option, but optim.optimizer._name_ is " + e.optimizer);
  if (e.optimizer != "rmsprop" && e.optimizer != "sgd" && optimizer.has("momentum"))
    optimizer.fail("momentum",
                   "is an sgd/rmsprop option, but optim.optimizer._name_ is " + e.optimizer);
  if (e.momentum < 0)
    optimizer.fail("momentum", "got " + number(e.momentum) + ", expected a number >= 0");
  if (e.optimizer == "rmsprop" && !(e.alpha >= 0 && e.alpha < 1))
    optimizer.fail("alpha", "got " + number(e.alpha) + ", expected a number in [0, 1)");
  e.scheduler = sched.opt_str("_name_").value_or(e.scheduler);
  if (e.scheduler == "plateau")
    sched.fail("_name_",
               "plateau (ReduceLROnPlateau) is not supported by rat: it needs the validation "
               "metric at each step and the authors' trainer calls lr_scheduler.step() without "
               "one; expected one of cosine, constant, step");
  e.step_size = sched.opt_int("step_size").value_or(e.step_size);
  e.gamma = sched.opt_double("gamma").value_or(e.gamma);
  if (e.scheduler == "step" && e.step_size <= 0) {
    if (!sched.has("step_size")) sched.missing("step_size", "a positive number of optimiser steps");
    sched.fail("step_size", "got " + std::to_string(e.step_size) + ", expected a positive integer");
  }
  e.warmup_iter = sched.opt_double("warmup_iter").value_or(e.warmup_iter);
  e.eta_min = sched.opt_double("eta_min").value_or(e.eta_min);
  if (auto seed = trainer.opt_int("seed")) {
    if (*seed < 0)
      trainer.fail("seed", "got " + std::to_string(*seed) + ", expected a non-negative integer");
    e.seed = uint64_t(*seed);
  }
  if (auto dt = trainer.opt_str("dtype"); dt && (*dt == "float16" || *dt == "f16"))
    trainer.fail("dtype",
                 "float16 is not supported by rat (no fp16 kernels or loss scaling), "
                 "expected float32 or bfloat16");
  e.precision = trainer.opt_enum("dtype", precision_names()).value_or(e.precision);
  e.max_epoch = trainer.opt_int("max_epoch").value_or(e.max_epoch);
  e.max_steps = trainer.opt_int("max_steps").value_or(e.max_steps);
  // The authors write `gradient_clipping: false` (or null) for no clipping.
  if (auto gc = trainer.find("gradient_clipping");
      gc && !(gc->IsScalar() && gc->Scalar() == "false"))
    e.gradient_clipping = trainer.opt_double("gradient_clipping").value_or(0.0);
  e.log_interval = trainer.opt_int("log_interval").value_or(e.log_interval);
  e.eval_interval = trainer.opt_int("eval_interval").value_or(e.eval_interval);
  e.eval_when_log = trainer.opt_bool("eval_when_log").value_or(e.eval_when_log);
  e.save_checkpoint = trainer.opt_bool("save_checkpoint").value_or(e.save_checkpoint);
  e.load_checkpoint = trainer.opt_bool("load_checkpoint").value_or(e.load_checkpoint);
  e.save_interval = trainer.opt_double("save_interval").value_or(e.save_interval);
  e.save_dir = trainer.opt_str("save_dir").value_or(e.save_dir);
  e.pretrained_path = trainer.opt_str("pretrained_path").value_or("");
  if (auto st = trainer.section("fsdp").opt_str("sharding_strategy")) {
    std::string v = *st;
    for (char& c : v) c = char(std::toupper(static_cast<unsigned char>(c)));
    if (v == "3" || v == "NO_SHARD") {
      e.shard_optimizer = e.shard_gradients = false;
    } else if (v == "ZERO1" || v == "ZERO-1") {
      e.shard_optimizer = true, e.shard_gradients = false;
    } else if (v == "2" || v == "SHARD_GRAD_OP") {
      e.shard_optimizer = e.shard_gradients = true;
    } else if (v == "1" || v == "FULL_SHARD") {
      trainer.section("fsdp").fail(
          "sharding_strategy",
          "got " + *st + (v == "1" ? " (FULL_SHARD)" : "") +
              ", which rat does not implement yet: use SHARD_GRAD_OP (2), ZERO1 or NO_SHARD (3) "
              "(docs/scaling.md)");
    } else {
      trainer.section("fsdp").fail("sharding_strategy",
                                   "got " + *st +
                                       ", expected SHARD_GRAD_OP (2), NO_SHARD (3) or ZERO1; "
                                       "FULL_SHARD (1) is not implemented");
    }
  }
  e.recompute =
      trainer.opt_enum("activation_checkpointing", recompute_names()).value_or(e.recompute);

  if (e.batch_size <= 0)
    data.fail("batch_size",
              "got " + std::to_string(e.batch_size) + ", expected a positive integer");
  if (e.global_batch_size <= 0 || e.global_batch_size % e.batch_size)
    data.fail("global_batch_size", "got " + std::to_string(e.global_batch_size) +
                                       ", expected a positive multiple of data.batch_size " +
                                       std::to_string(e.batch_size));
  if (e.optimizer != "adamw" && e.optimizer != "adam" && e.optimizer != "sgd" &&
      e.optimizer != "rmsprop")
    optimizer.fail("_name_", "unknown optimizer '" + e.optimizer +
                                 "', expected one of adamw, adam, sgd, rmsprop");
  if (e.scheduler != "cosine" && e.scheduler != "constant" && e.scheduler != "step")
    sched.fail("_name_",
               "unknown scheduler '" + e.scheduler + "', expected one of cosine, constant, step");
  if (!(e.lr > 0)) optimizer.fail("lr", "got " + number(e.lr) + ", expected a positive number");
  if (e.warmup_iter < 0 || e.warmup_iter >= 1)
    sched.fail("warmup_iter", "got " + number(e.warmup_iter) + ", expected a fraction in [0, 1)");
  if (e.log_interval <= 0)
    trainer.fail("log_interval",
                 "got " + std::to_string(e.log_interval) + ", expected a positive integer");
  if (e.train.sft() ? e.train.tokenized_input_path.empty() : e.train.tokenized_file_path.empty())
    data.section("train").missing(e.train.sft() ? "tokenized_input_path" : "tokenized_file_path",
                                  "the training data file");
  return e;
}

}  // namespace rat
