#include "train/memory_plan.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "kernels/gemm.h"
#include "model/mixer_kinds.h"
#include "model/model.h"
#include "model/params.h"

namespace rat {

namespace {

constexpr int64_t kF32 = 4;

// What a sharding strategy divides among the ranks: the one place its effect
// on the plan is decided (trainer.fsdp.sharding_strategy; train/trainer.cc).
// NO_SHARD divides nothing; ZERO1 the optimiser state. A stage that also
// shards gradients or weights sets those fields here and the lines follow.
struct Sharded {
  bool optimizer = false, gradients = false, weights = false;
};
Sharded sharded_parts(const Experiment& e, int ranks) {
  Sharded s;
  if (ranks <= 1) return s;  // one rank: nothing to divide (the trainer's `sharded_`)
  s.optimizer = e.shard_optimizer;
  // SHARD_GRAD_OP: backward writes the whole buffer, but each bucket's pages
  // that other ranks own are released once its reduce-scatter completes, so
  // what stays is the shard (plus the buckets in flight: the communication line).
  s.gradients = e.shard_gradients;
  return s;
}

// Rank r's share of n floats: [n r / N, n (r+1) / N) (distributed.h shard_of).
int64_t shard_floats(int64_t n, int rank, int ranks) {
  return n * (rank + 1) / ranks - n * rank / ranks;
}

// The optimiser's state tensors per parameter (optimizer.h Optimizer::state()).
int optimizer_buffers(const Experiment& e) {
  if (e.optimizer == "adamw" || e.optimizer == "adam") return 2;  // exp_avg, exp_avg_sq
  if (e.optimizer == "rmsprop") return 1 + (e.momentum > 0) + (e.centered ? 1 : 0);
  return e.momentum > 0 ? 1 : 0;  // sgd: momentum_buffer
}

// Whether the run scores validation batches (Trainer::validate): they reuse
// the training buffers but put the blocks' intermediates in the shared scratch.
bool validates(const Experiment& e) {
  const std::string& in = e.val.sft() ? e.val.tokenized_input_path : e.val.tokenized_file_path;
  return !in.empty() && e.val_samples != 0;
}

// The widest input or output of the step's matrix products, per token: the
// bf16 products round both operands into buffers kept per thread
// (kernels/gemm.cc pack_bf16), as large as the largest A and B seen.
int64_t widest_linear(const ModelConfig& c) {
  int64_t w = std::max(c.d_model, c.ffn.d_ffn * (c.ffn.act == Activation::kSwiglu ? 2 : 1));
  for (const MixerConfig& m : c.layers)
    w = std::max(w, mixer_kind_info(m.kind).in_proj_width(c, m));
  return w;
}

// Rows of logits the fused head and loss hold at once (kernels/cross_entropy.cc:
// 8 Mi floats, at least one row).
int64_t logit_rows(int64_t N, int64_t V) {
  return std::max<int64_t>(1, std::min<int64_t>(N, (int64_t(8) << 20) / V));
}

std::string mib(int64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", double(b) / 1048576.0);
  return s;
}

int64_t read_cgroup_limit() {
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream f(path);
    std::string v;
    if (!(f >> v) || v == "max") continue;
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    // cgroup v1 writes "no limit" as a page-rounded 2^63.
    if (end && *end == '\0' && n > 0 && n < (int64_t(1) << 60)) return n;
  }
  return -1;
}

}  // namespace

int64_t MemoryPlan::total() const {
  int64_t t = 0, phase = 0;
  for (const MemoryLine& l : lines) {
    if (l.transient)
      phase = std::max(phase, l.bytes);
    else
      t += l.bytes;
  }
  return t + phase;
}

int64_t MemoryPlan::bytes(const std::string& name) const {
  for (const MemoryLine& l : lines)
    if (l.name == name) return l.bytes;
  return 0;
}

