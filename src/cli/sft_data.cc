// `rat sft-data`: a JSONL of {prompt, answer} -> the inputs/labels token files
// of SFT training (the work is build_sft_data() in data/sft.h).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "data/sft.h"
#include "util/progress.h"

namespace rat::cli {

void register_sft_data(CLI::App& app, Runner& run) {
  static SftOptions o;
  static bool json = false;
  auto* c = app.add_subcommand(
      "sft-data",
      "Build supervised fine-tuning data (SPEC.md \"Data\") from a JSONL file, one\n"
      "{\"prompt\": \"...\", \"answer\": \"...\"} object per line. Each example becomes\n"
      "TEMPLATE(prompt) + answer + eos; only the answer and its eos are trained on (labels\n"
      "are -100 elsewhere). Writes PREFIX.inputs.bin, PREFIX.labels.bin, PREFIX.json and a\n"
      "copy of the tokenizer beside them (training puts it into every checkpoint).\n"
      "Example:\n"
      "  rat sft-data --jsonl qa.jsonl --tokenizer data/pydoc/tokenizer.model --out data/sft/qa\n"
      "  rat train configs/experiment/pydoc/rat-small.yaml "
      "trainer.pretrained_path=runs/rat-small/latest \\\n"
      "      data.train._name_=sft_ordered data.train.tokenized_input_path=data/sft/qa.inputs.bin "
      "\\\n"
      "      data.train.tokenized_label_path=data/sft/qa.labels.bin");
  c->add_option("--jsonl", o.jsonl, "input: one JSON object per line (blank lines skipped)")
      ->required();
  c->add_option("--tokenizer", o.tokenizer,
                "sentencepiece .model (the one the model was trained with)")
      ->required();
  c->add_option("--out", o.out_prefix, "output prefix (directories are created)")->required();
  c->add_option("--template", o.prompt_template,
                "prompt template; {prompt} is replaced by the example's prompt")
      ->capture_default_str();
  c->add_option("--num-bytes", o.num_bytes,
                "id width: 2 (uint16) or 4 (uint32); default: 2 when the vocab fits beside -100 "
                "(<= 65436 ids), else 4 (use the same as data.num_bytes)");
  c->add_flag("--json", json, "print the report (PREFIX.json) on stdout");
  c->callback([&run] {
    run = [] {
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
