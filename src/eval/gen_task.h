// Generate-and-score tasks (issue 11, items 4 and 5): cases read from JSONL,
// prompts cut in the middle when too long, greedy generation in batches, and
// the scores (eval/metrics.h for `--task gen`, RULER's string_match_all for
// `--task niah`).
//
// A case is one line {"prompt": TEXT | "prompt_ids": [ids], "answers":
// [TEXT, ...], "max_new_tokens"?: n, "max_prompt_tokens"?: n, ...}; niah
// cases (rat tasks niah) also carry "length" and "depth". Every other field
// passes through to the predictions file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

class Model;
class Tokenizer;

struct GenCase {
  int64_t line = 0;  // 1-based line of the file, for messages
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  bool has_ids = false;  // given as "prompt_ids" (no tokenizer needed)
  std::vector<std::string> answers;
  int64_t max_new_tokens = -1;  // -1: the line has none
  int64_t length = 0;           // niah only: the target length in tokens
  double depth = 0;             // niah only
  nlohmann::json fields;        // the whole line
  // -1: the line has none (rat sft-data writes the authors' prompt budget here)
  int64_t max_prompt_tokens = -1;
};

// Reads the cases of `path` (blank lines skipped), at most `limit` of them
// when limit >= 0. Throws rat::Error naming FILE:LINE and what was expected
// for a line that is not such an object: exactly one of a string "prompt" or
// a non-empty list "prompt_ids" of ids in [0, 2^31); "answers" a non-empty
// list of strings; "max_new_tokens" an integer >= 0; for niah also an integer
// "length" and a number "depth". Names the file when it cannot be read or
// holds no case.
std::vector<GenCase> read_gen_cases(const std::string& path, int64_t limit, bool niah);

// The authors' middle truncation (CLAIRE-Labo/RAT eval/longbench/pred.py and
// tokenize/sft.py), in tokens: a prompt of more than `limit` tokens keeps its
// first floor(limit / 2) and its last ceil(limit / 2) tokens (the later half
// keeps the odd token). Their code cuts prompts of >= max_prefill tokens to
// max_prefill - 1 (one slot is left for their padding marker), which is this
// rule with limit = max_prefill - 1. limit must be >= 1.
std::vector<int32_t> truncate_middle(const std::vector<int32_t>& ids, int64_t limit);

// RULER's string_match_all for one prediction: the fraction of `answers`
// found in it as substrings, case-insensitively (ASCII lowercase, which is
// Python's str.lower on the digits and words RULER asks for). RULER reports
// the mean over cases times 100; rat reports the fraction.
double string_match_all(const std::string& prediction, const std::vector<std::string>& answers);

struct GenTaskOptions {
  int64_t batch_size = 4;
  int64_t max_new_tokens = -1;      // >= 0: every case's (overrides the line's)
  int64_t default_new_tokens = 32;  // for a line without max_new_tokens
  // Prompt limit in tokens: > 0 cuts longer prompts (truncate_middle); 0: the
  // line's max_prompt_tokens, else the context minus the case's new tokens
  // (gen's default); -1: never cut (niah's default, so that no needle is lost).
  int64_t max_prompt_tokens = 0;
  int64_t context = 0;           // the model's context T (data.seq_len or --seq-len)
  int32_t eos_id = -1;           // a case stops after this id (not part of its text)
  bool bf16_cache = false;       // see Decoder
  bool batch_invariant = false;  // see Decoder::set_batch_invariant
};

struct GenOutput {
  std::vector<int32_t> ids;      // generated (eos included when produced)
  std::string prediction;        // the text (or, without tokenizer, the ids joined by spaces)
  std::string finish;            // "length" or "eos"
  int64_t prompt_tokens = 0;     // after truncation
  int64_t prompt_tokens_in = 0;  // before
  int64_t new_tokens = 0;        // the case's budget
};

// Greedy generation of every case, batch_size cases at a time in file order
// (each batch decodes together; a case stops at its own budget or eos).
// Greedy choices depend only on the case, not on its batch mates. `tok` may be
// null when every case has prompt_ids. Throws rat::Error naming FILE:LINE for
// a text prompt without tokenizer, an id outside the vocabulary, a prompt that
// encodes to nothing, or no room for the prompt (limit < 1).
// on_done(n) reports the number of cases finished.
std::vector<GenOutput> run_gen_cases(Model& model, const Tokenizer* tok,
                                     const std::vector<GenCase>& cases, const GenTaskOptions& opt,
                                     const std::string& path,
                                     const std::function<void(int64_t)>& on_done = {});

// The predictions file: one JSON object per case, the line's fields with
// "prediction" (and "score", "prompt_tokens", "finish") set; rat metrics
// reads it. Written atomically.
void write_predictions(const std::string& out, const std::vector<GenCase>& cases,
                       const std::vector<GenOutput>& outputs, const std::vector<double>& scores);

}  // namespace rat
