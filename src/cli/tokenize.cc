// `rat tokenize`: text documents -> train.bin / val.bin / tokenizer.model /
// tokenize.json (the work is tokenize_corpus() in data/corpus.h).
#include <algorithm>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "data/corpus.h"
#include "util/error.h"
#include "util/progress.h"

namespace rat::cli {

namespace {
struct TokenizeFlags {
  TokenizeOptions opt;
  bool json = false;
};
}  // namespace

void register_tokenize(CLI::App& app, Runner& run) {
  static TokenizeFlags f;
  TokenizeOptions& o = f.opt;
  auto* c = app.add_subcommand(
      "tokenize",
      "Encode text documents into the token files training reads (SPEC.md \"Data\").\n"
      "Each file is one document, followed by the end-of-document id (eos), which is the\n"
      "data.ignore_input_index to train with. Whole documents, evenly spaced, go to val.bin.\n"
      "Writes OUT/train.bin, OUT/val.bin, OUT/tokenizer.model and OUT/tokenize.json.\n"
      "Example: rat tokenize --input data/pydoc/text --out-dir data/pydoc --vocab-size 4096");
  c->add_option("--input", o.inputs,
                "files or directories (walked recursively, sorted by path); each file is a "
                "document")
      ->required();
  c->add_option("--out-dir", o.out_dir, "output directory (created)")->required();
  auto* tok = c->add_option("--tokenizer", o.tokenizer,
                            "existing sentencepiece .model (e.g. LLaMA-2's); default: train one");
  c->add_option("--vocab-size", o.vocab_size, "pieces of the BPE tokenizer to train")
      ->capture_default_str()
      ->excludes(tok);
  c->add_option("--val-fraction", o.val_fraction, "fraction of documents held out for val.bin")
      ->capture_default_str();
  c->add_option("--num-bytes", o.num_bytes, "bytes per id in the token files: 2 (uint16) or 4")
      ->capture_default_str();
  c->add_option("--glob", o.glob, "file-name pattern for files found in directories")
      ->capture_default_str();
  c->add_flag("--json", f.json, "also print tokenize.json's object on stdout");
  c->callback([&run] {
    run = [] {
      TokenizeOptions& o = f.opt;
      std::unique_ptr<Progress> bar;
      o.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
      o.progress = [&bar](int64_t done, int64_t total) {
        if (!bar) bar = std::make_unique<Progress>("encode", total, "docs");
        bar->update(done);
      };
      TokenizeReport r = tokenize_corpus(o);
      if (bar) bar->finish();
      std::printf(
          "%s: %lld documents, %lld tokens (train %lld docs / %lld tokens, val %lld / %lld)\n",
          r.out_dir.c_str(), (long long)(r.train_documents + r.val_documents),
          (long long)(r.train_tokens + r.val_tokens), (long long)r.train_documents,
          (long long)r.train_tokens, (long long)r.val_documents, (long long)r.val_tokens);
      std::printf("tokenizer %s (%s): vocab %lld, eos %d; %.2f text bytes per token\n",
                  r.tokenizer_path.c_str(), r.trained_tokenizer ? "trained" : "given",
                  (long long)r.vocab_size, r.eos_id,
                  double(r.train_text_bytes + r.val_text_bytes) /
                      double(std::max<int64_t>(1, r.train_tokens + r.val_tokens)));
      std::printf("val unigram perplexity (add-one, train counts): %.2f\n", r.val_unigram_ppl);
      std::printf("data: {vocab_size: %lld, num_bytes: %d, ignore_input_index: %d}\n",
                  (long long)r.vocab_size, r.num_bytes, r.eos_id);
      std::printf("time: tokenizer %.1f s, encode %.1f s\n", r.tokenizer_seconds, r.encode_seconds);
      if (f.json) std::printf("%s\n", r.to_json().dump().c_str());
      return 0;
    };
  });
}

}  // namespace rat::cli
