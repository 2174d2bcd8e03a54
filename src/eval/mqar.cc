#include "eval/mqar.h"

#include <cmath>
#include <filesystem>

#include "data/sft.h"
#include "eval/rng.h"
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
  const std::filesystem::path parent = std::filesystem::path(prefix).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (!std::filesystem::is_directory(parent))
      throw Error("--out " + prefix + ": cannot create directory " + parent.string());
  }
  // Both splits are generated before anything is written.
  const MqarSplit tr = make_mqar(o, train, seed, 0), te = make_mqar(o, test, seed, 1);
  write_sft_ids(r.train_inputs, tr.inputs, r.num_bytes);
  write_sft_ids(r.train_labels, tr.labels, r.num_bytes);
  write_sft_ids(r.test_inputs, te.inputs, r.num_bytes);
  write_sft_ids(r.test_labels, te.labels, r.num_bytes);
  write_file_atomic(r.report_path, r.to_json(o, seed).dump(2) + "\n");
  return r;
}

}  // namespace rat
