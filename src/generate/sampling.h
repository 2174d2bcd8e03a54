// Choosing the next token from a row of logits: greedy (argmax) or sampling
// with temperature, top-k, top-p (nucleus) and min-p filters, after an
// optional CTRL-style repetition penalty. Deterministic in the seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace rat {

struct SamplingOptions {
  bool greedy = false;  // argmax (also when temperature <= 0)
  float temperature = 1.f;
  int64_t top_k = 0;               // keep the k most likely tokens; 0: off
  float top_p = 1.f;               // keep the smallest most-likely set with mass >= p; 1: off
  float min_p = 0.f;               // keep tokens with p >= min_p * p_max; 0: off
  float repetition_penalty = 1.f;  // 1: off
};

// What `rat generate` samples with unless told otherwise: llama.cpp's
// defaults, so its users get the text they expect. The struct's own defaults
// (plain temperature-1 sampling) stay those of the APIs (serve, eval gen).
inline SamplingOptions interactive_sampling() {
  SamplingOptions s;
  s.temperature = 0.8f, s.top_k = 40, s.top_p = 0.95f, s.min_p = 0.05f;
  return s;
}

// Throws rat::Error naming the flag (llama.cpp's spelling) when a value is out
// of range: temperature >= 0, top_k >= 0, top_p in (0, 1], min_p in [0, 1],
// repetition_penalty > 0; NaN is out of every range.
void check_sampling(const SamplingOptions& s);

// CTRL (Keskar et al. 2019) as in common practice: for every distinct id in
// `history`, a positive logit is divided by `penalty`, a negative one
// multiplied by it. `history` must hold distinct ids (TokenSampler::sample
// deduplicates), so each id is penalised once however often it occurred.
void apply_repetition_penalty(float* logits, int64_t V, std::span<const int32_t> history,
                              float penalty);

// The largest logit's id (the lowest id among equal maxima).
int32_t argmax(const float* logits, int64_t V);

class TokenSampler {
 public:
  TokenSampler(const SamplingOptions& opt, int64_t vocab, uint64_t seed);
  // The next id. logits [V] are modified (penalty, temperature); history is
  // every id of the sequence so far (prompt and generated).
  int32_t sample(float* logits, std::span<const int32_t> history);
  // The filtered, renormalised distribution sample() draws from (ids with
  // their probabilities, most likely first), for tests and --json.
  const std::vector<std::pair<int32_t, float>>& candidates(const float* logits);

 private:
  SamplingOptions opt_;
  int64_t V_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_, seen_;
  std::vector<std::pair<int32_t, float>> cand_;
};

}  // namespace rat
