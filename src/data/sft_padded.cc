#include "data/sft_padded.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include "data/sft.h"
#include "data/sft_tasks.h"
#include "data/tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat {

namespace fs = std::filesystem;

bool sft_padded_row(const std::vector<int32_t>& prompt, const std::vector<int32_t>* answer,
                    int64_t max_length, int64_t row_len, int32_t eos, int32_t* inputs,
                    int32_t* labels) {
  if (prompt.empty()) throw Error("sft row: the prompt encodes to no tokens");
  if (max_length < 4 || max_length > row_len)
    throw Error("sft row: budget " + std::to_string(max_length) + " outside [4, " +
                std::to_string(row_len) + "]");
  const int64_t np = int64_t(prompt.size()), na = answer ? int64_t(answer->size()) : 0;
  const int64_t n = np + na;  // |ids|; |labels| = n - 1
  // id(i) and label(i) of the uncut example.
  auto id = [&](int64_t i) { return i < np ? prompt[size_t(i)] : (*answer)[size_t(i - np)]; };
  auto label = [&](int64_t i) { return i + 1 < np ? -100 : (*answer)[size_t(i + 1 - np)]; };
  const bool cut = n >= max_length;
  int64_t len = n;  // ids kept
  if (!cut) {
    for (int64_t i = 0; i < n; ++i) inputs[i] = id(i);
    for (int64_t i = 0; i + 1 < n; ++i) labels[i] = label(i);
  } else {
    const int64_t h = (max_length - 1) / 2, s = max_length - 1 - h;
    for (int64_t i = 0; i < h; ++i) inputs[i] = id(i), labels[i] = label(i);
    for (int64_t i = 0; i < s; ++i) inputs[h + i] = id(n - s + i);
    // The last s - 1 labels: those of the kept tail but its last id, whose
    // label is the eos below.
    for (int64_t i = 0; i < s - 1; ++i) labels[h + i] = label(n - 1 - (s - 1) + i);
    len = max_length - 1;
  }
  labels[len - 1] = eos;
  for (int64_t i = len; i < row_len; ++i) inputs[i] = eos, labels[i] = -100;
  return cut;
}

nlohmann::json SftPaddedReport::to_json() const {
  nlohmann::json s = nlohmann::json::array();
  for (const SftSplitReport& x : splits)
    s.push_back({{"split", x.split},
                 {"inputs", x.inputs_path},
                 {"labels", x.labels_path},
                 {"lines", x.lines},
                 {"rows", x.rows},
                 {"truncated", x.truncated},
                 {"answer_labels", x.answer_labels}});
  return {{"task", task},
          {"dir", dir},
          {"prompt_template", prompt_template},
          {"seq_len", seq_len},
          {"prefill_tokens", prefill_tokens},
          {"max_new_tokens", max_new_tokens},
          {"vocab_size", vocab_size},
          {"pad_id", pad_id},
          {"ignore_label", -100},
          {"num_bytes", num_bytes},
          {"tokenizer", tokenizer_path},
          {"test_jsonl", test_jsonl},
          {"splits", s}};
}

namespace {

struct Line {
  int64_t lineno = 0;
  SftRecord rec;
};

std::vector<Line> read_split(const std::string& path, const std::string& task) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the JSONL file");
  std::vector<Line> out;
  std::string text;
  for (int64_t n = 1; std::getline(in, text); ++n) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
      throw Error(where + "not valid JSON; expected one example object per line");
    }
    out.push_back({n, read_sft_record(task, j, where)});
  }
  if (out.empty()) throw Error(path + ": no examples (expected one JSON object per line)");
  return out;
}

struct Rows {
  std::vector<int32_t> inputs, labels;
};

}  // namespace

