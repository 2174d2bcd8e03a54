// The generation loop: prompts of different lengths prefilled into one
// Decoder, then decoded together one token per step, each sequence sampled
// with its own generator so its output does not depend on its batch mates.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "generate/sampling.h"
#include "model/model.h"

namespace rat {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  uint64_t seed = 0;        // sequence i draws from a generator seeded by (seed, i)
  int32_t eos_id = -1;      // generation of a sequence ends after this id; -1: never
  bool bf16_cache = false;  // see Decoder
  // Each sequence's logits bit for bit as if decoded alone, whatever the
  // others (Decoder::set_batch_invariant); slower from three sequences on.
  bool batch_invariant = false;
  // Prompt tokens per prefill pass (llama.cpp's -b): a longer prompt is
  // prefilled in pieces, the first by Decoder::prefill, the rest by
  // Decoder::extend, which bounds the activations a pass needs; 0: the whole
  // prompt in one pass.
  int64_t prefill_batch = 0;
};

// Where a run's time went, for `rat generate --timings`: what a cold start
// pays (first plans, page faults) is told apart from the steady decode rate.
// minflt: minor page faults (getrusage) during that phase.
struct GenerateTimings {
  double setup_s = 0;        // Decoder (caches) and samplers
  double first_token_s = 0;  // choosing the first tokens from the prefill's logits
  double first_step_s = 0;   // the first decode step (plans for its batch size)
  double steps_s = 0;        // every Model::step, the first included
  double step_median_s = 0;  // the median step (what `rat bench model` reports)
  double choose_s = 0;       // sampling and on_token (detokenize, print) after steps
  int64_t minflt_setup = 0, minflt_prefill = 0, minflt_decode = 0;
  std::vector<double> prefill_each_s;  // per prompt, in order
};

struct GenerateResult {
  std::vector<std::vector<int32_t>> ids;  // generated ids per prompt (eos included)
  std::vector<std::string> finish;        // "length", "eos" or "stop" per prompt
  int64_t prefill_tokens = 0, decode_tokens = 0, decode_steps = 0;
  double prefill_s = 0, decode_s = 0;  // wall time of prefill (all prompts) and of the steps
  int64_t cache_bytes_per_sequence = 0;
  GenerateTimings t;
};

// Minor page faults of this process so far (getrusage).
int64_t minor_faults();

// Pays oneDNN's one-time cost on tiny operands: its first sgemm call (the
// attention tiles' gemm_small) generates every GEMM kernel of the library,
// 0.1-0.3 s whatever the sizes, which a cold `rat generate` otherwise paid
// inside its first prefill. Thread-safe: callers overlap it with loading the
// weights.
void warm_up_gemm();

// on_token(i, id) is called as soon as prompt i's next id is chosen; returning
// false ends that sequence ("stop", e.g. a stop string was produced).
using TokenCallback = std::function<bool(int64_t, int32_t)>;

GenerateResult generate(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& opt, const TokenCallback& on_token = {});

}  // namespace rat
