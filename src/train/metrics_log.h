// What a training run reports: records appended to run/metrics.jsonl (one JSON
// object a line: a logged step, or a validation), the matching console lines
// on stdout (text, or the records themselves with --json), and the progress bar
// on stderr. Under MPI only rank 0 (`lead`) writes or prints.
//
//   step record        {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu",
//                       "data_fraction"} and, with several ranks, "comm_wait_s"
//                       and "comm_fraction"
//   validation record  {"step", "val_loss", "val_ppl", "val_tokens"}
//   resume marker      {"resumed_at"}: the step a resumed run continues from,
//                      written first by the resuming process
//
// Every record also carries "time", wall-clock Unix seconds (UTC, fractional),
// and "elapsed", seconds since this process began the run (its setup
// included): a resumed run counts from its own start, so the time spent on a
// run is the sum over its processes, each ending at its last record before a
// marker or the end.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "nlohmann/json.hpp"
#include "train/evaluate.h"
#include "util/progress.h"

namespace rat {

// Time and tokens since the last step record: what its rates are taken over.
struct LogWindow {
  double start_s = 0;             // when the window opened (now_seconds())
  double data_s = 0, comm_s = 0;  // reading batches; waiting for the all-reduce
  int64_t tokens = 0, steps = 0;  // tokens over all ranks, optimiser steps
  void restart();                 // opens a new window now
};

struct StepRecord {
  int64_t step = 0;  // optimiser steps done, from 1
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, mfu = 0, data_fraction = 0;
  bool distributed = false;  // with several ranks: the communication fields below
  double comm_wait_s = 0;    // all-reduce time not hidden behind backward, per step
  double comm_fraction = 0;  // its share of the window
};

class MetricsLog {
 public:
  // quiet: no console lines; json: console lines are the records.
  // total_steps: of the whole run. on_record (if set) gets each record's JSON
  // text as it is appended to the file.
  MetricsLog(std::filesystem::path run, bool lead, bool quiet, bool json, int64_t total_steps,
             std::function<void(const std::string&)> on_record = nullptr);
  // Opens run/metrics.jsonl for appending (lead only) and shows the bar at
  // first_step (where a resumed run starts; above 0, the resume marker is written).
  void begin(int64_t first_step);
  void step(const StepRecord& r);
  void validation(int64_t step, const EvalResult& r);
  // The progress bar after each step.
  void progress(int64_t step, double loss);
  void finish() { bar_.finish(); }

 private:
  // Adds time and elapsed to j, appends it to the file and returns it as text.
  std::string write(nlohmann::json j);
  std::filesystem::path run_;
  bool lead_, quiet_, json_;
  int64_t total_;
  double start_s_;  // now_seconds() when the run began in this process
  std::ofstream file_;
  std::function<void(const std::string&)> on_record_;
  Progress bar_;
};

}  // namespace rat