SftPaddedReport build_sft_padded(const SftPaddedOptions& opt) {
  SftPaddedReport r;
  const SftTask* task = find_sft_task(opt.task);
  if (opt.task.empty() || opt.task.find_first_of("/\\") != std::string::npos || opt.task == "." ||
      opt.task == "..")
    throw Error("--task '" + opt.task + "': expected a dataset name (" + sft_task_names() +
                ", or another with --template)");
  if (!task && opt.prompt_template.empty())
    throw Error("--task " + opt.task + ": not one of the authors' datasets (" + sft_task_names() +
                "); give --template for another");
  if (opt.train.empty() && opt.validation.empty() && opt.test.empty())
    throw Error("give at least one of --train, --validation, --test");
  if (opt.prefix.empty() || opt.prefix.find_first_of("/\\") != std::string::npos)
    throw Error("--prefix '" + opt.prefix + "': expected a file-name word such as llama");
  r.task = opt.task;
  r.prompt_template = opt.prompt_template.empty() ? task->prompt_template : opt.prompt_template;
  check_sft_template(r.prompt_template);
  r.seq_len = opt.seq_len;
  if (r.seq_len < 4)
    throw Error("--seq-len " + std::to_string(r.seq_len) +
                ": expected >= 4 (the middle cut keeps (L-1)/2 ids and L-1-(L-1)/2 >= 2)");
  r.max_new_tokens = opt.max_new_tokens >= 0 ? opt.max_new_tokens
                     : task                  ? task->max_new_tokens
                                             : kSftDefaultNewTokens;
  r.prefill_tokens = opt.prefill_tokens;
  if (r.prefill_tokens == 0 && task)
    for (const auto& [len, p] : task->prefill)
      if (len == r.seq_len) r.prefill_tokens = p;
  // Elsewhere their table has no entry; P - 1 prompt ids and the max_new_tokens + 1
  // ids their generation emits then fill seq_len exactly.
  if (r.prefill_tokens == 0) r.prefill_tokens = r.seq_len - r.max_new_tokens;
  if (!opt.test.empty() && (r.prefill_tokens < 4 || r.prefill_tokens > r.seq_len))
    throw Error("test prompt budget " + std::to_string(r.prefill_tokens) +
                (opt.prefill_tokens
                     ? " (--prefill-tokens)"
                     : " (--seq-len " + std::to_string(r.seq_len) + " minus --max-new-tokens " +
                           std::to_string(r.max_new_tokens) + ")") +
                ": expected in [4, " + std::to_string(r.seq_len) +
                "]; give --max-new-tokens or --prefill-tokens");

  const Tokenizer tok = Tokenizer::load(opt.tokenizer);
  if (tok.eos_id() < 0)
    throw Error("tokenizer " + opt.tokenizer +
                " defines no end-of-sequence piece, which ends answers and pads rows");
  r.pad_id = tok.eos_id();
  r.vocab_size = tok.vocab_size();
  r.num_bytes = checked_sft_num_bytes(opt.num_bytes, r.vocab_size, opt.tokenizer);

  const fs::path dir = fs::path(opt.out_dir) / opt.task;
  r.dir = dir.string();
  bool copy_tokenizer = false;
  r.tokenizer_path =
      sft_tokenizer_path(opt.tokenizer, r.dir, "--out " + opt.out_dir, &copy_tokenizer);
  auto file = [&](const std::string& split, const char* what) {
    return (dir /
            (opt.prefix + "-" + split + "-" + std::to_string(r.seq_len) + "-" + what + ".bin"))
        .string();
  };

  // Everything is read, encoded and laid out before anything is written.
  const int64_t T = r.seq_len;
  std::vector<Rows> rows;
  std::string test_text;
  const std::pair<std::string, std::string> splits[] = {
      {"train", opt.train}, {"validation", opt.validation}, {"test", opt.test}};
  for (const auto& [split, path] : splits) {
    if (path.empty()) continue;
    const bool test = split == "test";
    const std::vector<Line> lines = read_split(path, opt.task);
    SftSplitReport s;
    s.split = split;
    s.lines = int64_t(lines.size());
    s.inputs_path = file(split, "inputs");
    s.labels_path = file(split, "labels");
    std::vector<std::vector<int32_t>> prompts;
    size_t most_answers = 0;
    for (const Line& l : lines) {
      const std::string text = format_sft_prompt(r.prompt_template, l.rec);
      prompts.push_back(tok.encode(text));
      if (prompts.back().empty())
        throw Error(path + ":" + std::to_string(l.lineno) + ": the prompt encodes to no tokens");
      most_answers = std::max(most_answers, l.rec.answers.size());
      if (test) {
        nlohmann::json c = {{"prompt", text},
                            {"answers", l.rec.answers},
                            // Their loop emits the first token and then max_new_tokens more.
                            {"max_new_tokens", r.max_new_tokens + 1},
                            {"max_prompt_tokens", r.prefill_tokens - 1},
                            {"task", opt.task}};
        test_text += c.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      }
    }
    Rows out;
    auto add_row = [&](const std::vector<int32_t>& prompt, const std::vector<int32_t>* answer,
                       int64_t max_length) {
      out.inputs.resize(out.inputs.size() + size_t(T));
      out.labels.resize(out.labels.size() + size_t(T));
      int32_t* x = out.inputs.data() + s.rows * T;
      int32_t* y = out.labels.data() + s.rows * T;
      s.truncated += sft_padded_row(prompt, answer, max_length, T, r.pad_id, x, y);
      ++s.rows;
      for (int64_t t = 0; t < T; ++t) s.answer_labels += y[t] != -100;
    };
    if (test) {
      for (const auto& p : prompts) add_row(p, nullptr, r.prefill_tokens);
    } else {
      // A line with several answers gives one example per answer, all first
      // answers first (their narrativeqa train split: answer1 rows, then answer2 rows).
      for (size_t k = 0; k < most_answers; ++k)
        for (size_t i = 0; i < lines.size(); ++i)
          if (k < lines[i].rec.answers.size()) {
            const std::vector<int32_t> answer = tok.encode(lines[i].rec.answers[k]);
            add_row(prompts[i], &answer, T);
          }
    }
    rows.push_back(std::move(out));
    r.splits.push_back(s);
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw Error("--out " + opt.out_dir + ": cannot create " + r.dir);
  if (copy_tokenizer) copy_sft_tokenizer(opt.tokenizer, r.tokenizer_path);
  for (size_t i = 0; i < rows.size(); ++i) {
    write_sft_ids(r.splits[i].inputs_path, rows[i].inputs, r.num_bytes);
    write_sft_ids(r.splits[i].labels_path, rows[i].labels, r.num_bytes);
  }
  if (!opt.test.empty()) {
    r.test_jsonl = (dir / "test.jsonl").string();
    write_file_atomic(r.test_jsonl, test_text);
  }
  r.report_path = (dir / "sft-data.json").string();
  write_file_atomic(
      r.report_path,  // replace: a template of invalid UTF-8 (as in data/sft.cc)
      r.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  return r;
}

}  // namespace rat
