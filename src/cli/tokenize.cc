// `rat tokenize`: text documents -> train.bin / val.bin / tokenizer.model /
// tokenize.json (the work is tokenize_corpus() in data/corpus.h, the reading
// of files, stdin and JSON lines data/documents.h).
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
  static std::string format = "auto", split = "auto";
  static bool no_byte_fallback = false;
  static std::vector<std::string> positional;
  TokenizeOptions& o = f.opt;
  auto* c = app.add_subcommand(
      "tokenize",
      "Encode text into the token files training reads (SPEC.md \"Data\"), training a\n"
      "tokenizer on it unless --tokenizer gives one. Writes OUT/train.bin, OUT/val.bin,\n"
      "OUT/tokenizer.model and, last, OUT/tokenize.json; `rat train CONFIG data.dir=OUT` takes\n"
      "the data paths, vocab size, id width and end-of-document id from it.\n"
      "Inputs: files, directories (every file below, recursively, sorted by path; hidden ones\n"
      "skipped; --glob narrows), - for stdin. Documents: a file found in a directory is one\n"
      "document; a file named as an input (or stdin) is split into documents at blank lines,\n"
      "or at every --doc-separator STR; .jsonl and .json files (or --format jsonl) hold one\n"
      "JSON object per line with the text under --text-key (what Hugging Face datasets'\n"
      "to_json writes). Each document ends with the end-of-document id (eos). Whole\n"
      "documents, evenly spaced, go to val.bin (--val-fraction; at least one).\n"
      "Examples: rat tokenize book.txt --out-dir data/book --vocab-size 2000\n"
      "          rat tokenize corpus.jsonl --text-key content --out-dir data/c\n"
      "          rat tokenize --input data/pydoc/text --glob '*.txt' --out-dir data/pydoc");
  c->add_option("inputs", positional, "files, directories or - (stdin)");
  c->add_option("--input", o.inputs, "the same as the positional inputs (repeatable)");
  c->add_option("-o,--out-dir", o.out_dir, "output directory (created)")->required();
  auto* tok = c->add_option("--tokenizer", o.tokenizer,
                            "existing sentencepiece .model (e.g. LLaMA-2's); default: train one");
  c->add_option("--vocab-size", o.vocab_size, "pieces of the tokenizer to train")
      ->capture_default_str()
      ->excludes(tok);
  c->add_option("--model-type", o.train.model_type,
                "tokenizer to train: bpe, unigram, char or word (sentencepiece's)")
      ->capture_default_str()
      ->check(CLI::IsMember({"bpe", "unigram", "char", "word"}))
      ->excludes(tok);
  c->add_option("--character-coverage", o.train.character_coverage,
                "share of the text's characters that get a piece of their own (rarer ones are "
                "spelt as bytes)")
      ->capture_default_str()
      ->excludes(tok);
  c->add_flag("--no-byte-fallback", no_byte_fallback,
              "no 256 byte pieces: characters without a piece become unk (saves 256 ids)")
      ->excludes(tok);
  c->add_option("--val-fraction", o.val_fraction, "fraction of documents held out for val.bin")
      ->capture_default_str();
  c->add_option("--format", format, "auto (.jsonl/.json are JSON lines), text or jsonl")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "text", "jsonl"}));
  c->add_option("--text-key", o.text_key, "JSON lines: the field holding the text")
      ->capture_default_str();
  c->add_option("--split", split,
                "documents of a text file: auto (named files and stdin at blank lines, files "
                "in directories whole), blank (at blank lines) or file (whole)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "blank", "file"}));
  c->add_option("--doc-separator", o.separator,
                "split text files into documents at every occurrence of this string (e.g. "
                "'<|endoftext|>')");
  c->add_option("--num-bytes", o.num_bytes, "bytes per id in the token files: 2 (uint16) or 4")
      ->capture_default_str();
  c->add_option("--glob", o.glob,
                "file-name pattern for files found in directories (default: every file)");
  c->add_flag("--json", f.json, "also print tokenize.json's object on stdout");
  c->callback([&run] {
    run = [] {
      TokenizeOptions& o = f.opt;
      o.inputs.insert(o.inputs.begin(), positional.begin(), positional.end());
      if (o.inputs.empty())
        throw Error(
            "no input: give files, directories or - (stdin), e.g. rat tokenize "
            "book.txt --out-dir data/book");
      o.format = format == "jsonl"  ? DocFormat::kJsonl
                 : format == "text" ? DocFormat::kText
                                    : DocFormat::kAuto;
      o.split = split == "blank"  ? DocSplit::kBlankLines
                : split == "file" ? DocSplit::kFile
                                  : DocSplit::kAuto;
      o.train.byte_fallback = !no_byte_fallback;
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
      std::printf("train with: rat train CONFIG data.dir=%s\n", r.out_dir.c_str());
      std::printf("time: tokenizer %.1f s, encode %.1f s\n", r.tokenizer_seconds, r.encode_seconds);
      if (f.json) std::printf("%s\n", r.to_json().dump().c_str());
      return 0;
    };
  });
}

}  // namespace rat::cli
