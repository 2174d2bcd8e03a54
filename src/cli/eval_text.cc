// `rat eval` task runner (see eval_tasks.h).
#include "cli/eval_tasks.h"
#include "util/error.h"

namespace rat::cli {

int run_eval_text(const EvalOpts&) { throw Error("rat eval --text: not built yet"); }

}  // namespace rat::cli
