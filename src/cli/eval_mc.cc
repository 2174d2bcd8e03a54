// `rat eval --task mc FILE`: multiple choice by log-likelihood (eval/mc.h).
#include <cmath>
#include <cstdio>

#include "cli/eval_tasks.h"
#include "eval/mc.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "util/error.h"

namespace rat::cli {

int run_eval_mc(const EvalOpts& o) {
  if (o.batch_size <= 0) throw Error("--batch-size must be positive");
  auto model = load_model_dir(o.model);
  model->set_frozen_weight_cache(true);  // weights are fixed from here on
  model->set_precision(parse_flag(precision_names(), "--dtype", o.dtype));
  const ModelConfig& cfg = model->config();
  const int64_t T = o.seq_len > 0 ? o.seq_len : cfg.seq_len;
  const ScoreVocab vocab = load_score_vocab(o.model, cfg.vocab_size, cfg.ignore_input_index);
  const McTask task = read_mc_task(o.file, vocab, T, o.limit);
  ScoreStats s;
  const std::vector<ScoreResult> res =
      score_requests(*model, task.requests, T, o.forward_batch(), &s);
  const McReport r = mc_report(task, res);
  if (o.json) {
    // NaN (fewer than two items) prints as null.
    auto num = [](double x) { return std::isnan(x) ? nlohmann::json() : nlohmann::json(x); };
    nlohmann::json j = {{"acc", r.acc},
                        {"acc_stderr", num(r.acc_stderr)},
                        {"acc_norm", r.acc_norm},
                        {"acc_norm_stderr", num(r.acc_norm_stderr)},
                        {"n", r.n},
                        {"requests", s.requests},
                        {"seconds", s.seconds},
                        {"model", o.model},
                        {"file", o.file}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model %s, %s: %lld items, %lld choices, %lld prefills, %.2f s\n", o.model.c_str(),
                o.file.c_str(), (long long)r.n, (long long)s.requests, (long long)s.groups,
                s.seconds);
    std::printf("acc=%.6f acc_norm=%.6f n=%lld\n", r.acc, r.acc_norm, (long long)r.n);
  }
  return 0;
}

}  // namespace rat::cli
