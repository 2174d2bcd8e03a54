// Text metrics of generate-and-score tasks (issue 11), each a score in [0, 1]
// of one prediction against one reference answer:
//  - qa_f1: LongBench's qa_f1_score: both texts normalised (normalize_qa),
//    split on whitespace, F1 of the token multisets (0 when nothing is shared,
//    so also 0 when both are empty, as LongBench returns).
//  - rouge_l: Google rouge-score's rougeL F-measure without stemming: tokens
//    are the [a-z0-9] runs of the lowercased text, F of the LCS length (0 when
//    either side has no token).
//  - exact_match: 1 when normalize_qa(prediction) == normalize_qa(answer).
//  - edit_sim: 1 - Levenshtein(prediction, answer) / max(lengths), over
//    Unicode code points; 1 when both are empty.
// A file of predictions scores as the mean over lines of the best score over
// that line's answers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rat {

enum class Metric { kQaF1, kRougeL, kExactMatch, kEditSim };

// "qa_f1" | "rouge_l" | "exact_match" | "edit_sim"; throws rat::Error naming
// `what` (the flag) and the accepted names otherwise.
Metric parse_metric(const std::string& name, const std::string& what = "--metric");
const char* metric_name(Metric m);

// LongBench's normalize_answer: lowercase (Python str.lower, see metrics.cc
// for the Unicode details), drop ASCII punctuation (Python's
// string.punctuation), replace the words a/an/the by a space, then collapse
// whitespace runs (Python's str.split whitespace set) into single spaces.
// Input and output are UTF-8.
std::string normalize_qa(std::string_view text);
// rouge-score's tokenizer without stemmer: lowercase, every character outside
// [a-z0-9] separates, empty tokens dropped.
std::vector<std::string> rouge_tokens(std::string_view text);

double qa_f1(std::string_view prediction, std::string_view answer);
double rouge_l(std::string_view prediction, std::string_view answer);
double exact_match(std::string_view prediction, std::string_view answer);
double edit_sim(std::string_view prediction, std::string_view answer);
double score(Metric m, std::string_view prediction, std::string_view answer);
// max over answers of score(m, prediction, answer); answers must be non-empty.
double best_score(Metric m, std::string_view prediction, const std::vector<std::string>& answers);

struct MetricReport {
  Metric metric = Metric::kQaF1;
  double mean = 0;
  std::vector<double> scores;  // one per non-blank line, in file order
  int64_t n() const { return int64_t(scores.size()); }
};

// Scores a JSONL file of {"prediction": TEXT, "answers": [TEXT, ...]} lines
// (blank lines skipped). Throws rat::Error naming FILE:LINE and what was
// expected for a line that is not such an object (answers must be a non-empty
// list of strings), and naming the file when it cannot be read or holds no line.
MetricReport score_predictions(const std::string& path, Metric m);

}  // namespace rat
