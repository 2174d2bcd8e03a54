// `rat plot RUN_DIR...`: training curves of one or several runs to a PNG.
#include <cstdio>

#include "cli/commands.h"
#include "train/plot.h"

namespace rat::cli {

void register_plot(CLI::App& app, Runner& run) {
  static PlotOptions o;
  auto* c = app.add_subcommand(
      "plot",
      "Draw a metric of one or several runs (RUN_DIR/metrics.jsonl) against the optimiser\n"
      "step into a PNG with gnuplot, one curve per run, labelled by directory name.\n"
      "Examples:\n"
      "  rat plot runs/rat-small runs/attention-small --out loss.png\n"
      "  rat plot runs/rat-small --metric val_ppl --log-y --out val.png");
  c->add_option("runs", o.runs, "run directories")->required();
  c->add_option("--out", o.out, "PNG to write")->capture_default_str();
  c->add_option("--metric", o.metric,
                "metrics.jsonl key: loss, val_loss, val_ppl, lr, grad_norm, tokens_per_s, mfu, "
                "data_fraction")
      ->capture_default_str();
  c->add_option("--title", o.title, "plot title (default: the metric)");
  c->add_flag("--log-y", o.log_y, "logarithmic y axis");
  c->add_option("--width", o.width, "pixels")->capture_default_str();
  c->add_option("--height", o.height, "pixels")->capture_default_str();
  c->callback([&run] {
    run = [] {
      plot_runs(o);
      std::printf("wrote %s (%s of %zu run%s)\n", o.out.c_str(), o.metric.c_str(), o.runs.size(),
                  o.runs.size() == 1 ? "" : "s");
      return 0;
    };
  });
}

}  // namespace rat::cli
