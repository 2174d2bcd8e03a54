// `rat eval`'s options, shared by its task runners. One runner per file:
//   eval.cc        flags, dispatch, and the token-file perplexity (--data)
//   eval_text.cc   --text FILE: rolling-window perplexity and bits per byte
//   eval_mc.cc     --task mc FILE: multiple choice (acc, acc_norm)
//   eval_gen.cc    --task niah|gen FILE: greedy generation, then scoring
//   eval_mqar.cc   --task mqar PREFIX: accuracy on the queried values
#pragma once

#include <cstdint>
#include <string>

namespace rat::cli {

struct EvalOpts {
  std::string model, data, text, task, file, dtype = "f32";
  int64_t seq_len = 0;              // window / context in tokens (0: the model's data.seq_len)
  int64_t batch_size = 4;           // sequences per forward pass or decode batch
  int64_t max_samples = -1;         // --data: evaluate only the first N samples
  int64_t limit = -1;               // tasks: only the first N lines / examples
  int64_t stride = 0;               // --text: window start every S tokens (0: seq_len / 2)
  int64_t max_new_tokens = -1;      // niah/gen: override each line's max_new_tokens
  int64_t max_prompt_tokens = -1;   // gen: longer prompts are cut in the middle
  std::string out;                  // niah/gen: predictions JSONL
  std::string metric;               // gen: qa_f1 | rouge_l | exact_match | edit_sim
  std::string heatmap;              // niah: depth x length PNG
  std::string cache_dtype = "f32";  // niah/gen decode cache
  bool json = false;
  // Results bit for bit the same whatever --batch-size: forward tasks run one
  // sequence per pass (the products then always have that sequence's rows),
  // niah/gen decode with the batch-invariant decoder.
  bool batch_invariant = false;
  int64_t forward_batch() const { return batch_invariant ? 1 : batch_size; }
};

int run_eval_text(const EvalOpts& o);
int run_eval_mc(const EvalOpts& o);
int run_eval_gen(const EvalOpts& o);  // o.task is "niah" or "gen"
int run_eval_mqar(const EvalOpts& o);

}  // namespace rat::cli
