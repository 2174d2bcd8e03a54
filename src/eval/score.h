// Log-likelihood requests with lm-evaluation-harness `loglikelihood`
// semantics (issue 11, item 1): for a (context, continuation) pair of token
// lists, the sum over the continuation of log p(token | everything before it)
// and whether every continuation token is the argmax of its prediction.
//
//  - Text pairs are encoded as lm-eval's _encode_pair: trailing whitespace of
//    the context moves to the front of the continuation; whole =
//    encode(context + continuation), context = encode(context), continuation
//    = whole[len(context):]. An empty context (also one that is empty once its
//    whitespace moved) becomes [eod], the end-of-document id, as lm-eval puts
//    the model's end-of-text token there; the continuation is then encoded
//    alone.
//  - A request longer than the context T is cut from the left as lm-eval's
//    _loglikelihood_tokens does: whole = (context + continuation)[-(T+1):],
//    the model reads whole[:-1]. So at most T tokens enter the model and the
//    continuation may hold at most T tokens.
//  - Requests whose cut contexts are equal share one prefill of that context
//    (Model::prefill leaves each layer's state in a DecodeState slot); each
//    continuation then decodes from a copy of that slot (DecodeState::
//    copy_slot), up to `batch` continuations stepping together
//    (Model::step, forward only: nothing of training is kept).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

class Model;

using EncodeFn = std::function<std::vector<int32_t>(std::string_view)>;

struct ScoreRequest {
  std::vector<int32_t> context, continuation;
};

struct ScoreResult {
  double loglikelihood = 0;
  bool is_greedy = false;
  int64_t tokens = 0;  // continuation tokens
};

// Python's str.isspace over UTF-8: the ASCII whitespace and separators
// (\t \n \v \f \r \x1c-\x1f space) and the Unicode spaces (U+0085, U+00A0,
// U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). Returns the
// byte length of `s` without its trailing run of them (str.rstrip()).
size_t rstrip_length(std::string_view s);

// lm-eval's pair encoding (see the top of this file). eod < 0 means the model
// has no end-of-document id: an empty context is then an error (rat::Error).
ScoreRequest encode_pair(const EncodeFn& encode, std::string_view context,
                         std::string_view continuation, int32_t eod);

// The context a request is scored after when the model reads at most T tokens:
// its last T + 1 - len(continuation) tokens (all of them when that is more).
// Requires 1 <= len(continuation) <= T and a non-empty context.
std::vector<int32_t> cut_context(const ScoreRequest& r, int64_t T);

// Everything a request line can hold, given what the model offers.
struct ScoreVocab {
  int64_t vocab_size = 0;
  int32_t eod = -1;          // the empty context's stand-in (-1: none)
  EncodeFn encode;           // null: the model has no tokenizer
  std::string no_tokenizer;  // why not, for the error of a text line
};

// What a model directory offers: vocab_size of its config, eod =
// data.ignore_input_index (else the tokenizer's eos id), and DIR/tokenizer.model
// when there (encode null otherwise, with no_tokenizer saying so).
ScoreVocab load_score_vocab(const std::string& model_dir, int64_t vocab_size,
                            int64_t ignore_input_index);

// Calls fn(object, "FILE:LINE: ") for each non-blank line of the JSONL file
// `path` (`what` names it in the open error) while fn returns true; a line that
// is not a JSON object is an error naming FILE:LINE and `expected`.
void for_each_jsonl_object(
    const std::string& path, const std::string& what, const std::string& expected,
    const std::function<bool(const nlohmann::json&, const std::string&)>& fn);

// Reads `path`, lines {"context": TEXT, "continuation": TEXT} or
// {"context_ids": [..], "continuation_ids": [..]} (blank lines skipped), and
// checks every request against the vocabulary and the context T (a
// continuation longer than T cannot be scored). Throws rat::Error naming
// FILE:LINE and what was expected for the first bad line, naming the file
// when it cannot be read or holds no request.
std::vector<ScoreRequest> read_score_requests(const std::string& path, const ScoreVocab& vocab,
                                              int64_t T);
// The same checks on one request, with `where` ("FILE:LINE: ") leading the
// error (tasks building requests from their own lines use it).
void check_request(const ScoreRequest& r, const ScoreVocab& vocab, int64_t T,
                   const std::string& where);
// A JSON array of token ids, each in [0, vocab_size); `key` names it in errors.
std::vector<int32_t> parse_ids(const nlohmann::json& value, const std::string& key,
                               int64_t vocab_size, const std::string& where);

// Indices of the requests grouped by equal cut context, groups in order of
// their first request, each group's requests in input order.
std::vector<std::vector<int64_t>> group_by_context(const std::vector<ScoreRequest>& reqs,
                                                   int64_t T);

struct ScoreStats {
  int64_t requests = 0, groups = 0;  // groups = prefills
  int64_t context_tokens = 0;        // tokens prefilled
  int64_t continuation_tokens = 0;
  int64_t steps = 0;  // Model::step calls (each up to `batch` rows)
  int64_t batch = 0;  // rows per step at most: --batch-size, or fewer requests
  double seconds = 0;
};

// Scores every request (checked already) with the model reading at most T
// tokens, `batch` continuations decoding together. Results in input order.
std::vector<ScoreResult> score_requests(Model& model, const std::vector<ScoreRequest>& reqs,
                                        int64_t T, int64_t batch, ScoreStats* stats = nullptr);

// One output line: {"loglikelihood": .., "is_greedy": .., "tokens": ..}.
std::string score_result_json(const ScoreResult& r);

}  // namespace rat
