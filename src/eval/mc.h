// Multiple-choice tasks scored by log-likelihood (issue 11, item 2), as
// lm-evaluation-harness's `multiple_choice` output type: each choice is one
// loglikelihood request (eval/score.h); the prediction is the choice of
// largest log-likelihood (acc) and of largest log-likelihood per unit of
// length (acc_norm). Lines of the task file (JSONL, blank lines skipped):
//
//   {"context": TEXT, "choices": [TEXT, ...], "gold": i, "target_delimiter"?: TEXT}
//       choice c is scored as the continuation target_delimiter + c (lm-eval's
//       target_delimiter, default ""); its length is the UTF-8 byte length of
//       c alone (lm-eval divides by len(choice), which leaves the delimiter out)
//   {"context_ids": [ids], "choices_ids": [[ids], ...], "gold": i}
//       lengths are token counts
//   {"contexts": [TEXT, ...], "continuation": TEXT, "gold": i}
//   {"contexts_ids": [[ids], ...], "continuation_ids": [ids], "gold": i}
//       lm-eval's partial evaluation (WinoGrande): one context per choice,
//       the same continuation scored after each; gold indexes the contexts
//
// The choices of one line share their context's prefill (score_requests
// groups equal contexts).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/score.h"

namespace rat {

struct McItem {
  int64_t first = 0;            // its requests are [first, first + lengths.size())
  std::vector<double> lengths;  // acc_norm's divisor per choice
  int64_t gold = 0;
};

struct McTask {
  std::vector<ScoreRequest> requests;
  std::vector<McItem> items;
};

// Reads the first `limit` lines (all when limit < 0) of a task file. Throws
// rat::Error naming FILE:LINE and what was expected for a bad line (also a
// request check_request rejects), and naming the file when it cannot be read
// or holds no line.
McTask read_mc_task(const std::string& path, const ScoreVocab& vocab, int64_t T,
                    int64_t limit = -1);

struct McReport {
  double acc = 0, acc_stderr = 0, acc_norm = 0, acc_norm_stderr = 0;
  int64_t n = 0;
  std::vector<int64_t> pred, pred_norm;  // the chosen index per item
};

// lm-eval's standard error of a mean: the sample standard deviation (n - 1
// in the denominator) over sqrt(n); NaN for fewer than two values.
double mean_stderr(const std::vector<double>& x);

// Accuracy of the argmax (the first maximal index, as numpy) of the
// log-likelihoods and of log-likelihood / length, against gold.
McReport mc_report(const McTask& task, const std::vector<ScoreResult>& results);

}  // namespace rat
