// `rat train CONFIG [key=value ...]`: train a model from an experiment config.
#include <csignal>
#include <cstdio>

#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "train/trainer.h"
#include "util/error.h"

namespace rat::cli {

namespace {
struct TrainOpts {
  std::string config;
  std::vector<std::string> overrides;
  TrainOptions t;
  bool print_config = false;
};

void on_sigint(int) { request_stop(); }
}  // namespace

void register_train(CLI::App& app, Runner& run) {
  static TrainOpts o;
  auto* c = app.add_subcommand(
      "train",
      "Train a model from an experiment config (the authors' keys, SPEC.md).\n"
      "Override any key on the command line with dotted paths:\n"
      "  rat train configs/experiment/pydoc/rat-small.yaml optim.optimizer.lr=3e-4 \\\n"
      "      model.backbone.seq_cell.chunk_size=32 trainer.max_steps=200\n"
      "The run directory (trainer.save_dir or --run-dir) receives the resolved config.yaml,\n"
      "metrics.jsonl and checkpoints/; run-dir/latest is a model directory that\n"
      "`rat eval` and `rat generate` accept. Ctrl-C finishes the step, saves and exits;\n"
      "trainer.load_checkpoint=true resumes from run-dir/latest.");
  c->add_option("config", o.config, "experiment YAML")->required()->check(CLI::ExistingFile);
  c->add_option("overrides", o.overrides, "dotted.key=value overrides");
  c->add_option("--run-dir", o.t.run_dir, "run directory (default: trainer.save_dir)");
  c->add_flag("--json", o.t.json, "log lines as JSON objects");
  c->add_flag("--quiet", o.t.quiet, "no log lines (metrics.jsonl is still written)");
  c->add_option("--stop-after", o.t.stop_after, "stop, saving a checkpoint, after this many steps");
  c->add_flag("--print-config", o.print_config, "print the resolved config and exit");
  c->callback([&run] {
    run = [] {
      Experiment e = load_experiment(o.config, o.overrides);
      YAML::Emitter out;
      out << e.resolved;
      if (o.print_config) {
        std::printf("%s\n", out.c_str());
        return 0;
      }
      if (!o.t.quiet && !o.t.json) std::printf("resolved config:\n%s\n---\n", out.c_str());
      std::signal(SIGINT, on_sigint);
      TrainSummary s = train(e, o.t);
      if (o.t.json) {
        nlohmann::json j = {{"steps", s.steps_done},     {"loss", s.last_loss},
                            {"val_loss", s.val_loss},    {"val_ppl", s.val_ppl},
                            {"tokens_per_s", s.tokens_per_s}, {"mfu", s.mfu},
                            {"interrupted", s.interrupted}, {"latest", s.latest_dir}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        if (s.interrupted)
          std::printf("interrupted after step %lld; checkpoint saved. Resume with the same "
                      "command plus trainer.load_checkpoint=true\n",
                      (long long)s.steps_done);
        char val[96] = "";  // no validation ran (no val data, or interrupted)
        if (s.val_ppl > 0)
          std::snprintf(val, sizeof val, ", val loss %.4f, val ppl %.2f", s.val_loss, s.val_ppl);
        std::printf("done: %lld steps, train loss %.4f%s, %.0f tok/s, MFU %.1f%%\nmodel: %s\n",
                    (long long)s.steps_done, s.last_loss, val, s.tokens_per_s, 100.0 * s.mfu,
                    s.latest_dir.c_str());
      }
      return 0;
    };
  });
}

}  // namespace rat::cli
