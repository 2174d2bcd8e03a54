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
// `rat bench model`, added under the `bench` subcommand that register_bench made.
void register_bench_model(CLI::App& bench, Runner& run);
void register_train(CLI::App& app, Runner& run);
void register_tokenize(CLI::App& app, Runner& run);
void register_generate(CLI::App& app, Runner& run);
void register_sft_data(CLI::App& app, Runner& run);
void register_plot(CLI::App& app, Runner& run);
void register_metrics(CLI::App& app, Runner& run);
void register_tasks(CLI::App& app, Runner& run);
void register_score(CLI::App& app, Runner& run);
void register_serve(CLI::App& app, Runner& run);
void register_chat(CLI::App& app, Runner& run);

}  // namespace rat::cli
