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
};

struct GenerateResult {
  std::vector<std::vector<int32_t>> ids;  // generated ids per prompt (eos included)
  std::vector<std::string> finish;        // "length", "eos" or "stop" per prompt
  int64_t prefill_tokens = 0, decode_tokens = 0, decode_steps = 0;
  double prefill_s = 0, decode_s = 0;  // wall time of prefill (all prompts) and of the steps
  int64_t cache_bytes_per_sequence = 0;
};

// on_token(i, id) is called as soon as prompt i's next id is chosen; returning
// false ends that sequence ("stop", e.g. a stop string was produced).
using TokenCallback = std::function<bool(int64_t, int32_t)>;

GenerateResult generate(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& opt, const TokenCallback& on_token = {});

}  // namespace rat
