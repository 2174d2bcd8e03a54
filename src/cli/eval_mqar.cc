// `rat eval --task mqar PREFIX`: accuracy on the queried values of the test
// split that `rat tasks mqar --out PREFIX` wrote (eval/mqar.h).
#include <cstdio>

#include "cli/eval_tasks.h"
#include "eval/mqar.h"
#include "model/enum_names.h"
#include "model/model.h"
#include "nlohmann/json.hpp"
#include "util/error.h"
#include "util/progress.h"
#include "util/timer.h"

namespace rat::cli {

int run_eval_mqar(const EvalOpts& o) {
  if (o.batch_size <= 0)
    throw Error("--batch-size " + std::to_string(o.batch_size) + ": expected at least 1");
  if (o.limit == 0 || o.limit < -1)
    throw Error("--limit " + std::to_string(o.limit) + ": expected at least 1 example");
  const MqarTask task = read_mqar_test(o.file, o.limit);
  auto model = load_model_dir(o.model);
  model->set_frozen_weight_cache(true);  // weights are fixed from here on
  model->set_precision(parse_flag(precision_names(), "--dtype", o.dtype));
  const ModelConfig& cfg = model->config();
  const std::string report = o.file + ".json";
  if (cfg.vocab_size < task.opt.vocab)
    throw Error(o.model + ": vocab_size " + std::to_string(cfg.vocab_size) +
                " is below the task's vocab " + std::to_string(task.opt.vocab) + " (" + report +
                "): ids of the task would be outside the model");
  // The model is trusted up to data.seq_len (its training length) unless
  // --seq-len says how far it may go (length extrapolation).
  const int64_t max_len = o.seq_len > 0 ? o.seq_len : cfg.seq_len;
  if (task.opt.seq_len > max_len)
    throw Error(report + ": examples of " + std::to_string(task.opt.seq_len) + " tokens, but " +
                (o.seq_len > 0 ? "--seq-len is " : o.model + " was trained on data.seq_len ") +
                std::to_string(max_len) + " (give --seq-len " + std::to_string(task.opt.seq_len) +
                " to evaluate beyond it)");

  Progress bar("eval", task.examples, "examples");
  const double t0 = now_seconds();
  const MqarScore s =
      score_mqar(*model, task, o.forward_batch(), [&](int64_t done) { bar.update(done); });
  bar.finish();
  const double secs = now_seconds() - t0;
  const double answer_loss = s.answers ? s.answer_nll / double(s.answers) : 0.0;
  if (o.json) {
    nlohmann::json j = {{"acc", s.acc()},
                        {"acc_stderr", s.acc_stderr()},
                        {"example_acc", s.example_acc()},
                        {"n", s.answers},
                        {"correct", s.correct},
                        {"examples", s.examples},
                        {"examples_correct", s.examples_correct},
                        {"answer_loss", answer_loss},
                        {"vocab", task.opt.vocab},
                        {"pairs", task.opt.pairs},
                        {"seq_len", task.opt.seq_len},
                        {"seconds", secs},
                        {"model", o.model},
                        {"task", o.file}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "model %s, mqar %s (vocab %lld, %lld pairs, %lld tokens): %lld examples in %.1f s\n",
        o.model.c_str(), o.file.c_str(), (long long)task.opt.vocab, (long long)task.opt.pairs,
        (long long)task.opt.seq_len, (long long)s.examples, secs);
    std::printf(
        "answers right %lld / %lld (acc %.4f +- %.4f), examples all right %lld / %lld (%.4f), "
        "answer loss %.4f\n",
        (long long)s.correct, (long long)s.answers, s.acc(), s.acc_stderr(),
        (long long)s.examples_correct, (long long)s.examples, s.example_acc(), answer_loss);
    std::printf("acc=%.6f n=%lld examples=%lld\n", s.acc(), (long long)s.answers,
                (long long)s.examples);
  }
  return 0;
}

}  // namespace rat::cli
