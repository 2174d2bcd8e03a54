// rat: build, train, evaluate, generate with and benchmark RAT language models.
#include <omp.h>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "kernels/isa.h"
#include "util/error.h"

#ifndef RAT_VERSION
#define RAT_VERSION "unknown"
#endif

namespace {

// `rat help [command ...]`: the same text as `rat [command ...] --help`.
void register_help(CLI::App& app, rat::cli::Runner& run) {
  static std::vector<std::string> path;
  auto* c = app.add_subcommand("help", "Show help for rat or a command: rat help generate");
  c->add_option("command", path, "command (and subcommand, e.g. bench model)");
  c->callback([&app, &run] {
    run = [&app] {
      CLI::App* target = &app;
      std::string usage = app.get_name();  // "rat generate", as `rat generate --help` says
      for (const std::string& name : path) {
        CLI::App* sub = nullptr;
        try {
          sub = target->get_subcommand(name);
        } catch (const CLI::OptionNotFound&) {
        }
        if (!sub || name == "help")
          throw rat::Error("help: no command '" + name + "'; `rat --help` lists them");
        target = sub;
        usage += " " + name;
      }
      // The formatter itself: App::help() would describe the `help` command,
      // the one parsed.
      std::fputs(
          target->get_formatter()->make_help(target, usage, CLI::AppFormatMode::Normal).c_str(),
          stdout);
      return 0;
    };
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rat: a native engine for RAT language models (chunked gated recurrence + inter-chunk "
      "attention) and their baselines.\nRun `rat help <command>` or `rat <command> --help` "
      "for each command."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  // The second line: which vector kernels this process runs (kernels/isa.h).
  app.set_version_flag("--version",
                       std::string("rat ") + RAT_VERSION + "\nkernels: " + rat::isa_description());
  // -t/--threads is understood after any command (options fall through to
  // here); train and serve declare their own, which also handle MPI ranks.
  int threads = 0;
  app.add_option("-t,--threads", threads, "OpenMP threads (default: all cores)")
      ->check(CLI::Range(1, 4096));
  app.fallthrough();
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
  rat::cli::register_chat(app, run);
  register_help(app, run);
  // llama-server's two-letter flags (-np slots, -ub prefill piece) are one
  // dash and two letters, which CLI11 cannot declare: spelled out here, for
  // `rat serve` only and only as whole arguments (never inside a value).
  std::vector<char*> args(argv, argv + argc);
  if (argc > 1 && std::string_view(argv[1]) == "serve")
    for (size_t i = 2; i < args.size(); ++i) {
      const std::string_view a = args[i];
      if (a == "-np") args[i] = const_cast<char*>("--parallel");
      if (a == "-ub") args[i] = const_cast<char*>("--ubatch");
      if (a == "--") break;
    }
  try {
    app.parse(int(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (threads > 0) omp_set_num_threads(threads);
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
