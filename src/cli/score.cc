// `rat score`: lm-eval-harness loglikelihood requests (the work is in eval/score.h).
#include "cli/commands.h"
#include "util/error.h"

namespace rat::cli {

void register_score(CLI::App& app, Runner& run) {
  auto* c = app.add_subcommand("score", "Log-likelihood of continuations (lm-eval loglikelihood).");
  c->callback([&run] { run = []() -> int { throw Error("rat score: not built yet"); }; });
}

}  // namespace rat::cli
