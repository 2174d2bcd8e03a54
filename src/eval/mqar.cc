#include "eval/mqar.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/sft.h"
#include "data/tokens.h"
#include "eval/rng.h"
#include "model/model.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace {

// k distinct ids of [lo, hi) in random order: Floyd's subset sampling, then a
// Fisher-Yates shuffle (Floyd's order is not uniform). `mark` (size >= hi)
// holds `stamp` at ids already taken, so no per-example clearing is needed.
void distinct_ids(TaskRng& rng, int64_t lo, int64_t hi, int64_t k, std::vector<uint64_t>& mark,
                  uint64_t stamp, int32_t* out) {
  const int64_t n = hi - lo;
  int64_t m = 0;
  for (int64_t j = n - k; j < n; ++j) {
    int64_t t = int64_t(rng.below(uint64_t(j + 1)));
    if (mark[size_t(lo + t)] == stamp) t = j;
    mark[size_t(lo + t)] = stamp;
    out[m++] = int32_t(lo + t);
  }
  for (int64_t i = k - 1; i > 0; --i) std::swap(out[i], out[rng.below(uint64_t(i + 1))]);
}

}  // namespace

void check_mqar(const MqarOptions& o) {
  if (o.pairs < 1) throw Error("--pairs " + std::to_string(o.pairs) + ": expected at least 1");
  if (o.vocab < 4 || o.vocab / 2 - 1 < o.pairs)
    throw Error("--vocab " + std::to_string(o.vocab) + ": expected room for " +
                std::to_string(o.pairs) +
                " distinct keys in [1, V/2) and values in [V/2, V), i.e. V >= " +
                std::to_string(2 * o.pairs + 2));
  if (o.seq_len % 2 || o.seq_len < 4 * o.pairs)
    throw Error("--seq-len " + std::to_string(o.seq_len) +
                ": expected an even length >= 4 x --pairs = " + std::to_string(4 * o.pairs) +
                " (the pairs, then one slot pair per query)");
  if (!(o.power_a > 0) || !std::isfinite(o.power_a))
    throw Error("--power-a " + std::to_string(o.power_a) +
                ": expected a positive number (1: uniform)");
}

MqarSplit make_mqar(const MqarOptions& o, int64_t examples, uint64_t seed, uint64_t stream) {
  check_mqar(o);
  const int64_t T = o.seq_len, K = o.pairs, V = o.vocab, half = V / 2;
  const int64_t space = (T - 2 * K) / 2;  // query slots
  std::vector<double> weight(static_cast<size_t>(space));
  for (int64_t g = 0; g < space; ++g) weight[size_t(g)] = std::pow(double(g + 1), o.power_a - 1);
  MqarSplit s;
  s.inputs.assign(size_t(examples * T), 0);
  s.labels.assign(size_t(examples * T), -100);
  TaskRng rng(seed, stream);
  std::vector<uint64_t> mark(static_cast<size_t>(V), 0);
  std::vector<int32_t> keys(static_cast<size_t>(K)), values(static_cast<size_t>(K));
  std::vector<double> w(static_cast<size_t>(space));
  for (int64_t e = 0; e < examples; ++e) {
    int32_t* x = s.inputs.data() + e * T;
    int32_t* y = s.labels.data() + e * T;
    distinct_ids(rng, 1, half, K, mark, uint64_t(e) + 1, keys.data());
    distinct_ids(rng, half, V, K, mark, uint64_t(e) + 1, values.data());
    for (int64_t j = 0; j < K; ++j) x[2 * j] = keys[size_t(j)], x[2 * j + 1] = values[size_t(j)];
    // Weighted slots without replacement, drawn one after another (the
    // distribution of numpy's choice(replace=False, p=...) that Zoology uses).
    w = weight;
    double total = 0;
    for (double v : w) total += v;
    for (int64_t j = 0; j < K; ++j) {
      double u = rng.uniform() * total;
      int64_t g = 0;
      while (g < space - 1 && (w[size_t(g)] == 0 || u >= w[size_t(g)])) u -= w[size_t(g++)];
      while (w[size_t(g)] == 0) --g;  // rounding ran past the last free slot
      total -= w[size_t(g)];
      w[size_t(g)] = 0;
      const int64_t at = 2 * K + 2 * g;
      x[at] = keys[size_t(j)];
      y[at] = values[size_t(j)];
    }
    if (o.random_fill)
      for (int64_t t = 2 * K; t < T; ++t)
        if (y[t] == -100) x[t] = int32_t(rng.below(uint64_t(V)));  // not a query
  }
  return s;
}

