// `rat score`: lm-eval-harness loglikelihood requests (the work is in eval/score.h).
#include <cstdio>

#include "cli/commands.h"
#include "eval/score.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "util/atomic_file.h"
#include "util/error.h"

namespace rat::cli {

namespace {

struct ScoreOpts {
  std::string model, requests, out, dtype = "f32";
  int64_t batch_size = 8, ctx = 0;
  bool json = false;
};

int run_score(const ScoreOpts& o) {
  if (o.batch_size <= 0) throw Error("--batch-size must be positive");
  if (o.ctx < 0) throw Error("--ctx must be positive (0: the model's data.seq_len)");
  auto model = load_model_dir(o.model);
  model->set_frozen_weight_cache(true);  // weights are fixed from here on
  model->set_precision(parse_flag(precision_names(), "--dtype", o.dtype));
  const ModelConfig& cfg = model->config();
  const int64_t T = o.ctx > 0 ? o.ctx : cfg.seq_len;
  const ScoreVocab vocab = load_score_vocab(o.model, cfg.vocab_size, cfg.ignore_input_index);
  // Every line is read and checked before the first is scored: a bad line
  // fails the run with nothing written.
  const std::vector<ScoreRequest> reqs = read_score_requests(o.requests, vocab, T);
  ScoreStats s;
  const std::vector<ScoreResult> res = score_requests(*model, reqs, T, o.batch_size, &s);
  std::string lines;
  for (const ScoreResult& r : res) lines += score_result_json(r) + "\n";
  if (o.out.empty())
    std::fwrite(lines.data(), 1, lines.size(), stdout);
  else
    write_file_atomic(o.out, lines);
  if (o.json) {
    nlohmann::json j = {{"requests", s.requests},
                        {"contexts", s.groups},
                        {"context_tokens", s.context_tokens},
                        {"continuation_tokens", s.continuation_tokens},
                        {"steps", s.steps},
                        {"ctx", T},
                        {"batch_size", s.batch},
                        {"seconds", s.seconds}};
    std::fprintf(stderr, "%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr,
                 "score: %lld requests, %lld prefills of shared contexts (%lld tokens), %lld "
                 "continuation tokens in %lld steps of up to %lld rows, %.2f s\n",
                 (long long)s.requests, (long long)s.groups, (long long)s.context_tokens,
                 (long long)s.continuation_tokens, (long long)s.steps, (long long)s.batch,
                 s.seconds);
  }
  return 0;
}

}  // namespace

void register_score(CLI::App& app, Runner& run) {
  static ScoreOpts o;
  auto* c = app.add_subcommand(
      "score",
      "Log-likelihood of continuations (lm-eval-harness loglikelihood). Each line of the\n"
      "requests file is {\"context\": TEXT, \"continuation\": TEXT} (needs the model's\n"
      "tokenizer.model) or {\"context_ids\": [..], \"continuation_ids\": [..]}. Prints one line\n"
      "per request, in order: {\"loglikelihood\": sum of log p(continuation token | all before),\n"
      "\"is_greedy\": every continuation token is the argmax, \"tokens\": continuation length}.\n"
      "Text pairs are encoded as lm-eval does (trailing context whitespace moves to the\n"
      "continuation); an empty context is the end-of-document id (data.ignore_input_index,\n"
      "else the tokenizer's eos). Requests longer than --ctx are cut from the left. Requests\n"
      "with equal contexts share one prefill. A summary goes to stderr.\n"
      "Example: rat score --model runs/small/latest --requests lambada.jsonl --out scores.jsonl");
  c->add_option("-m,--model", o.model, "model directory (config.yaml + model.safetensors)")
      ->required();
  c->add_option("--requests", o.requests, "JSONL file of requests")->required();
  c->add_option("-b,--batch-size", o.batch_size, "continuations decoded together")
      ->capture_default_str();
  c->add_option("-c,--ctx", o.ctx, "tokens the model reads at most (default: data.seq_len)");
  c->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  c->add_option("--out", o.out, "write the results here (atomically) instead of stdout");
  c->add_flag("--json", o.json, "the stderr summary as one JSON object");
  c->callback([&run] { run = [] { return run_score(o); }; });
}

}  // namespace rat::cli
