#include "train/experiment.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace rat {

const std::vector<std::string>& experiment_keys() {
  static const std::vector<std::string> keys = {
      "data.seq_len", "data.vocab_size", "data.num_bytes", "data.ignore_input_index",
      "data.batch_size", "data.global_batch_size", "data.val_samples",
      "data.train._name_", "data.train.tokenized_file_path", "data.train.tokenized_input_path",
      "data.train.tokenized_label_path", "data.train.limit_tokens",
      "data.val._name_", "data.val.tokenized_file_path", "data.val.tokenized_input_path",
      "data.val.tokenized_label_path", "data.val.limit_tokens",
      "model.backbone._name_", "model.backbone.num_layers", "model.backbone.d_model",
      "model.backbone.interleave_step",
      "model.backbone.seq_cell._name_", "model.backbone.seq_cell.d_head",
      "model.backbone.seq_cell.ngroups", "model.backbone.seq_cell.chunk_size",
      "model.backbone.seq_cell.window_size",
      "model.backbone.seq_cell1._name_", "model.backbone.seq_cell1.d_head",
      "model.backbone.seq_cell1.ngroups", "model.backbone.seq_cell1.chunk_size",
      "model.backbone.seq_cell1.window_size",
      "model.backbone.hidden_cell._name_", "model.backbone.hidden_cell.d_ffn",
      "model.backbone.hidden_cell.act_fn", "model.backbone.hidden_cell.bias",
      "model.embedding.vocab_size", "model.embedding.pe._name_", "model.embedding.pe.base",
      "task.tie_embedding", "task.ignore_index",
      "optim.optimizer._name_", "optim.optimizer.lr", "optim.optimizer.weight_decay",
      "optim.optimizer.betas", "optim.optimizer.eps",
      "optim.lr_scheduler._name_", "optim.lr_scheduler.warmup_iter",
      "optim.lr_scheduler.eta_min",
      "trainer.seed", "trainer.dtype", "trainer.max_epoch", "trainer.max_steps",
      "trainer.gradient_clipping", "trainer.log_interval", "trainer.eval_interval",
      "trainer.eval_when_log", "trainer.save_checkpoint", "trainer.load_checkpoint",
      "trainer.save_interval", "trainer.save_dir", "trainer.pretrained_path"};
  return keys;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

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

class Reader {
 public:
  Reader(const YAML::Node& root, const std::string& file) : root_(root), file_(file) {}
  template <class T>
  T get(const std::string& key, T def) const {
    YAML::Node n = lookup(root_, key);
    if (!n.IsDefined() || n.IsNull()) return def;
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      throw Error(file_ + ": " + key + ": '" + (n.IsScalar() ? n.Scalar() : "a mapping") +
                  "' has the wrong type");
    }
  }
  const YAML::Node& root() const { return root_; }

 private:
  YAML::Node root_;
  std::string file_;
};

