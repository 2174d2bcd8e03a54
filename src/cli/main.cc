// rat: build, train, evaluate, generate with and benchmark RAT language models.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "rat: a native engine for RAT language models (chunked gated recurrence + inter-chunk "
      "attention) and their baselines.\nRun `rat <command> --help` for each command."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  rat::cli::Runner run;
  rat::cli::register_train(app, run);
  rat::cli::register_eval(app, run);
  rat::cli::register_bench(app, run);
  rat::cli::register_bench_model(*app.get_subcommand("bench"), run);
  rat::cli::register_tokenize(app, run);
  rat::cli::register_generate(app, run);
  rat::cli::register_sft_data(app, run);
  rat::cli::register_plot(app, run);
  rat::cli::register_metrics(app, run);
  rat::cli::register_tasks(app, run);
  rat::cli::register_score(app, run);
  rat::cli::register_serve(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return run ? run() : 0;
  } catch (const rat::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory (try a smaller --batch-size or --seq-len)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