MemoryPlan plan_memory(const Experiment& e, int rank, int ranks, bool mpi) {
  const ModelConfig& c = e.model;
  const ParamLayout layout(c);
  const int64_t n = layout.total(), B = e.batch_size, T = c.seq_len, N = B * T;
  const int64_t D = c.d_model, V = c.vocab_size;
  const Sharded sh = sharded_parts(e, ranks);
  auto part = [&](bool sharded) { return sharded ? shard_floats(n, rank, ranks) : n; };
  char note[160];
  MemoryPlan p;
  p.rank = rank, p.ranks = ranks;
  auto line = [&](const char* name, int64_t bytes, const std::string& how, bool transient = false) {
    p.lines.push_back({name, bytes, how, transient});
  };

  // Model: the flat f32 parameters (the master weights, also in bf16 runs: the
  // products round them per call, no bf16 copy is kept while they change).
  std::snprintf(note, sizeof note, "%lld f32 parameters%s", (long long)part(sh.weights),
                sh.weights ? " (this rank's shard)" : "");
  line("weights", kF32 * part(sh.weights), note);
  std::snprintf(note, sizeof note, "f32, one per parameter%s",
                sh.gradients ? " (this rank's shard)" : "");
  line("gradients", kF32 * part(sh.gradients), note);
  const int bufs = optimizer_buffers(e);
  std::snprintf(note, sizeof note, "%s: %d f32 per parameter%s", e.optimizer.c_str(), bufs,
                sh.optimizer ? ", sharded over the ranks (ZERO1)" : "");
  line("optimizer", kF32 * bufs * part(sh.optimizer), note);

  // Activations by recomputation mode, from the blocks' buffer sizes.
  const bool scores = validates(e);
  p.activations_none = Model::plan_activations(c, B, T, Recompute::kNone, scores).total();
  p.activations_mixer = Model::plan_activations(c, B, T, Recompute::kMixer, scores).total();
  p.activations_block = Model::plan_activations(c, B, T, Recompute::kBlock, scores).total();
  const ActivationPlan a = Model::plan_activations(c, B, T, e.recompute, scores);
  std::snprintf(note, sizeof note, "B %lld x T %lld: streams %s, kept %s, recompute %s, scratch %s",
                (long long)B, (long long)T, mib(a.stream).c_str(), mib(a.kept).c_str(),
                mib(a.recompute).c_str(), mib(a.scratch).c_str());
  line("activations", a.total(), note);

  // The fused head and loss: a block of logit rows and their losses (one set:
  // only the main thread calls it).
  const int64_t rows = logit_rows(N, V);
  std::snprintf(note, sizeof note, "%lld logit rows of %lld", (long long)rows, (long long)V);
  line("logits", rows * V * kF32 + rows * 8, note);

  // bf16 products: both operands rounded into per-thread buffers, grown to the
  // largest activation (tokens x widest product) and the largest weight or
  // logit block; the main thread runs every product of a step.
  if (e.precision == Precision::kBF16) {
    const int64_t wide = widest_linear(c);
    int64_t biggest_weight = V * D;
    for (const ParamSpec& s : layout.specs())
      if (s.shape.size() == 2) biggest_weight = std::max(biggest_weight, s.numel);
    const int64_t a16 = std::max(N * wide, rows * V), b16 = std::max(biggest_weight, N * wide);
    // Without oneDNN bf16 kernels the rounded operands are also widened to
    // f32 per product (kernels/gemm.cc execute_bf16): 4 more bytes each.
    if (gemm_has_native_bf16())
      line("bf16_operands", 2 * (a16 + b16), "activations and weights rounded for the products");
    else
      line("bf16_operands", 6 * (a16 + b16),
           "activations and weights rounded for the products, and widened to f32 (no oneDNN "
           "bf16 kernels on this CPU or RAT_ISA)");
  }

  // Communication: Open MPI's non-blocking all-reduce (libnbc) takes a temporary
  // copy of each bucket in flight; the overlap keeps the whole gradient in
  // flight at the end of backward, so up to one gradient's size, freed when
  // the step's wait completes them (measured: docs/scaling.md "Memory plan: --dry-run").
  if (ranks > 1 && sh.gradients)
    line("communication", kF32 * n,
         "reduce-scatter: written gradient pages not yet released and Open MPI's temporaries, "
         "one gradient buffer (2 ranks, rat-xl width: rank 0 measured 3% above the plan, "
         "rank 1 14% below)",
         true);
  else if (ranks > 1)
    line("communication", kF32 * n, "all-reduce temporaries: up to one gradient buffer", true);
  else
    line("communication", 0, "one rank: none");

  // ZERO1's checkpoint: rank 0 gathers the whole optimiser state to write (and
  // reads it whole on resume) beside its shard, after the step's all-reduce
  // temporaries are freed: measured, the two do not add.
  if (sh.optimizer && rank == 0 && (e.save_checkpoint || e.load_checkpoint))
    line("checkpoint", kF32 * bufs * n, "rank 0 gathers the whole optimizer state to save", true);

  // The micro-batch's ids and labels (int32), and validation's own pair.
  line("data", 8 * N * (scores ? 2 : 1), "token ids and labels of a micro-batch");
  line("process", kProcessBaselineBytes + (mpi ? kMpiBaselineBytes : 0),
       mpi ? "binary, oneDNN, OpenMP, Open MPI" : "binary, oneDNN, OpenMP");
  return p;
}