DataSplit read_split(const Reader& r, const std::string& p) {
  DataSplit s;
  s.name = r.get<std::string>(p + "._name_", s.name);
  if (s.name != "lm_ordered" && s.name != "lm_random" && s.name != "sft_ordered" &&
      s.name != "sft_random")
    throw Error("config: " + p + "._name_: unknown loader '" + s.name +
                "', expected lm_ordered, lm_random, sft_ordered or sft_random");
  s.tokenized_file_path = r.get<std::string>(p + ".tokenized_file_path", "");
  s.tokenized_input_path = r.get<std::string>(p + ".tokenized_input_path", "");
  s.tokenized_label_path = r.get<std::string>(p + ".tokenized_label_path", "");
  s.limit_tokens = r.get<int64_t>(p + ".limit_tokens", -1);
  return s;
}

}  // namespace

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error(path + ": cannot read the experiment config");
  } catch (const YAML::ParserException& e) {
    throw Error(path + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) throw Error(path + ": expected a YAML mapping at the top level");
  const auto& keys = experiment_keys();
  for (const std::string& ov : overrides) {
    size_t eq = ov.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("override '" + ov + "': expected dotted.key=value");
    std::string key = ov.substr(0, eq), val = ov.substr(eq + 1);
    bool known = std::find(keys.begin(), keys.end(), key) != keys.end() ||
                 lookup(root, key).IsDefined();
    if (!known) {
      std::string best;
      size_t bd = SIZE_MAX;
      for (const std::string& k : keys)
        if (size_t d = edit_distance(key, k); d < bd) bd = d, best = k;
      throw Error("override '" + ov + "': unknown key '" + key + "', did you mean '" + best +
                  "'?");
    }
    YAML::Node v;
    try {
      v = YAML::Load(val);
    } catch (const YAML::Exception&) {
      v = YAML::Node(val);
    }
    assign(root, key, v);
  }

  Experiment e;
  e.source = path;
  e.resolved = root;
  e.model = model_config_from_yaml(root, path);
  Reader r(root, path);
  e.batch_size = r.get<int64_t>("data.batch_size", 1);
  e.global_batch_size = r.get<int64_t>("data.global_batch_size", e.batch_size);
  e.val_samples = r.get<int64_t>("data.val_samples", -1);
  e.train = read_split(r, "data.train");
  e.val = read_split(r, "data.val");
  e.optimizer = r.get<std::string>("optim.optimizer._name_", e.optimizer);
  e.lr = r.get<double>("optim.optimizer.lr", e.lr);
  e.weight_decay = r.get<double>("optim.optimizer.weight_decay", e.weight_decay);
  std::vector<double> betas = r.get<std::vector<double>>("optim.optimizer.betas", {e.beta1, e.beta2});
  if (betas.size() != 2) throw Error(path + ": optim.optimizer.betas: expected two numbers");
  e.beta1 = betas[0], e.beta2 = betas[1];
  e.eps = r.get<double>("optim.optimizer.eps", e.eps);
  e.scheduler = r.get<std::string>("optim.lr_scheduler._name_", e.scheduler);
  e.warmup_iter = r.get<double>("optim.lr_scheduler.warmup_iter", e.warmup_iter);
  e.eta_min = r.get<double>("optim.lr_scheduler.eta_min", e.eta_min);
  e.seed = r.get<uint64_t>("trainer.seed", e.seed);
  e.dtype = r.get<std::string>("trainer.dtype", e.dtype);
  e.max_epoch = r.get<int64_t>("trainer.max_epoch", e.max_epoch);
  e.max_steps = r.get<int64_t>("trainer.max_steps", e.max_steps);
  {
    YAML::Node gc = lookup(root, "trainer.gradient_clipping");
    if (gc.IsDefined() && !gc.IsNull() && !(gc.IsScalar() && gc.Scalar() == "false"))
      e.gradient_clipping = r.get<double>("trainer.gradient_clipping", 0.0);
  }
  e.log_interval = r.get<int64_t>("trainer.log_interval", e.log_interval);
  e.eval_interval = r.get<int64_t>("trainer.eval_interval", e.eval_interval);
  e.eval_when_log = r.get<bool>("trainer.eval_when_log", e.eval_when_log);
  e.save_checkpoint = r.get<bool>("trainer.save_checkpoint", e.save_checkpoint);
  e.load_checkpoint = r.get<bool>("trainer.load_checkpoint", e.load_checkpoint);
  e.save_interval = r.get<double>("trainer.save_interval", e.save_interval);
  e.save_dir = r.get<std::string>("trainer.save_dir", e.save_dir);
  e.pretrained_path = r.get<std::string>("trainer.pretrained_path", "");

  auto bad = [&](const std::string& key, const std::string& what) {
    throw Error(path + ": " + key + ": " + what);
  };
  if (e.batch_size <= 0) bad("data.batch_size", "must be positive");
  if (e.global_batch_size <= 0 || e.global_batch_size % e.batch_size)
    bad("data.global_batch_size",
        std::to_string(e.global_batch_size) + " is not a positive multiple of data.batch_size " +
            std::to_string(e.batch_size));
  if (e.optimizer != "adamw" && e.optimizer != "adam" && e.optimizer != "sgd")
    bad("optim.optimizer._name_", "unknown optimizer '" + e.optimizer + "', expected adamw, adam or sgd");
  if (e.scheduler != "cosine" && e.scheduler != "constant")
    bad("optim.lr_scheduler._name_", "unknown scheduler '" + e.scheduler + "', expected cosine or constant");
  if (e.dtype != "float32" && e.dtype != "bfloat16")
    bad("trainer.dtype", "'" + e.dtype + "', expected float32 or bfloat16");
  if (!(e.lr > 0)) bad("optim.optimizer.lr", "must be positive");
  if (e.warmup_iter < 0 || e.warmup_iter >= 1) bad("optim.lr_scheduler.warmup_iter", "expected a fraction in [0, 1)");
  if (e.log_interval <= 0) bad("trainer.log_interval", "must be positive");
  if (e.train.sft() ? e.train.tokenized_input_path.empty() : e.train.tokenized_file_path.empty())
    bad(e.train.sft() ? "data.train.tokenized_input_path" : "data.train.tokenized_file_path",
        "missing: the training data file");
  return e;
}

}  // namespace rat
