// `rat eval`: flags and dispatch (eval_tasks.h), and the mean loss and
// perplexity of a model directory over a token file (--data).
#include <cstdio>

#include "cli/commands.h"
#include "cli/eval_tasks.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "train/evaluate.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/timer.h"

namespace rat::cli {

namespace {

int run_eval_tokens(const EvalOpts& o) {
  auto model = load_model_dir(o.model);
  model->set_frozen_weight_cache(true);  // weights are fixed from here on
  model->set_precision(parse_flag(precision_names(), "--dtype", o.dtype));
  const ModelConfig& cfg = model->config();
  const int64_t T = o.seq_len > 0 ? o.seq_len : cfg.seq_len;
  if (o.batch_size <= 0) throw Error("--batch-size must be positive");
  TokenFile data(o.data, int(cfg.num_bytes));
  const int64_t n = checked_eval_samples(data, cfg.vocab_size, T, o.max_samples);
  Progress bar("eval", n, "samples");
  double t0 = now_seconds();
  EvalResult r =
      evaluate(*model, data, T, o.forward_batch(), 0, n, [&](int64_t done) { bar.update(done); });
  bar.finish();
  double secs = now_seconds() - t0;
  if (o.json) {
    nlohmann::json j = {{"loss", r.loss},
                        {"ppl", r.ppl},
                        {"tokens", r.tokens},
                        {"samples", r.samples},
                        {"seq_len", T},
                        {"seconds", secs},
                        {"model", o.model},
                        {"data", o.data},
                        // one layer's activations (kScore), for memory budgets
                        {"activation_bytes", model->activation_bytes()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model %s, data %s: %lld samples of %lld tokens in %.1f s (%.0f tokens/s)\n",
                o.model.c_str(), o.data.c_str(), (long long)r.samples, (long long)T, secs,
                double(r.samples * T) / secs);
    std::printf("loss=%.6f ppl=%.4f tokens=%lld\n", r.loss, r.ppl, (long long)r.tokens);
  }
  return 0;
}

}  // namespace

void register_eval(CLI::App& app, Runner& run) {
  static EvalOpts o;
  auto* c = app.add_subcommand(
      "eval",
      "Evaluate a model directory. One of:\n"
      "  --data TOKENS.bin     mean loss and perplexity over a token file; sample r is tokens\n"
      "                        [rT, rT+T) predicting [rT+1, rT+T]; a label after\n"
      "                        data.ignore_input_index (end of document) is not counted\n"
      "  --text FILE           rolling-window perplexity and bits per byte of raw text\n"
      "  --task mc FILE        multiple choice: acc and acc_norm\n"
      "  --task niah FILE      needle retrieval (rat tasks niah): greedy answers scored\n"
      "  --task gen FILE       generate and score (qa_f1, rouge_l, exact_match, edit_sim)\n"
      "  --task mqar PREFIX    accuracy on the queried values (rat tasks mqar)\n"
      "Example: rat eval --model runs/small/latest --data data/val.bin");
  c->add_option("-m,--model", o.model, "model directory (config.yaml + model.safetensors)")
      ->required();
  c->add_option("--data", o.data, "token file (uint16/uint32 per data.num_bytes)");
  c->add_option("-f,--text", o.text,
                "UTF-8 text file (needs the model's tokenizer.model; - : stdin)");
  c->add_option("--task", o.task, "mc | niah | gen | mqar (the task file follows)");
  c->add_option("file", o.file, "the task's file (JSONL; for mqar the prefix of rat tasks mqar)");
  c->add_option("-c,--ctx,--seq-len", o.seq_len,
                "sample length / window / context T (default: the model's data.seq_len)");
  c->add_option("-b,--batch-size", o.batch_size, "sequences per forward pass or decode step")
      ->capture_default_str();
  c->add_option("--max-samples", o.max_samples, "--data: evaluate only the first N samples");
  c->add_option("--limit", o.limit, "tasks: evaluate only the first N lines or examples");
  c->add_option("--stride", o.stride, "--text: a window starts every S tokens (default T/2)");
  c->add_option("-n,--max-new-tokens", o.max_new_tokens,
                "niah/gen: tokens generated per case (default: the line's, else 32)");
  c->add_option("--max-prompt-tokens", o.max_prompt_tokens,
                "gen, niah: longer prompts keep their first and last halves (gen default: T - new "
                "tokens; niah prompts are not cut by default)");
  c->add_option("--out", o.out, "niah/gen: write predictions here (JSONL)");
  c->add_option("--metric", o.metric, "gen: qa_f1 | rouge_l | exact_match | edit_sim");
  c->add_option("--heatmap", o.heatmap, "niah: write a depth x length score heatmap (PNG)");
  c->add_option("--dtype", o.dtype, "f32 | bf16 matmul inputs")->capture_default_str();
  c->add_option("--cache-dtype", o.cache_dtype, "niah/gen: f32 | bf16 decode cache")
      ->capture_default_str();
  c->add_flag("--batch-invariant", o.batch_invariant,
              "results bit for bit the same whatever --batch-size (--data, --text, mc, mqar: one "
              "sequence per forward pass; niah, gen: the batch-invariant decoder; slower)");
  c->add_flag("--json", o.json, "print JSON instead of text");
  c->callback([&run] {
    run = [] {
      const int given = int(!o.data.empty()) + int(!o.text.empty()) + int(!o.task.empty());
      if (given != 1) throw Error("rat eval: give exactly one of --data, --text, --task");
      if (!o.data.empty()) return run_eval_tokens(o);
      if (!o.text.empty()) return run_eval_text(o);
      if (o.file.empty()) throw Error("rat eval --task " + o.task + ": the task file is missing");
      if (o.task == "mc") return run_eval_mc(o);
      if (o.task == "niah" || o.task == "gen") return run_eval_gen(o);
      if (o.task == "mqar") return run_eval_mqar(o);
      throw Error("rat eval --task: '" + o.task +
                  "' is not a task; expected mc, niah, gen or mqar");
    };
  });
}

}  // namespace rat::cli
