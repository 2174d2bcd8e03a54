// The authors' SFT layout (CLAIRE-Labo/RAT tokenize/sft.py): one row of
// seq_len ids per example, padded, with the prompt cut in the middle when the
// example does not fit, written where their data config (configs/data/sft/
// llama.yaml) reads it:
//   OUT/TASK/llama-{train,validation,test}-SEQ_LEN-{inputs,labels}.bin
//   OUT/TASK/test.jsonl        the test split as `rat eval --task gen` cases
//   OUT/TASK/tokenizer.model   (rat train copies it into every checkpoint)
//   OUT/TASK/sft-data.json     the report
//
// A row (sft_padded_row), with ids = prompt + answer and labels =
// [-100] x (|prompt| - 1) + answer (label i is the id after position i):
//   if |ids| >= M: keep the first h = (M-1)/2 and the last s = M-1-h ids, and
//   the first h and the last s-1 labels (so the row has room for its end);
//   inputs = ids + [eos] x (seq_len - |ids|),
//   labels = labels + [eos] + [-100] x (seq_len - |ids|).
// M is seq_len for train/validation; for the test split the answer is left
// out and M is the prompt budget P (their prefill_max_len_dict), so a test
// row holds the prompt only, as their generation reads it. The padding id is
// the tokenizer's eos (LLaMA's 2 = their data.ignore_input_index), the ignore
// label -100 (stored as the id width's two's-complement pattern, as int16
// stores it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

// Fills inputs[0, row_len) and labels[0, row_len) as above. `answer` is null
// for a test row. Throws rat::Error when prompt is empty, max_length < 4 (their
// slicing needs s >= 2) or max_length > row_len. Returns whether it was cut.
bool sft_padded_row(const std::vector<int32_t>& prompt, const std::vector<int32_t>* answer,
                    int64_t max_length, int64_t row_len, int32_t eos, int32_t* inputs,
                    int32_t* labels);

struct SftPaddedOptions {
  std::string task;                     // find_sft_task's names, or another with prompt_template
  std::string train, validation, test;  // JSONL files of the dataset's splits (each optional)
  std::string tokenizer;                // sentencepiece .model; must define eos
  std::string out_dir;                  // the files go to OUT_DIR/TASK/
  std::string prefix = "llama";         // the file names' first word (their configs say llama)
  std::string prompt_template;          // "": the task's
  int64_t seq_len = 0;
  int64_t max_new_tokens = -1;  // -1: the task's (gen.py), 128 for another task
  int64_t prefill_tokens = 0;   // P; 0: their table at 4096/16384, else seq_len - max_new_tokens
  int num_bytes = 0;            // 2 | 4; 0: as sft_num_bytes
};

struct SftSplitReport {
  std::string split, inputs_path, labels_path;
  int64_t lines = 0, rows = 0, truncated = 0;
  int64_t answer_labels = 0;  // labels != -100 (answer ids and the eos)
};

struct SftPaddedReport {
  std::string task, dir, prompt_template, tokenizer_path, test_jsonl, report_path;
  int64_t seq_len = 0, prefill_tokens = 0, max_new_tokens = 0, vocab_size = 0;
  int32_t pad_id = -1;
  int num_bytes = 2;
  std::vector<SftSplitReport> splits;
  nlohmann::json to_json() const;
};

// Reads every given split, then writes the files. Throws rat::Error naming
// FILE:LINE and the missing or malformed field for a bad line (read_sft_record),
// or the option at fault; nothing is written unless every line is good.
SftPaddedReport build_sft_padded(const SftPaddedOptions& opt);

}  // namespace rat
