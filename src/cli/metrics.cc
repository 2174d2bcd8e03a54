// `rat metrics`: score a JSONL of predictions against reference answers (the
// work is score_predictions() in eval/metrics.h).
#include <cstdio>

#include "cli/commands.h"
#include "eval/metrics.h"
#include "nlohmann/json.hpp"

namespace rat::cli {

void register_metrics(CLI::App& app, Runner& run) {
  static std::string path, metric;
  static bool json = false;
  auto* c = app.add_subcommand(
      "metrics",
      "Score predictions against answers. Each line of FILE is\n"
      "{\"prediction\": \"...\", \"answers\": [\"...\", ...]}; a line scores the best over its\n"
      "answers; the last line printed is <metric>=<mean> n=<lines>.\n"
      "  qa_f1        LongBench's token F1 after normalisation (lowercase, no punctuation,\n"
      "               no a/an/the, whitespace collapsed)\n"
      "  rouge_l      rouge-score's rougeL F-measure (lowercase [a-z0-9] tokens, no stemming)\n"
      "  exact_match  normalised prediction equals a normalised answer\n"
      "  edit_sim     1 - Levenshtein distance / max length, on characters\n"
      "Example: rat metrics --predictions preds.jsonl --metric qa_f1");
  c->add_option("--predictions", path, "JSONL file of {prediction, answers}")->required();
  c->add_option("--metric", metric, "qa_f1 | rouge_l | exact_match | edit_sim")->required();
  c->add_flag("--json", json, "print one JSON object {metric, score, n, scores} instead");
  c->callback([&run] {
    run = [] {
      const MetricReport r = score_predictions(path, parse_metric(metric));
      if (json) {
        nlohmann::json j = {{"metric", metric_name(r.metric)},
                            {"score", r.mean},
                            {"n", r.n()},
                            {"scores", r.scores}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s=%.6f n=%lld\n", metric_name(r.metric), r.mean, (long long)r.n());
      }
      return 0;
    };
  });
}

}  // namespace rat::cli
