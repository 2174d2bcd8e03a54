// `rat tasks mqar|niah`: write evaluation task files (the work is in
// eval/mqar.h and eval/niah.h).
#include <cstdio>

#include "cli/commands.h"
#include "data/tokenizer.h"
#include "eval/mqar.h"
#include "eval/niah.h"

namespace rat::cli {

namespace {

void register_mqar(CLI::App& tasks, Runner& run) {
  static MqarOptions o;
  static int64_t train = 20000, test = 1000;
  static uint64_t seed = 0;
  static std::string out;
  static bool zero_fill = false;
  auto* c = tasks.add_subcommand(
      "mqar",
      "Zoology's multi-query associative recall as SFT token files: each example is K\n"
      "key-value pairs (keys from [1, V/2), values from [V/2, V)) then the keys queried once\n"
      "each at power-law distances; labels are the values at the query positions and -100\n"
      "elsewhere. Writes PREFIX.{train,test}.{inputs,labels}.bin and PREFIX.json.\n"
      "Train with data.seq_len = --seq-len, data.vocab_size >= --vocab, sft_ordered.\n"
      "Example: rat tasks mqar --vocab 8192 --pairs 16 --seq-len 256 --out data/mqar/k16");
  c->add_option("--vocab", o.vocab, "V: ids [0, V)")->capture_default_str();
  c->add_option("--pairs", o.pairs, "K key-value pairs per example")->capture_default_str();
  c->add_option("--seq-len", o.seq_len, "tokens per example (even, >= 4K)")->capture_default_str();
  c->add_option("--train", train, "training examples")->capture_default_str();
  c->add_option("--test", test, "test examples")->capture_default_str();
  c->add_option("--seed", seed, "random seed (train and test use separate streams)")
      ->capture_default_str();
  c->add_option("--power-a", o.power_a, "power-law exponent of query placement (1: uniform)")
      ->capture_default_str();
  c->add_flag("--zero-fill", zero_fill, "leave non-query positions 0 instead of random ids");
  c->add_option("--out", out, "output prefix (directories are created)")->required();
  c->callback([&run] {
    run = [] {
      o.random_fill = !zero_fill;
      const MqarReport r = write_mqar(o, train, test, seed, out);
      std::printf(
          "mqar V=%lld K=%lld T=%lld: %lld train, %lld test examples, num_bytes %d\n"
          "wrote %s\n      %s\n      %s\n      %s\n      %s\n",
          (long long)o.vocab, (long long)o.pairs, (long long)o.seq_len, (long long)train,
          (long long)test, r.num_bytes, r.train_inputs.c_str(), r.train_labels.c_str(),
          r.test_inputs.c_str(), r.test_labels.c_str(), r.report_path.c_str());
      return 0;
    };
  });
}

void register_niah(CLI::App& tasks, Runner& run) {
  static NiahOptions o;
  static std::string tokenizer, kind = "single", out;
  auto* c = tasks.add_subcommand(
      "niah",
      "RULER-style needle-in-a-haystack cases as JSONL, one per (length, depth, sample):\n"
      "{\"prompt\", \"answers\", \"length\", \"depth\", \"kind\", \"tokens\", \"needle_token\", "
      "...}.\n"
      "Lengths are in tokens of --tokenizer (prompt + --max-new-tokens <= length); depth is\n"
      "the fraction of haystack tokens before the (first) needle.\n"
      "Example: rat tasks niah --tokenizer data/pydoc/tokenizer.model --lengths 1024,2048 \\\n"
      "             --depths 0,0.25,0.5,0.75,1 --kind single --out niah.jsonl");
  c->add_option("--tokenizer", tokenizer, "sentencepiece .model of the model to test")->required();
  c->add_option("--lengths", o.lengths, "target lengths in tokens, comma separated")
      ->delimiter(',')
      ->required();
  c->add_option("--depths", o.depths, "needle depths in [0, 1], comma separated")
      ->delimiter(',')
      ->required();
  c->add_option("--kind", kind, "single | multikey | multivalue | multiquery | passkey")
      ->capture_default_str();
  c->add_option("--haystack", o.haystack, "'noise' (repeated sentence) or a text file (essay)")
      ->capture_default_str();
  c->add_option("--samples", o.samples, "cases per (length, depth)")->capture_default_str();
  c->add_option("--max-new-tokens", o.max_new_tokens, "tokens left for the answer")
      ->capture_default_str();
  c->add_option("--seed", o.seed, "random seed")->capture_default_str();
  c->add_option("--out", out, "output JSONL file")->required();
  c->callback([&run] {
    run = [] {
      o.kind = parse_niah_kind(kind);
      const Tokenizer tok = Tokenizer::load(tokenizer);
      const auto cases = write_niah(o, tok, out);
      std::printf("%zu %s cases (%zu lengths x %zu depths x %lld)\nwrote %s\n", cases.size(),
                  niah_kind_name(o.kind), o.lengths.size(), o.depths.size(), (long long)o.samples,
                  out.c_str());
      return 0;
    };
  });
}

}  // namespace

void register_tasks(CLI::App& app, Runner& run) {
  auto* tasks = app.add_subcommand("tasks", "Write evaluation task files (mqar, niah).");
  tasks->require_subcommand(1);
  register_mqar(*tasks, run);
  register_niah(*tasks, run);
}

}  // namespace rat::cli
