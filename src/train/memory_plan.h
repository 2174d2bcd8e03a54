// Memory planning (`rat train CONFIG --dry-run`, issue 16): the bytes one rank
// of a training run will hold at its peak, by what holds them, computed from
// the experiment and the rank count without allocating any of it; and what
// this machine has to give each of its ranks. A real start whose plan does not
// fit is refused before the model is built (src/cli/train.cc).
//
// Everything the trainer allocates is grow-only and sized by the first step,
// so the peak is the sum of the lasting lines (the last backward of a step
// holds all of them) plus the largest of those held for one phase only. Activations come from the
// blocks' own buffer sizes (Model::plan_activations), not from a second formula.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "train/experiment.h"

namespace rat {

// One line of a plan: bytes and what they are.
struct MemoryLine {
  std::string name;  // weights, gradients, optimizer, activations, ...
  int64_t bytes = 0;
  std::string note;  // how they were counted, e.g. "2 x f32 per parameter / 4 ranks"
  // Held only for a phase and freed after it (the all-reduce's temporaries
  // until the step's wait, a checkpoint's gathered state until it is written):
  // the peak counts the largest of these, not their sum.
  bool transient = false;
};

struct MemoryPlan {
  int rank = 0, ranks = 1;
  std::vector<MemoryLine> lines;
  // The activations line under each recomputation mode (the plan uses e.recompute's).
  int64_t activations_none = 0, activations_mixer = 0, activations_block = 0;
  // The peak: every lasting line plus the largest transient one.
  int64_t total() const;
  int64_t bytes(const std::string& name) const;  // the line's bytes; 0 if absent
};

// The process's own footprint before any model exists: the binary, its
// libraries (oneDNN, OpenMP, yaml-cpp) and their first allocations, measured
// as the peak RSS of a tiny training run less its planned lines (docs/scaling.md
// "Memory plan: --dry-run"); Open MPI adds its own under a launcher.
constexpr int64_t kProcessBaselineBytes = int64_t(32) << 20;
constexpr int64_t kMpiBaselineBytes = int64_t(8) << 20;

// The plan of rank `rank` of `ranks` for experiment e. `mpi`: ranks run under
// an MPI launcher (one rank alone still loads Open MPI when launched by one).
MemoryPlan plan_memory(const Experiment& e, int rank, int ranks, bool mpi);

// What this machine offers one of its `local_ranks` ranks: MemAvailable of
// /proc/meminfo, or the cgroup's memory limit when lower, divided among them.
// RAT_MEMORY_AVAILABLE_MIB in the environment replaces the machine's figure
// (tests of the refusal; a user who wants to plan for another machine).
struct MachineMemory {
  int64_t available = 0;      // bytes for the whole machine
  int64_t cgroup_limit = -1;  // -1: none found
  std::string source;         // "MemAvailable", "cgroup memory.max", "RAT_MEMORY_AVAILABLE_MIB"
  int local_ranks = 1;
  int64_t per_rank() const { return available / std::max(1, local_ranks); }
};
MachineMemory machine_memory(int local_ranks);

// "1.25 GiB", "310.4 MiB", "12.0 KiB".
std::string format_bytes(int64_t bytes);

// The table of a plan for people (one line per entry, then the total).
std::string format_plan(const MemoryPlan& p);

// The one-line refusal of a start that does not fit: needed, available, and the
// knobs that shrink the plan (recomputation, ZERO1, smaller batch), those this
// experiment does not use yet first.
std::string does_not_fit_message(const Experiment& e, const MemoryPlan& p, const MachineMemory& m);

}  // namespace rat
