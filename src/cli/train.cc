// `rat train CONFIG [key=value ...]` or `rat train experiment=NAME [...]`:
// train a model from an experiment config, a plain file or composed from a
// config tree laid out as the authors' (train/compose.h).
#include <omp.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "nlohmann/json.hpp"
#include "train/distributed.h"
#include "train/experiment_source.h"
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
  c->callback([&run] {
    run = [] {
      Experiment e = load_train_experiment(o);
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
