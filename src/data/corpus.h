// Turning text documents (data/documents.h: files, directories, stdin, one
// big file split into documents, JSON lines) into the token files of SPEC.md
// ("Data"): train.bin / val.bin (flat little-endian uint16 or uint32, every
// document followed by the end-of-document id, which is what
// data.ignore_input_index must be), the tokenizer, and tokenize.json.
// The CLI (`rat tokenize`) is a flag layer over tokenize_corpus().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/documents.h"
#include "data/tokenizer.h"
#include "nlohmann/json.hpp"

namespace rat {

struct TokenizeOptions {
  std::vector<std::string> inputs;  // files, directories walked recursively, "-" (stdin)
  DocFormat format = DocFormat::kAuto;
  std::string text_key = "text";  // JSON lines
  DocSplit split = DocSplit::kAuto;
  std::string separator;  // splits text files into documents when non-empty
  std::string out_dir;
  std::string tokenizer;  // a sentencepiece .model; empty: train one
  int vocab_size = 4096;  // when training
  double val_fraction = 0.05;
  int num_bytes = 2;  // 2: uint16 ids, 4: uint32
  std::string glob;   // file-name pattern for files found in directories; empty: all
  TokenizerTrainOptions train;
  // Called with (documents encoded, total documents).
  std::function<void(int64_t, int64_t)> progress;
  // One-line notes on what is happening ("training tokenizer ...").
  std::function<void(const std::string&)> log;
};

struct TokenizeReport {
  std::string out_dir, tokenizer_path, train_path, val_path, report_path;
  bool trained_tokenizer = false;
  int64_t vocab_size = 0;
  int32_t eos_id = -1, bos_id = -1;  // eos_id is data.ignore_input_index
  int num_bytes = 2;
  double val_fraction = 0;
  std::string model_type;  // of a trained tokenizer
  int64_t train_documents = 0, val_documents = 0;
  int64_t train_tokens = 0, val_tokens = 0;          // eos ids included
  int64_t train_text_bytes = 0, val_text_bytes = 0;  // document bytes read
  // exp of the mean negative log-probability of every val token (eos
  // included) under the unigram distribution of train with add-one
  // smoothing: p(t) = (count_train(t) + 1) / (train_tokens + vocab_size).
  double val_unigram_ppl = 0;
  double tokenizer_seconds = 0, encode_seconds = 0;

  nlohmann::json to_json() const;
};

// Whether document `index` (in list_documents order) is held out. Evenly
// spaced whole documents: index i is val when ceil((i+1)f) > ceil(i f), so
// ceil(n f) of n documents are, the first one among them (so at least one
// whenever f > 0). tokenize_corpus() refuses a split that leaves no training
// document, saying how to get more documents.
bool is_val_document(int64_t index, double val_fraction);

// Throws rat::Error unless ids [0, vocab_size) fit in num_bytes (2 or 4).
void check_vocab_fits(int64_t vocab_size, int num_bytes, const std::string& tokenizer_name);

// Unigram perplexity of the `val` counts under the add-one-smoothed `train`
// counts (both indexed by id, same size = the vocabulary).
double unigram_perplexity(const std::vector<int64_t>& train_counts,
                          const std::vector<int64_t>& val_counts);

TokenizeReport tokenize_corpus(const TokenizeOptions& opt);

}  // namespace rat
