// The authors' SFT datasets (CLAIRE-Labo/RAT tokenize/sft_util.py, sft.py and
// src/utils/gen.py): per task, the prompt template, the generation budget of
// its test split, and the fields a JSONL line of that dataset carries.
//
// A line is read in one of the forms its dataset is published in (the first
// form whose fields are all present wins), or in the common form
// {"context", "input", "answer" | "answers"} of their renamed columns:
//   narrativeqa_{summary,text,full}: deepmind/narrativeqa rows
//       {"document": {"summary": {"text"}, "text"}, "question": {"text"},
//        "answers": [{"text"}, ...]}, or their preprocessed columns
//       {"summary" | "text" | "full_text", "question", "answer"}
//       (_full: summary + "\n\n" + text, as they join them);
//   qmsum: pszemraj/qmsum-cleaned rows {"prompt", "input", "output"} (the
//       question, the transcript, the answer), or THUDM/LongBench rows
//       {"input", "context", "answers"} (the common form);
//   wikisum: d0rj/wikisum rows {"title", "article", "summary"}.
// An answer is a string, a list of strings, or a list of {"text": string}.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

struct SftTask {
  std::string name;
  std::string prompt_template;  // Python str.format_map fields {context}, {input}
  int64_t max_new_tokens;       // gen.py's max_new_tokens_dict
  // sft.py's prefill_max_len_dict: seq_len -> prompt budget P of the test split
  // (prompts of >= P tokens are cut to P - 1).
  std::vector<std::pair<int64_t, int64_t>> prefill;
  std::string fields;  // the forms above, for messages
};

// The authors' five tasks; nullptr for another name.
const SftTask* find_sft_task(const std::string& name);
std::string sft_task_names();  // "narrativeqa_summary, ..., wikisum"

// gen.py's budget for a task it does not list.
constexpr int64_t kSftDefaultNewTokens = 128;

struct SftRecord {
  std::string context, input;
  std::vector<std::string> answers;  // at least one
};

// Reads one line of `task` (a known name, or any other name: the common form
// only). Throws rat::Error "WHERE: missing field "F" (TASK reads ...)" naming
// the first missing field of the form the line comes closest to, or the field
// of the wrong type.
SftRecord read_sft_record(const std::string& task, const nlohmann::json& line,
                          const std::string& where);

// Python's str.format_map(example) for the fields {context} and {input}:
// "{{" and "}}" are literal braces; any other field or a lone brace throws
// rat::Error naming the template.
std::string format_sft_prompt(const std::string& tmpl, const SftRecord& r);
// Throws unless `tmpl` is such a template (checked before any line is read).
void check_sft_template(const std::string& tmpl);

}  // namespace rat
