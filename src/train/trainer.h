// The training loop (SPEC.md "Training recipe"): micro-batches accumulated to
// the global batch, clipping by global norm, AdamW with the authors' cosine
// schedule, validation, metrics.jsonl (train/metrics_log.h), atomic
// checkpoints and resume (train/checkpointing.h), data parallel under MPI
// (train/distributed.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "train/experiment.h"

namespace rat {

struct TrainOptions {
  std::string run_dir;      // overrides trainer.save_dir when set
  bool quiet = false;       // no per-log lines on stdout
  bool json = false;        // log lines as JSON on stdout
  bool overwrite = false;   // a new run may replace a previous one in run_dir (train/run_dir.h)
  int64_t stop_after = -1;  // stop (and save) after this many steps of this run, as SIGINT would
  // Data parallelism (src/train/distributed.h; inert on one rank): overlap the
  // gradient all-reduce with backward in buckets of at least bucket_mb, or
  // reduce the whole buffer after backward.
  bool overlap = true;
  double bucket_mb = 4;
  // Called with each record as it is appended to metrics.jsonl (the same JSON
  // text, rank 0 only): the Python module's rat.train returns them.
  std::function<void(const std::string&)> on_record;
};

struct TrainSummary {
  int64_t steps_done = 0;
  double last_loss = 0, val_loss = 0, val_ppl = 0;
  double tokens_per_s = 0, mfu = 0;
  bool interrupted = false;
  std::string latest_dir;  // the model directory of the last checkpoint
};

TrainSummary train(const Experiment& e, const TrainOptions& opt);

// Set by SIGINT: the loop finishes its step, saves and returns.
void request_stop();

}  // namespace rat
