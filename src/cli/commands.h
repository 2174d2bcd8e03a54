// Each subcommand registers its flags (name, default, help: declared once)
// and returns the function that runs it.
#pragma once

#include <functional>
#include <string>

#include "CLI/CLI.hpp"

namespace rat::cli {

using Runner = std::function<int()>;

void register_eval(CLI::App& app, Runner& run);
void register_bench(CLI::App& app, Runner& run);
void register_train(CLI::App& app, Runner& run);
void register_tokenize(CLI::App& app, Runner& run);
void register_generate(CLI::App& app, Runner& run);
// Called by register_bench: adds `rat bench model` (src/cli/bench_model.cc).
void register_bench_model(CLI::App* bench, Runner& run);


}  // namespace rat::cli
