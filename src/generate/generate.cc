#include "generate/generate.h"

#include <sys/resource.h>

#include <algorithm>

#include "generate/decoder.h"
#include "kernels/gemm.h"
#include "util/error.h"
#include "util/timer.h"

namespace rat {

int64_t minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_minflt);
}

void warm_up_gemm() {
  const int64_t n = 16;
  std::vector<float> a(size_t(n * n), 0.f), c(size_t(n * n));
  gemm_small({n, n, n, false, true}, a.data(), a.data(), c.data(), 0.f);
}

GenerateResult generate(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& opt, const TokenCallback& on_token) {
  const int64_t B = int64_t(prompts.size()), V = model.config().vocab_size;
  if (B == 0) throw Error("generate: no prompt");
  if (opt.max_new_tokens < 0) throw Error("--max-new-tokens must be >= 0");
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw Error("generate: a prompt is empty (at least one token is needed)");
    longest = std::max(longest, int64_t(p.size()));
  }
  GenerateResult res;
  res.ids.resize(size_t(B));
  res.finish.assign(size_t(B), "length");
  if (opt.max_new_tokens == 0) return res;
  double t0 = now_seconds();
  int64_t f0 = minor_faults();
  // The last new token is never fed back, so max_new - 1 steps at most.
  Decoder dec(model, B, longest + opt.max_new_tokens, opt.bf16_cache);
  dec.set_batch_invariant(opt.batch_invariant);
  res.cache_bytes_per_sequence = dec.cache_bytes_per_sequence();
  std::vector<TokenSampler> samplers;
  for (int64_t i = 0; i < B; ++i)
    samplers.emplace_back(opt.sampling, V, opt.seed * 0x9E3779B97F4A7C15ull + uint64_t(i) + 1);
  std::vector<std::vector<int32_t>> history(prompts);  // prompt + generated, for the penalty
  for (auto& h : history) h.reserve(h.size() + size_t(opt.max_new_tokens));
  std::vector<float> logits(size_t(B * V));
  std::vector<int64_t> active;
  std::vector<int32_t> next;
  std::vector<int64_t> still;
  res.t.setup_s = now_seconds() - t0;
  res.t.minflt_setup = minor_faults() - f0;
  res.t.prefill_each_s.reserve(size_t(B));
  std::vector<double> step_s;
  step_s.reserve(size_t(opt.max_new_tokens));

  // Returns whether sequence i goes on after choosing from its logits row.
  auto choose = [&](int64_t i, float* row) {
    const int32_t id = samplers[size_t(i)].sample(row, history[size_t(i)]);
    history[size_t(i)].push_back(id);
    res.ids[size_t(i)].push_back(id);
    bool go = on_token ? on_token(i, id) : true;
    if (!go) res.finish[size_t(i)] = "stop";
    if (go && id == opt.eos_id) res.finish[size_t(i)] = "eos", go = false;
    if (go && int64_t(res.ids[size_t(i)].size()) >= opt.max_new_tokens) go = false;
    return go;
  };

  t0 = now_seconds(), f0 = minor_faults();
  for (int64_t i = 0; i < B; ++i) {
    const double tp = now_seconds();
    const int32_t* ids = prompts[size_t(i)].data();
    const int64_t n = int64_t(prompts[size_t(i)].size());
    const int64_t piece = opt.prefill_batch > 0 ? std::min(opt.prefill_batch, n) : n;
    dec.prefill(i, ids, piece, logits.data() + i * V);
    for (int64_t at = piece; at < n; at += piece)
      dec.extend(i, ids + at, std::min(piece, n - at), logits.data() + i * V);
    res.prefill_tokens += int64_t(prompts[size_t(i)].size());
    res.t.prefill_each_s.push_back(now_seconds() - tp);
  }
  res.prefill_s = now_seconds() - t0;
  res.t.minflt_prefill = minor_faults() - f0;
  t0 = now_seconds();
  for (int64_t i = 0; i < B; ++i)
    if (choose(i, logits.data() + i * V)) active.push_back(i);
  res.t.first_token_s = now_seconds() - t0;

  t0 = now_seconds(), f0 = minor_faults();
  while (!active.empty()) {
    next.clear();
    for (int64_t i : active) next.push_back(res.ids[size_t(i)].back());
    const int64_t n = int64_t(active.size());
    const double ts = now_seconds();
    dec.step(active.data(), next.data(), n, logits.data());
    const double tc = now_seconds();
    if (res.decode_steps == 0) res.t.first_step_s = tc - ts;
    res.t.steps_s += tc - ts;
    step_s.push_back(tc - ts);
    res.decode_tokens += n;
    ++res.decode_steps;
    still.clear();
    for (int64_t r = 0; r < n; ++r)
      if (choose(active[size_t(r)], logits.data() + r * V)) still.push_back(active[size_t(r)]);
    active.swap(still);
    res.t.choose_s += now_seconds() - tc;
  }
  res.decode_s = now_seconds() - t0;
  res.t.minflt_decode = minor_faults() - f0;
  res.t.step_median_s = median(step_s);
  return res;
}

}  // namespace rat