nlohmann::json MqarReport::to_json(const MqarOptions& o, uint64_t seed) const {
  return {
      {"task", "mqar"},
      {"vocab", o.vocab},
      {"pairs", o.pairs},
      {"seq_len", o.seq_len},
      {"power_a", o.power_a},
      {"random_fill", o.random_fill},
      {"seed", seed},
      {"num_bytes", num_bytes},
      {"train", {{"examples", train_examples}, {"inputs", train_inputs}, {"labels", train_labels}}},
      {"test", {{"examples", test_examples}, {"inputs", test_inputs}, {"labels", test_labels}}}};
}

MqarReport write_mqar(const MqarOptions& o, int64_t train, int64_t test, uint64_t seed,
                      const std::string& prefix) {
  check_mqar(o);
  if (train < 1) throw Error("--train " + std::to_string(train) + ": expected at least 1 example");
  if (test < 1) throw Error("--test " + std::to_string(test) + ": expected at least 1 example");
  MqarReport r;
  r.num_bytes = sft_num_bytes(o.vocab);
  r.train_examples = train;
  r.test_examples = test;
  r.train_inputs = prefix + ".train.inputs.bin";
  r.train_labels = prefix + ".train.labels.bin";
  r.test_inputs = prefix + ".test.inputs.bin";
  r.test_labels = prefix + ".test.labels.bin";
  r.report_path = prefix + ".json";
  make_parent_directories(prefix, "--out");
  // Both splits are generated before anything is written.
  const MqarSplit tr = make_mqar(o, train, seed, 0), te = make_mqar(o, test, seed, 1);
  write_sft_ids(r.train_inputs, tr.inputs, r.num_bytes);
  write_sft_ids(r.train_labels, tr.labels, r.num_bytes);
  write_sft_ids(r.test_inputs, te.inputs, r.num_bytes);
  write_sft_ids(r.test_labels, te.labels, r.num_bytes);
  write_file_atomic(r.report_path, r.to_json(o, seed).dump(2) + "\n");
  return r;
}

namespace {

// An integer field of the report, named in the error when absent or mistyped.
int64_t report_int(const nlohmann::json& j, const std::string& path, const std::string& key) {
  const nlohmann::json* v = &j;
  std::string dotted;
  for (size_t at = 0, dot; at <= key.size(); at = dot + 1) {
    dot = std::min(key.find('.', at), key.size());
    const std::string part = key.substr(at, dot - at);
    if (!v->is_object() || !v->contains(part)) {
      v = nullptr;
      break;
    }
    v = &(*v)[part];
  }
  if (!v || !v->is_number_integer())
    throw Error(path + ": key " + key +
                ": expected an integer (the report `rat tasks mqar` writes)");
  return v->get<int64_t>();
}

// The first n ids of a task token file, -100 restored from its id-width pattern.
std::vector<int32_t> read_task_ids(const std::string& path, int num_bytes, int64_t want_tokens,
                                   int64_t n) {
  TokenFile f(path, num_bytes);
  if (f.num_tokens() != want_tokens)
    throw Error(path + ": " + std::to_string(f.num_tokens()) + " ids, expected " +
                std::to_string(want_tokens) + " (examples x seq_len of the report)");
  const uint32_t ignored = num_bytes == 2 ? 0xFF9Cu : 0xFFFFFF9Cu;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t t = f.token(i);
    ids[size_t(i)] = t == ignored ? -100 : int32_t(t);
  }
  return ids;
}

}  // namespace

