// `rat eval` task runner (see eval_tasks.h).
#include "cli/eval_tasks.h"
#include "util/error.h"

namespace rat::cli {

int run_eval_gen(const EvalOpts&) { throw Error("rat eval: this task is not built yet"); }

}  // namespace rat::cli
