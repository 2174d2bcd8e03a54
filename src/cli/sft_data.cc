// `rat sft-data`: SFT token files in one of two layouts, chosen by the input
// flags: --task with the dataset's split files builds the authors' padded
// rows (data/sft_padded.h), --jsonl of {prompt, answer} packs examples back
// to back (data/sft.h).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "data/sft.h"
#include "data/sft_padded.h"
#include "data/sft_tasks.h"
#include "util/error.h"
#include "util/progress.h"

namespace rat::cli {

namespace {

int run_padded(const SftPaddedOptions& o, bool json) {
  const SftPaddedReport r = build_sft_padded(o);
  if (json) {
    std::printf("%s\n", r.to_json().dump().c_str());
    return 0;
  }
  std::printf("%s: seq_len %lld, pad %d, num_bytes %d\n", r.task.c_str(), (long long)r.seq_len,
              r.pad_id, r.num_bytes);
  for (const SftSplitReport& s : r.splits)
    std::printf("%-10s %lld lines -> %lld rows (%lld cut in the middle), %lld answer labels\n",
                s.split.c_str(), (long long)s.lines, (long long)s.rows, (long long)s.truncated,
                (long long)s.answer_labels);
  for (const SftSplitReport& s : r.splits)
    std::printf("wrote %s\n      %s\n", s.inputs_path.c_str(), s.labels_path.c_str());
  if (!r.test_jsonl.empty())
    std::printf("wrote %s (prompts cut to %lld tokens, %lld new tokens)\n", r.test_jsonl.c_str(),
                (long long)r.prefill_tokens - 1, (long long)r.max_new_tokens + 1);
  std::printf("wrote %s\n      %s\n", r.tokenizer_path.c_str(), r.report_path.c_str());
  return 0;
}

}  // namespace

void register_sft_data(CLI::App& app, Runner& run) {
  static SftOptions o;
  static SftPaddedOptions p;
  static std::string tmpl;
  static bool json = false;
  auto* c = app.add_subcommand(
      "sft-data",
      "Build supervised fine-tuning data (SPEC.md \"Data\"). Two layouts:\n"
      "\n"
      "--task NAME: the authors' (tokenize/sft.py): one row of --seq-len ids per example,\n"
      "TEMPLATE(context, input) + answer, padded with eos, the middle cut out when it does\n"
      "not fit; labels -100 but on the answer and the closing eos. Each split file is the\n"
      "dataset's JSONL (fields: see README \"Fine-tune (SFT)\"). Writes, as their data config\n"
      "reads them, OUT/NAME/llama-{train,validation,test}-SEQ-{inputs,labels}.bin, the test\n"
      "split as OUT/NAME/test.jsonl cases for `rat eval --task gen`, tokenizer.model and\n"
      "sft-data.json. NAME (their templates and budgets), or any other with --template:\n  " +
          sft_task_names() +
          "\n"
          "Example:\n"
          "  rat sft-data --task wikisum --train train.jsonl --validation val.jsonl \\\n"
          "      --test test.jsonl --seq-len 4096 --tokenizer tokenizer.model --out data/sft\n"
          "\n"
          "--jsonl FILE: {\"prompt\", \"answer\"} lines packed back to back, TEMPLATE(prompt) +\n"
          "answer + eos each; writes PREFIX.inputs.bin, PREFIX.labels.bin, PREFIX.json.\n"
          "Example:\n"
          "  rat sft-data --jsonl qa.jsonl --tokenizer data/pydoc/tokenizer.model --out "
          "data/sft/qa");
  auto* task = c->add_option("--task", p.task, "the authors' layout for this dataset");
  auto* jsonl = c->add_option("--jsonl", o.jsonl,
                              "the packed layout: one {\"prompt\", \"answer\"} object per line");
  task->excludes(jsonl);
  c->add_option("--train", p.train, "--task: the train split's JSONL")->needs(task);
  c->add_option("--validation", p.validation, "--task: the validation split's JSONL")->needs(task);
  c->add_option("--test", p.test, "--task: the test split's JSONL (written as test.jsonl)")
      ->needs(task);
  c->add_option("--seq-len", p.seq_len, "--task: row length (data.seq_len)")->needs(task);
  c->add_option("--prefix", p.prefix, "--task: the file names' first word (their configs: llama)")
      ->capture_default_str()
      ->needs(task);
  c->add_option("--max-new-tokens", p.max_new_tokens,
                "--task: the test split's generation budget as their gen.py counts it "
                "(default: 128 narrativeqa, 384 qmsum, 256 wikisum)")
      ->needs(task);
  c->add_option("--prefill-tokens", p.prefill_tokens,
                "--task: the test prompts' budget P (cut to P-1 tokens); default: their table "
                "at --seq-len 4096/16384, else seq-len minus max-new-tokens")
      ->needs(task);
  c->add_option("--tokenizer", o.tokenizer,
                "sentencepiece .model (the one the model was trained with)")
      ->required();
  c->add_option("--out", o.out_prefix,
                "--task: the directory holding NAME/; --jsonl: the output prefix")
      ->required();
  c->add_option("--template", tmpl,
                "prompt template: --task: {context} and {input} (default: the task's); "
                "--jsonl: {prompt} (default \"### Question:\\n{prompt}\\n### Answer:\\n\")");
  c->add_option("--num-bytes", o.num_bytes,
                "id width: 2 (uint16) or 4 (uint32); default: 2 when the vocab fits beside -100 "
                "(<= 65436 ids), else 4 (use the same as data.num_bytes)");
  c->add_flag("--json", json, "print the report on stdout");
  c->callback([&run, c] {
    run = [c] {
      if (c->count("--task")) {
        if (c->count("--seq-len") == 0) throw Error("--task needs --seq-len (data.seq_len)");
        p.tokenizer = o.tokenizer;
        p.out_dir = o.out_prefix;
        p.num_bytes = o.num_bytes;
        p.prompt_template = tmpl;
        return run_padded(p, json);
      }
      if (c->count("--jsonl") == 0)
        throw Error("give --task NAME with its split files (the authors' layout) or --jsonl FILE");
      if (c->count("--template")) o.prompt_template = tmpl;
      std::unique_ptr<Progress> bar;
      o.progress = [&bar](int64_t done, int64_t total) {
        if (!bar) bar = std::make_unique<Progress>("sft-data", total, "B");
        bar->update(done);
      };
      SftReport r = build_sft_data(o);
      if (bar) bar->finish();
      if (json) {
        std::printf("%s\n", r.to_json().dump().c_str());
        return 0;
      }
      std::printf(
          "%lld examples, %lld tokens, %lld answer labels (%.1f%%), num_bytes %d, eos %d\n"
          "wrote %s\n      %s\n      %s\n      %s\n"
          "train with: data.train._name_=sft_ordered data.train.tokenized_input_path=%s "
          "data.train.tokenized_label_path=%s data.num_bytes=%d\n",
          (long long)r.examples, (long long)r.tokens, (long long)r.answer_labels,
          100.0 * double(r.answer_labels) / double(r.tokens), r.num_bytes, r.eos_id,
          r.inputs_path.c_str(), r.labels_path.c_str(), r.report_path.c_str(),
          r.tokenizer_path.c_str(), r.inputs_path.c_str(), r.labels_path.c_str(), r.num_bytes);
      return 0;
    };
  });
}

}  // namespace rat::cli
