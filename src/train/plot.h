// Loss curves of one or several runs (their metrics.jsonl) drawn to a PNG with
// gnuplot (pngcairo). `rat plot` is a flag layer over plot_runs().
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace rat {

struct PlotOptions {
  std::vector<std::string> runs;  // run directories (each holds metrics.jsonl)
  std::string out = "loss.png";
  std::string metric =
      "loss";         // any numeric key of metrics.jsonl: loss, val_loss, val_ppl, lr, ...
  std::string title;  // default: the metric
  bool log_y = false;
  int width = 900, height = 560;
};

// (step, value) of every record of RUN/metrics.jsonl that has `metric`.
// Throws rat::Error naming the file when it is missing or a line is not JSON,
// and listing the metrics it does have when none has `metric`.
std::vector<std::pair<double, double>> read_metric(const std::string& run_dir,
                                                   const std::string& metric);

// Writes opt.out (via a temporary name, then rename). Throws rat::Error when
// gnuplot is missing or fails.
void plot_runs(const PlotOptions& opt);

}  // namespace rat