MachineMemory machine_memory(int local_ranks) {
  MachineMemory m;
  m.local_ranks = std::max(1, local_ranks);
  if (const char* v = std::getenv("RAT_MEMORY_AVAILABLE_MIB"); v && *v) {
    m.available = int64_t(std::atof(v) * 1048576.0);
    m.source = "RAT_MEMORY_AVAILABLE_MIB";
    return m;
  }
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  long long kib = 0;
  while (f >> key >> kib) {
    std::getline(f, unit);
    if (key == "MemAvailable:") {
      m.available = int64_t(kib) * 1024;
      m.source = "MemAvailable";
      break;
    }
  }
  m.cgroup_limit = read_cgroup_limit();
  if (m.cgroup_limit > 0 && (m.available == 0 || m.cgroup_limit < m.available)) {
    m.available = m.cgroup_limit;
    m.source = "cgroup memory limit";
  }
  return m;
}

std::string format_bytes(int64_t b) {
  char s[32];
  const double x = double(b);
  if (x >= 1024.0 * 1048576.0)
    std::snprintf(s, sizeof s, "%.2f GiB", x / (1024.0 * 1048576.0));
  else if (x >= 1048576.0)
    std::snprintf(s, sizeof s, "%.1f MiB", x / 1048576.0);
  else
    std::snprintf(s, sizeof s, "%.1f KiB", x / 1024.0);
  return s;
}

std::string format_plan(const MemoryPlan& p) {
  std::ostringstream o;
  char row[256];
  for (const MemoryLine& l : p.lines) {
    std::snprintf(row, sizeof row, "  %-14s %12s  %s%s\n", l.name.c_str(),
                  format_bytes(l.bytes).c_str(), l.note.c_str(),
                  l.transient ? " (for a phase: the total counts the largest such line)" : "");
    o << row;
  }
  std::snprintf(row, sizeof row, "  %-14s %12s  peak\n", "total", format_bytes(p.total()).c_str());
  o << row;
  return o.str();
}

std::string does_not_fit_message(const Experiment& e, const MemoryPlan& p, const MachineMemory& m) {
  std::string knobs;
  auto add = [&](const std::string& k) { knobs += (knobs.empty() ? "" : ", ") + k; };
  if (e.recompute != Recompute::kBlock)
    add("trainer.activation_checkpointing=block (activations " +
        format_bytes(p.bytes("activations")) + " -> " + format_bytes(p.activations_block) + ")");
  if (!e.shard_optimizer && p.bytes("optimizer") > 0)
    add("trainer.fsdp.sharding_strategy=ZERO1 over more ranks (optimizer " +
        format_bytes(p.bytes("optimizer")) + " / ranks)");
  if (e.batch_size > 1) add("a smaller data.batch_size (data.global_batch_size accumulates)");
  if (knobs.empty()) knobs = "more ranks, a smaller model or data.seq_len";
  return "rank " + std::to_string(p.rank) + " of " + std::to_string(p.ranks) + " needs " +
         format_bytes(p.total()) + " but this machine has " + format_bytes(m.per_rank()) +
         " per rank (" + m.source +
         (m.local_ranks > 1 ? " / " + std::to_string(m.local_ranks) + " local ranks"
                            : std::string()) +
         "); try " + knobs +
         "; `rat train ... --dry-run` shows the plan, --no-memory-check "
         "starts anyway";
}

}  // namespace rat
