// `rat train CONFIG [key=value ...]` or `rat train experiment=NAME [...]`:
// train a model from an experiment config, a plain file or composed from a
// config tree laid out as the authors' (train/compose.h).
#include <omp.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "cli/commands.h"
#include "model/params.h"
#include "nlohmann/json.hpp"
#include "train/distributed.h"
#include "train/experiment_source.h"
#include "train/memory_plan.h"
#include "train/trainer.h"
#include "util/error.h"

namespace rat::cli {

namespace {
struct TrainOpts {
  std::string config, config_dir;
  std::vector<std::string> overrides;
  TrainOptions t;
  bool print_config = false;
  int threads = 0;  // 0: OpenMP's default, or cores / local ranks under MPI
  double comm_timeout = 900;
  bool no_overlap = false;
  bool dry_run = false, no_memory_check = false;
  int ranks = 0;  // --dry-run: plan for this many ranks (0: the launcher's, else 1)
};

void on_sigint(int) { request_stop(); }

// The config tree when neither ./configs nor --config-dir gives one: the tree
// installed beside this executable (`cmake --install`: <prefix>/bin/rat,
// <prefix>/share/rat/configs), else the tree of the checkout rat was built from.
std::string fallback_config_dir() {
#if defined(RAT_INSTALL_CONFIGS) && defined(RAT_INSTALL_BINDIR)
  std::error_code ec;
  std::filesystem::path prefix = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  for (const auto& part : std::filesystem::path(RAT_INSTALL_BINDIR))
    if (!part.empty()) prefix = prefix.parent_path();
  const std::filesystem::path installed = prefix / RAT_INSTALL_CONFIGS;
  if (!ec && std::filesystem::is_regular_file(installed / "config.yaml", ec))
    return installed.string();
#endif
  return std::string(RAT_SOURCE_DIR) + "/configs";
}

// --dry-run: the memory plan of every rank and whether it fits this machine;
// rank 0 prints all ranks' plans (they differ only in their shards), the
// others print nothing. Nothing is allocated and no run directory is written.
int dry_run(const Experiment& e, const TrainOpts& o) {
  if (launched_under_mpi()) mpi_init(nullptr, nullptr);
  const World w = world();
  const int ranks = o.ranks > 0 ? o.ranks : w.size;
  // Under a launcher its ranks on this machine share it; --ranks alone plans
  // ranks on machines like this one, one each.
  const MachineMemory m = machine_memory(o.ranks > 0 && !mpi_active() ? 1 : w.local_size);
  std::vector<MemoryPlan> plans;
  for (int r = 0; r < ranks; ++r)
    plans.push_back(plan_memory(e, r, ranks, mpi_active() || ranks > 1));
  mpi_finalize();
  if (w.rank != 0) return 0;
  int64_t peak = 0;
  for (const MemoryPlan& p : plans) peak = std::max(peak, p.total());
  const bool fits = peak <= m.per_rank();
  if (o.t.json) {
    nlohmann::json j = {{"ranks", ranks},
                        {"available_bytes", m.available},
                        {"available_source", m.source},
                        {"cgroup_limit_bytes", m.cgroup_limit},
                        {"local_ranks", m.local_ranks},
                        {"available_per_rank_bytes", m.per_rank()},
                        {"peak_bytes", peak},
                        {"fits", fits}};
    for (const MemoryPlan& p : plans) {
      nlohmann::json r = {{"rank", p.rank}, {"total_bytes", p.total()}};
      for (const MemoryLine& l : p.lines) r[l.name + "_bytes"] = l.bytes;
      for (const MemoryLine& l : p.lines)
        if (l.transient) r["transient"].push_back(l.name);
      r["activations_by_recompute_bytes"] = {{"none", p.activations_none},
                                             {"mixer", p.activations_mixer},
                                             {"block", p.activations_block}};
      j["plans"].push_back(r);
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const MemoryPlan& p0 = plans[0];
  std::printf("memory plan: %s, %lld parameters, micro-batch %lld x %lld, %s, %s, %d rank%s\n",
              e.source.c_str(), (long long)ParamLayout(e.model).total(), (long long)e.batch_size,
              (long long)e.model.seq_len, e.optimizer.c_str(),
              e.precision == Precision::kBF16 ? "bf16" : "f32", ranks, ranks > 1 ? "s" : "");
  for (size_t i = 0; i < plans.size() && i < 2; ++i) {
    if (i == 0)
      std::printf("rank 0%s:\n", ranks > 1 ? "" : " (the only rank)");
    else
      std::printf("rank 1%s:\n", ranks > 2 ? (" (ranks 1-" + std::to_string(ranks - 1) +
                                              " alike, to a float of their shards)")
                                                 .c_str()
                                           : "");
    std::printf("%s", format_plan(plans[i]).c_str());
  }
  std::printf("activations by trainer.activation_checkpointing: none %s, mixer %s, block %s\n",
              format_bytes(p0.activations_none).c_str(), format_bytes(p0.activations_mixer).c_str(),
              format_bytes(p0.activations_block).c_str());
  std::printf(
      "this machine: %s available (%s%s)%s, %s per rank\n", format_bytes(m.available).c_str(),
      m.source.c_str(),
      m.cgroup_limit > 0 && m.source != "cgroup memory limit"
          ? (", cgroup limit " + format_bytes(m.cgroup_limit)).c_str()
          : "",
      m.local_ranks > 1 ? (" / " + std::to_string(m.local_ranks) + " local ranks").c_str() : "",
      format_bytes(m.per_rank()).c_str());
  std::printf("%s: peak %s per rank\n", fits ? "fits" : "does not fit", format_bytes(peak).c_str());
  return 0;
}

Experiment load_train_experiment(const TrainOpts& o) {
  const std::string dir = o.config_dir.empty()
                              ? default_config_dir(fallback_config_dir())
                              : o.config_dir;
  return rat::load_train_experiment(o.config, o.overrides, dir);
}
}  // namespace

void register_train(CLI::App& app, Runner& run) {
  static TrainOpts o;
  auto* c = app.add_subcommand(
      "train",
      "Train a model from an experiment config (the authors' keys, SPEC.md).\n"
      "Override any key on the command line with dotted paths:\n"
      "  rat train configs/experiment/pydoc/rat-small.yaml optim.optimizer.lr=3e-4 \\\n"
      "      model.backbone.seq_cell.chunk_size=32 trainer.max_steps=200\n"
      "The authors' experiments compose from the config tree (Hydra's way: config.yaml's\n"
      "defaults list, group=option and key=value overrides, ${...} interpolations):\n"
      "  rat train experiment=fineweb_edu/rat-xl --print-config\n"
      "  rat train experiment=sft/rat-xl data._name_=narrativeqa_summary optim/optimizer=adam\n"
      "The tree is --config-dir, else ./configs when it holds config.yaml, else the installed\n"
      "share/rat/configs beside bin/rat, else rat's source checkout's. A CONFIG file with a\n"
      "`defaults:` list composes too, in the nearest folder above it holding config.yaml\n"
      "(configs/experiment/sft/rat-xl.yaml is\n"
      "experiment=sft/rat-xl). Keys rat has but the tree lacks (trainer.max_steps) take\n"
      "key=value; any other new key needs +key=value.\n"
      "The run directory (trainer.save_dir or --run-dir) receives the resolved config.yaml,\n"
      "metrics.jsonl and checkpoints/; run-dir/latest is a model directory that\n"
      "`rat eval` and `rat generate` accept. Ctrl-C finishes the step, saves and exits;\n"
      "trainer.load_checkpoint=true resumes from run-dir/latest.\n"
      "Data parallel over processes and machines: launch under Open MPI, e.g.\n"
      "  mpirun -np 2 rat train CONFIG        (one machine, 2 ranks x cores/2 threads)\n"
      "  mpirun -np 8 --hostfile hosts --bind-to none rat train CONFIG --threads 16\n"
      "data.batch_size is per rank; data.global_batch_size is over all ranks (micro-batches\n"
      "are accumulated to reach it). Only rank 0 writes the run directory (README \"Many\n"
      "machines\"). Under mpirun, "
      "`kill -USR1 <mpirun pid>` finishes the step, saves and exits (mpirun forwards it).");
  c->add_option("config", o.config, "experiment YAML (or leave out and give experiment=NAME)");
  c->add_option("overrides", o.overrides, "dotted.key=value and group=option overrides");
  c->add_option("--config-dir", o.config_dir,
                "config tree for experiment=NAME (default: ./configs if it holds config.yaml, "
                "else the installed share/rat/configs, else rat's source configs/)");
  c->add_option("--run-dir", o.t.run_dir, "run directory (default: trainer.save_dir)");
  c->add_flag("--json", o.t.json,
              "stdout is JSON only, one object a line (the records of metrics.jsonl, then a "
              "summary); other text goes to stderr");
  c->add_flag("--overwrite", o.t.overwrite,
              "replace the previous run in the run directory (only one holding a rat run: "
              "metrics.jsonl, checkpoints/, latest or config.yaml); without it a new run "
              "refuses a non-empty run directory");
  c->add_flag("--quiet", o.t.quiet, "no log lines (metrics.jsonl is still written)");
  c->add_option("--stop-after", o.t.stop_after, "stop, saving a checkpoint, after this many steps");
  c->add_flag("--print-config", o.print_config, "print the resolved config and exit");
  c->add_option("-t,--threads", o.threads,
                "OpenMP threads per rank (default: all cores; under MPI cores / ranks on "
                "this machine)")
      ->check(CLI::Range(1, 4096));
  c->add_option("--comm-timeout", o.comm_timeout,
                "under MPI: seconds a rank waits for the others before it ends the job "
                "(a rank died, hangs or the network is down)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_flag("--no-overlap", o.no_overlap,
              "under MPI: all-reduce the gradients after backward instead of overlapping "
              "them with it (for measuring the overlap)");
  c->add_option("--bucket-mb", o.t.bucket_mb,
                "under MPI: gradient bucket size of the overlapped all-reduce")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_flag("--dry-run", o.dry_run,
              "print each rank's memory plan (weights, gradients, optimizer state, activations "
              "with and without recomputation, communication buffers) and whether it fits this "
              "machine, then exit: nothing is allocated or written; --json for bytes");
  c->add_option("--ranks", o.ranks,
                "with --dry-run: plan for this many ranks, each on a machine like this one "
                "(default: the launcher's ranks, else 1)")
      ->check(CLI::Range(1, 1 << 20));
  c->add_flag("--no-memory-check", o.no_memory_check,
              "start even when the memory plan exceeds what this machine has available "
              "(a start that does not fit is otherwise refused before allocating)");
  c->callback([&run] {
    run = [] {
      Experiment e = load_train_experiment(o);
      if (o.ranks > 0 && !o.dry_run) throw Error("--ranks: only with --dry-run");
      if (o.dry_run) return dry_run(e, o);       // no data file is read
      if (!o.print_config) check_data_files(e);  // before the config is printed
      YAML::Emitter out;
      out << e.resolved;
      if (o.print_config) {
        std::printf("%s\n", out.c_str());
        return 0;
      }
      if (launched_under_mpi()) mpi_init(nullptr, nullptr);
      const World w = world();
      if (o.threads > 0)
        omp_set_num_threads(o.threads);
      else if (mpi_active())
        omp_set_num_threads(default_threads_per_rank());
      set_comm_timeout(o.comm_timeout);
      o.t.overlap = !o.no_overlap;
      if (w.rank != 0) o.t.quiet = true;
      if (!o.t.quiet && !o.t.json) std::printf("resolved config:\n%s\n---\n", out.c_str());
      if (!o.t.quiet && !o.t.json && w.size > 1)
        std::printf("data parallel: %d ranks (%d on this machine), %d threads each\n", w.size,
                    w.local_size, omp_get_max_threads());
      if (mpi_active() && w.rank == 0 && bound_cpus() > 0 && bound_cpus() < omp_get_max_threads())
        std::fprintf(stderr,
                     "warning: rank 0 runs %d threads but is bound to %d CPU(s); launch with "
                     "`mpirun --bind-to none` or `--map-by slot:PE=%d`\n",
                     omp_get_max_threads(), bound_cpus(), omp_get_max_threads());
      std::signal(SIGINT, on_sigint);
      std::signal(SIGUSR1, on_sigint);
      TrainSummary s;
      try {
        // Refused before the model is built (train/memory_plan.h); each rank checks its own.
        const MemoryPlan plan = plan_memory(e, w.rank, w.size, mpi_active());
        const MachineMemory m = machine_memory(w.local_size);
        if (!o.no_memory_check && m.available > 0 && plan.total() > m.per_rank())
          throw Error(does_not_fit_message(e, plan, m));
        s = train(e, o.t);
      } catch (const std::exception& err) {
        if (w.size == 1) throw;
        // One rank's failure must end the others, which would wait in the next
        // collective: print here (every rank may hold a different message) and abort the job.
        std::fprintf(stderr, "error: rank %d of %d: %s\n", w.rank, w.size, err.what());
        mpi_abort(1);
      }
      mpi_finalize();
      if (w.rank != 0) return 0;
      if (o.t.json) {
        nlohmann::json j = {{"steps", s.steps_done},          {"loss", s.last_loss},
                            {"val_loss", s.val_loss},         {"val_ppl", s.val_ppl},
                            {"tokens_per_s", s.tokens_per_s}, {"mfu", s.mfu},
                            {"interrupted", s.interrupted},   {"latest", s.latest_dir}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        if (s.interrupted)
          std::printf(
              "interrupted after step %lld; checkpoint saved. Resume with the same "
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
