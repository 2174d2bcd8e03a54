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
#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

class Model;

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

// ---- Evaluation (`rat eval --task mqar PREFIX`).

// The test split of a task written by write_mqar, read back: the options
// from PREFIX.json and PREFIX.test.{inputs,labels}.bin (-100 restored).
struct MqarTask {
  MqarOptions opt;
  int64_t examples = 0;                 // read (at most the limit)
  std::vector<int32_t> inputs, labels;  // examples * seq_len each
};

// limit >= 0 keeps the first `limit` examples. Throws rat::Error naming the
// file and what was expected: PREFIX.json missing, not JSON, not an mqar
// report or lacking a key; a token file missing, of another length than
// the report's examples x seq_len, or holding an id outside the vocabulary.
MqarTask read_mqar_test(const std::string& prefix, int64_t limit = -1);

struct MqarScore {
  int64_t answers = 0;           // positions with a label (one per query)
  int64_t correct = 0;           // of them, argmax of the logits == label
  int64_t examples = 0;          // examples scored
  int64_t examples_correct = 0;  // examples with every answer right
  double answer_nll = 0;         // sum of -ln p(label) over the answers
  double acc() const { return answers ? double(correct) / double(answers) : 0.0; }
  double example_acc() const {
    return examples ? double(examples_correct) / double(examples) : 0.0;
  }
  // Binomial standard error sqrt(acc (1 - acc) / answers), answers taken as
  // independent (queries of one example are not quite).
  double acc_stderr() const;
};

// Runs the examples B at a time through the forward-only path
// (Model::label_log_probs with its argmax). Throws rat::Error when the
// model's vocab_size is below the task's vocab. progress(examples done).
MqarScore score_mqar(Model& model, const MqarTask& task, int64_t B,
                     const std::function<void(int64_t)>& progress = nullptr);

}  // namespace rat
