#include "data/sft.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "data/tokenizer.h"
#include "data/tokens.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

nlohmann::json SftReport::to_json() const {
  return {{"inputs", inputs_path},
          {"labels", labels_path},
          {"tokenizer", tokenizer_path},
          {"examples", examples},
          {"skipped_blank_lines", skipped_blank_lines},
          {"tokens", tokens},
          {"answer_labels", answer_labels},
          {"vocab_size", vocab_size},
          {"eos_id", eos_id},
          {"num_bytes", num_bytes},
          {"prompt_template", prompt_template}};
}

int sft_num_bytes(int64_t vocab_size) { return vocab_size <= 0xFFFF - 99 ? 2 : 4; }

int checked_sft_num_bytes(int requested, int64_t vocab_size, const std::string& tokenizer) {
  const int n = requested == 0 ? sft_num_bytes(vocab_size) : requested;
  if (n != 2 && n != 4)
    throw Error("--num-bytes " + std::to_string(requested) + ": expected 2 (uint16) or 4 (uint32)");
  if (n == 2 && vocab_size > 0xFFFF - 99)
    throw Error("tokenizer " + tokenizer + " (" + std::to_string(vocab_size) +
                " ids) does not fit --num-bytes 2 beside the -100 label pattern 0xFF9C; use 4");
  return n;
}

void write_sft_ids(const std::string& path, const std::vector<int32_t>& ids, int num_bytes) {
  AtomicFile f(path);
  if (num_bytes == 2) {
    std::vector<uint16_t> w(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) w[i] = uint16_t(ids[i]);  // -100 -> 0xFF9C
    f.write(w.data(), w.size() * 2);
  } else {
    std::vector<uint32_t> w(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) w[i] = uint32_t(ids[i]);  // -100 -> 0xFFFFFF9C
    f.write(w.data(), w.size() * 4);
  }
  f.commit();
}

namespace {

std::string slurp_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

std::string sft_tokenizer_path(const std::string& tokenizer, const std::string& dir,
                               const std::string& what, bool* copy) {
  // `rat train` copies DIR/tokenizer.model of the data into every checkpoint,
  // so the fine-tuned model directory carries its tokenizer.
  const std::string path =
      (dir.empty() ? fs::path("tokenizer.model") : fs::path(dir) / "tokenizer.model").string();
  *copy = !fs::exists(path);
  if (!*copy && !fs::equivalent(path, tokenizer) && slurp_file(path) != slurp_file(tokenizer))
    throw Error(what + ": " + path + " is a different tokenizer than " + tokenizer +
                "; write the SFT files to another directory");
  return path;
}

void copy_sft_tokenizer(const std::string& tokenizer, const std::string& path) {
  write_file_atomic(path, slurp_file(tokenizer));
}

SftReport build_sft_data(const SftOptions& opt) {
  const size_t at = opt.prompt_template.find("{prompt}");
  if (at == std::string::npos || opt.prompt_template.find("{prompt}", at + 1) != std::string::npos)
    throw Error("--template '" + opt.prompt_template +
                "': expected exactly one {prompt} where the prompt goes");
  const Tokenizer tok = Tokenizer::load(opt.tokenizer);
  if (tok.eos_id() < 0)
    throw Error("tokenizer " + opt.tokenizer +
                " defines no end-of-sequence piece, which ends answers");
  SftReport r;
  r.vocab_size = tok.vocab_size();
  r.eos_id = tok.eos_id();
  r.prompt_template = opt.prompt_template;
  r.num_bytes = checked_sft_num_bytes(opt.num_bytes, r.vocab_size, opt.tokenizer);

  std::ifstream in(opt.jsonl, std::ios::binary);
  if (!in) throw Error(opt.jsonl + ": cannot read the JSONL file");
  std::error_code ec;
  const auto file_bytes = int64_t(fs::file_size(opt.jsonl, ec));
  std::vector<int32_t> ids, labels;  // labels[i] is the target of position i (not yet shifted)
  std::string line;
  int64_t lineno = 0, read_bytes = 0;
  while (std::getline(in, line)) {
    ++lineno;
    read_bytes += int64_t(line.size()) + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      ++r.skipped_blank_lines;
      continue;
    }
    const std::string where = opt.jsonl + ":" + std::to_string(lineno) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(where + "not valid JSON (" + std::string(e.what()) +
                  "); expected {\"prompt\": \"...\", \"answer\": \"...\"}");
    }
    if (!j.is_object())
      throw Error(where + "expected a JSON object {\"prompt\": ..., \"answer\": ...}");
    for (const char* key : {"prompt", "answer"})
      if (!j.contains(key) || !j[key].is_string())
        throw Error(where + "\"" + key + "\" " +
                    (j.contains(key) ? "is not a string" : "is missing"));
    const std::string prompt = j["prompt"].get<std::string>();
    const std::string answer = j["answer"].get<std::string>();
    if (answer.empty()) throw Error(where + "\"answer\" is empty; there would be nothing to learn");
    std::string text = opt.prompt_template;
    text.replace(at, 8, prompt);
    // Prompt and answer are encoded separately so the answer's ids are exactly
    // what generation after this prompt has to produce.
    for (int32_t id : tok.encode(text)) ids.push_back(id), labels.push_back(-100);
    for (int32_t id : tok.encode(answer)) ids.push_back(id), labels.push_back(id);
    ids.push_back(r.eos_id), labels.push_back(r.eos_id);
    ++r.examples;
    if (opt.progress) opt.progress(read_bytes, file_bytes);
  }
  if (r.examples == 0) throw Error(opt.jsonl + ": no examples (expected one JSON object per line)");
  // Align labels with the loader: position i predicts the id at i + 1.
  std::vector<int32_t> shifted(ids.size(), -100);
  for (size_t i = 0; i + 1 < ids.size(); ++i) shifted[i] = labels[i + 1];
  for (int32_t y : shifted) r.answer_labels += y != -100;
  r.tokens = int64_t(ids.size());

  const fs::path parent = fs::path(opt.out_prefix).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec || !fs::is_directory(parent))
      throw Error("--out " + opt.out_prefix + ": cannot create directory " + parent.string());
  }
  r.inputs_path = opt.out_prefix + ".inputs.bin";
  r.labels_path = opt.out_prefix + ".labels.bin";
  r.report_path = opt.out_prefix + ".json";
  bool copy = false;
  r.tokenizer_path =
      sft_tokenizer_path(opt.tokenizer, parent.string(), "--out " + opt.out_prefix, &copy);
  if (copy) copy_sft_tokenizer(opt.tokenizer, r.tokenizer_path);
  write_sft_ids(r.inputs_path, ids, r.num_bytes);
  write_sft_ids(r.labels_path, shifted, r.num_bytes);
  // replace: a --template of invalid UTF-8 would make dump throw (found by fuzz/sft.cc).
  write_file_atomic(
      r.report_path,
      r.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  return r;
}

void sft_sample(const TokenFile& inputs, const TokenFile& labels, int64_t r, int64_t T, int32_t* x,
                int32_t* y) {
  const uint32_t neg = inputs.num_bytes() == 2 ? 0xffffu : 0xffffffffu;
  for (int64_t t = 0; t < T; ++t) {
    x[t] = int32_t(inputs.token(r * T + t));
    const uint32_t l = labels.token(r * T + t);
    y[t] = l == neg - 99 ? -100 : int32_t(l);
  }
}

}  // namespace rat