MqarTask read_mqar_test(const std::string& prefix, int64_t limit) {
  const std::string path = prefix + ".json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read (is " + prefix + " the --out of `rat tasks mqar`?)");
  std::ostringstream buf;
  buf << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(buf.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object() || !j.contains("task") || j["task"] != "mqar")
    throw Error(path + ": key task: expected \"mqar\" (the report `rat tasks mqar` writes)");
  MqarTask t;
  t.opt.vocab = report_int(j, path, "vocab");
  t.opt.pairs = report_int(j, path, "pairs");
  t.opt.seq_len = report_int(j, path, "seq_len");
  if (j.contains("power_a") && j["power_a"].is_number()) t.opt.power_a = j["power_a"].get<double>();
  try {
    check_mqar(t.opt);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  const int64_t nb = report_int(j, path, "num_bytes");
  if (nb != sft_num_bytes(t.opt.vocab))
    throw Error(path + ": key num_bytes: " + std::to_string(nb) + ", expected " +
                std::to_string(sft_num_bytes(t.opt.vocab)) + " for vocab " +
                std::to_string(t.opt.vocab));
  const int64_t total = report_int(j, path, "test.examples");
  if (total < 1) throw Error(path + ": key test.examples: expected at least 1");
  t.examples = limit >= 0 ? std::min(limit, total) : total;
  if (t.examples < 1) throw Error("--limit " + std::to_string(limit) + ": expected at least 1");
  const int64_t T = t.opt.seq_len, V = t.opt.vocab, n = t.examples * T;
  const std::string xs = prefix + ".test.inputs.bin", ys = prefix + ".test.labels.bin";
  t.inputs = read_task_ids(xs, int(nb), total * T, n);
  t.labels = read_task_ids(ys, int(nb), total * T, n);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t x = t.inputs[size_t(i)], y = t.labels[size_t(i)];
    if (x < 0 || x >= V)
      throw Error(xs + ": id " + std::to_string(x) + " at position " + std::to_string(i) +
                  ", expected an id below the report's vocab " + std::to_string(V));
    if (y != -100 && (y < 0 || y >= V))
      throw Error(ys + ": label " + std::to_string(y) + " at position " + std::to_string(i) +
                  ", expected -100 or an id below the report's vocab " + std::to_string(V));
  }
  return t;
}

double MqarScore::acc_stderr() const {
  return answers ? std::sqrt(acc() * (1 - acc()) / double(answers)) : 0.0;
}

MqarScore score_mqar(Model& model, const MqarTask& task, int64_t B,
                     const std::function<void(int64_t)>& progress) {
  const ModelConfig& cfg = model.config();
  if (cfg.vocab_size < task.opt.vocab)
    throw Error("the model's vocab_size " + std::to_string(cfg.vocab_size) +
                " is below the task's vocab " + std::to_string(task.opt.vocab));
  if (B < 1) throw Error("--batch-size " + std::to_string(B) + ": expected at least 1");
  const int64_t T = task.opt.seq_len, rows = std::min(B, task.examples);
  std::vector<float> lp(static_cast<size_t>(rows * T));
  std::vector<int32_t> best(static_cast<size_t>(rows * T));
  std::vector<int32_t> labels(static_cast<size_t>(rows * T));
  MqarScore s;
  for (int64_t e0 = 0; e0 < task.examples; e0 += rows) {
    const int64_t b = std::min(rows, task.examples - e0);
    // The task's -100 becomes the model's ignore_index (the same unless a config says otherwise).
    const int32_t* y = task.labels.data() + e0 * T;
    for (int64_t i = 0; i < b * T; ++i)
      labels[size_t(i)] = y[i] == -100 ? int32_t(cfg.ignore_index) : y[i];
    model.label_log_probs(task.inputs.data() + e0 * T, labels.data(), b, T, lp.data(), best.data());
    for (int64_t i = 0; i < b; ++i) {
      int64_t asked = 0, right = 0;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t at = i * T + t;
        if (y[at] == -100) continue;
        ++asked;
        right += best[size_t(at)] == y[at];
        s.answer_nll -= double(lp[size_t(at)]);
      }
      s.answers += asked;
      s.correct += right;
      s.examples_correct += asked > 0 && right == asked;
    }
    s.examples += b;
    if (progress) progress(s.examples);
  }
  return s;
}

}  // namespace rat
