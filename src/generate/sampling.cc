#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

#include "util/error.h"

namespace rat {

void check_sampling(const SamplingOptions& s) {
  auto bad = [](const char* flag, double v, const char* expected) {
    char num[32];
    std::snprintf(num, sizeof num, "%g", v);
    throw Error(std::string(flag) + " " + num + ": expected " + expected);
  };
  if (!(s.temperature >= 0)) bad("--temp", s.temperature, "a number >= 0 (0: greedy)");
  if (s.top_k < 0) bad("--top-k", double(s.top_k), "an integer >= 0 (0: off)");
  if (!(s.top_p > 0 && s.top_p <= 1)) bad("--top-p", s.top_p, "a number in (0, 1] (1: off)");
  if (!(s.min_p >= 0 && s.min_p <= 1)) bad("--min-p", s.min_p, "a number in [0, 1] (0: off)");
  if (!(s.repetition_penalty > 0))
    bad("--repeat-penalty", s.repetition_penalty, "a number > 0 (1: off)");
}

void apply_repetition_penalty(float* logits, int64_t V, std::span<const int32_t> history,
                              float penalty) {
  if (penalty == 1.f) return;
  // Dividing a positive logit and multiplying a negative one both lower it
  // (for penalty > 1), whatever its sign.
  for (int32_t id : history) {
    if (id < 0 || id >= V) continue;
    float& l = logits[id];
    l = l > 0.f ? l / penalty : l * penalty;
  }
}

int32_t argmax(const float* logits, int64_t V) {
  int64_t best = 0;
  for (int64_t v = 1; v < V; ++v)
    if (logits[v] > logits[best]) best = v;
  return int32_t(best);
}

TokenSampler::TokenSampler(const SamplingOptions& opt, int64_t vocab, uint64_t seed)
    : opt_(opt), V_(vocab), rng_(seed) {
  if (!opt.greedy && opt.temperature > 0.f) {
    if (opt.top_k < 0) throw Error("--top-k must be >= 0 (0 turns it off)");
    if (!(opt.top_p > 0.f && opt.top_p <= 1.f)) throw Error("--top-p must be in (0, 1]");
    if (!(opt.min_p >= 0.f && opt.min_p <= 1.f)) throw Error("--min-p must be in [0, 1]");
  }
  if (!(opt.repetition_penalty > 0.f)) throw Error("--repetition-penalty must be positive");
  order_.resize(size_t(vocab));
  cand_.reserve(size_t(vocab));
  seen_.reserve(1024);
}

const std::vector<std::pair<int32_t, float>>& TokenSampler::candidates(const float* logits) {
  cand_.clear();
  if (opt_.greedy || opt_.temperature <= 0.f) {
    cand_.emplace_back(argmax(logits, V_), 1.f);
    return cand_;
  }
  // Most likely first (ties: lower id first, so the order is deterministic).
  std::iota(order_.begin(), order_.end(), 0);
  const int64_t k = opt_.top_k > 0 ? std::min(opt_.top_k, V_) : V_;
  auto cmp = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), cmp);
  // Softmax of logits / T over the top-k survivors (double: exact enough to cut at top_p).
  const double inv_t = 1.0 / double(opt_.temperature), mx = double(logits[order_[0]]);
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += std::exp((double(logits[order_[size_t(i)]]) - mx) * inv_t);
  double cum = 0, kept = 0;
  const double p_max = 1.0 / sum;  // the first token's probability
  for (int64_t i = 0; i < k; ++i) {
    const double p = std::exp((double(logits[order_[size_t(i)]]) - mx) * inv_t) / sum;
    if (i > 0 && cum >= double(opt_.top_p)) break;       // nucleus reached (always keep one)
    if (i > 0 && p < double(opt_.min_p) * p_max) break;  // sorted: the rest are smaller
    cand_.emplace_back(order_[size_t(i)], float(p));
    cum += p;
    kept += p;
  }
  for (auto& c : cand_) c.second = float(double(c.second) / kept);
  return cand_;
}

int32_t TokenSampler::sample(float* logits, std::span<const int32_t> history) {
  if (opt_.repetition_penalty != 1.f) {
    seen_.assign(history.begin(), history.end());
    std::sort(seen_.begin(), seen_.end());
    seen_.erase(std::unique(seen_.begin(), seen_.end()), seen_.end());
    apply_repetition_penalty(logits, V_, seen_, opt_.repetition_penalty);
  }
  const auto& c = candidates(logits);
  if (c.size() == 1) return c[0].first;
  // Inverse CDF with one uniform draw (53-bit double from the 64-bit engine).
  const double u = double(rng_() >> 11) * 0x1.0p-53;
  double cum = 0;
  for (const auto& [id, p] : c) {
    cum += double(p);
    if (u < cum) return id;
  }
  return c.back().first;
}

}  // namespace rat
