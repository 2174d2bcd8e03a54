// SFT data (SPEC.md "Data"): a JSONL file of {"prompt": ..., "answer": ...}
// becomes the pair of token files the sft_ordered / sft_random loaders read.
// Each example is template(prompt) followed by the answer and the eos id;
// examples are concatenated, as documents are in LM token files. The files
// are aligned the way the loader reads them (no shift at load time):
//   inputs[i] = the i-th id of the stream,
//   labels[i] = inputs[i+1] when that id belongs to an answer (its eos
//               included), else -100 (stored as the two's-complement pattern
//               of the id width: 0xFF9C for uint16, 0xFFFFFF9C for uint32).
// So the model is trained to predict answers (and where they end) only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rat {

class TokenFile;

struct SftOptions {
  std::string jsonl;       // input: one {"prompt", "answer"} object per line
  std::string tokenizer;   // sentencepiece .model; must define eos
  std::string out_prefix;  // writes PREFIX.inputs.bin, PREFIX.labels.bin, PREFIX.json, and
                           // DIR/tokenizer.model (a copy) unless it is there already
  // "{prompt}" is replaced by the example's prompt (exactly one occurrence).
  std::string prompt_template = "### Question:\n{prompt}\n### Answer:\n";
  int num_bytes = 0;  // 2 | 4; 0: 2 when every id and the -100 pattern fit in uint16
  std::function<void(int64_t, int64_t)> progress;  // (bytes read, file bytes)
};

struct SftReport {
  std::string inputs_path, labels_path, report_path, tokenizer_path;
  int64_t examples = 0, skipped_blank_lines = 0;
  int64_t tokens = 0;         // length of both files
  int64_t answer_labels = 0;  // labels != -100 (answer ids + one eos per example)
  int64_t vocab_size = 0;
  int32_t eos_id = -1;
  int num_bytes = 2;
  std::string prompt_template;
  nlohmann::json to_json() const;
};

// Smallest id width that holds every id below vocab_size and keeps the -100
// pattern distinct from them: 2 when vocab_size <= 65436 (= 0xFFFF - 99), else 4.
int sft_num_bytes(int64_t vocab_size);
// The id width to write: `requested` (--num-bytes; 0 picks sft_num_bytes),
// checked against the tokenizer's vocabulary and the -100 pattern.
int checked_sft_num_bytes(int requested, int64_t vocab_size, const std::string& tokenizer);

// Writes ids (-100 as the id width's pattern) as a token file, atomically.
void write_sft_ids(const std::string& path, const std::vector<int32_t>& ids, int num_bytes);

// Throws rat::Error naming "FILE:LINE" for a line that is not a JSON object
// with string "prompt" and non-empty string "answer" (blank lines are
// skipped), and naming the template when it lacks "{prompt}". Nothing is
// written unless every line is good; files are written atomically. Throws when
// DIR already holds a different tokenizer.model.
SftReport build_sft_data(const SftOptions& opt);

// DIR/tokenizer.model, which `rat train` copies into every checkpoint: throws
// naming `what` when DIR already holds a different tokenizer; *copy says
// whether copy_sft_tokenizer still has to write it.
std::string sft_tokenizer_path(const std::string& tokenizer, const std::string& dir,
                               const std::string& what, bool* copy);
void copy_sft_tokenizer(const std::string& tokenizer, const std::string& path);

// Sample r of length T of an SFT pair (sft_ordered / sft_random): inputs and
// labels [rT, rT+T) as stored (a label already names the token to predict at
// its position; -100 is stored as the file's unsigned pattern of -100).
// The caller checks r < inputs.num_tokens() / T.
void sft_sample(const TokenFile& inputs, const TokenFile& labels, int64_t r, int64_t T, int32_t* x,
                int32_t* y);

}  // namespace rat
