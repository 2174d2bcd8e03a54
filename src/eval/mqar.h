// Multi-query associative recall (MQAR), the synthetic recall task of Zoology
// (Arora, Eyuboglu et al. 2023; their zoology/data/multiquery_ar.py), written
// as SFT token files (SPEC.md "Data"; the layout of data/sft.h) so that
// `rat train` learns it with sft_ordered / sft_random and loss on the answers only.
//
// One example is seq_len tokens:
//   k_0 v_0 k_1 v_1 ... k_{K-1} v_{K-1} | query region of seq_len - 2K tokens
// Keys are K distinct ids of [1, V/2), values K distinct ids of [V/2, V), both
// in random order. Key k_j is queried once, at position 2K + 2 g_j where the
// gaps g_j are K distinct slots of [0, (seq_len - 2K) / 2) drawn without
// replacement with probability proportional to (g + 1)^(power_a - 1) (a power
// law: most queries come soon after the pairs, as repeated bigrams do in text).
// labels[2K + 2 g_j] = v_j (the id to predict after reading the query) and
// -100 everywhere else. Every other position of the query region is a uniform
// random id of [0, V) (Zoology's random_non_queries), or 0 without it.
// Examples are concatenated, so with data.seq_len = seq_len sample r is example r.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

struct MqarOptions {
  int64_t vocab = 8192;   // V: ids [0, V); the model's vocab_size must be >= V
  int64_t pairs = 8;      // K key-value pairs (and queries) per example
  int64_t seq_len = 64;   // tokens per example; even, >= 4K
  double power_a = 0.01;  // Zoology's default; 1 spreads queries uniformly
  bool random_fill = true;
};

// Throws rat::Error naming the flag (--vocab, --pairs, --seq-len, --power-a)
// and what was expected when the options admit no example.
void check_mqar(const MqarOptions& opt);

struct MqarSplit {
  std::vector<int32_t> inputs, labels;  // examples * seq_len each, labels -100 off answers
};

// `examples` examples from the stream (seed, stream): the same arguments give
// the same ids on every platform (the generator is ours, not std::'s).
MqarSplit make_mqar(const MqarOptions& opt, int64_t examples, uint64_t seed, uint64_t stream);

struct MqarReport {
  std::string train_inputs, train_labels, test_inputs, test_labels, report_path;
  int64_t train_examples = 0, test_examples = 0;
  int num_bytes = 2;
  nlohmann::json to_json(const MqarOptions& opt, uint64_t seed) const;
};

// Writes PREFIX.train.{inputs,labels}.bin (stream 0), PREFIX.test.{inputs,
// labels}.bin (stream 1) and PREFIX.json, atomically, creating directories.
MqarReport write_mqar(const MqarOptions& opt, int64_t train, int64_t test, uint64_t seed,
                      const std::string& prefix);

}  // namespace rat
