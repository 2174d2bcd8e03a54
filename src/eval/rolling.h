// Rolling-window perplexity of a whole text (lm-eval's loglikelihood_rolling,
// HF's sliding-window perplexity, llama-perplexity): every token of the text
// is scored exactly once, each with as much context as a window of T tokens
// allows.
//
// The text's n ids x_0 .. x_{n-1} are preceded by an end-of-document id (as
// lm-eval puts its EOT token first), giving the stream z = [eod, x_0, ..,
// x_{n-1}]; predicting z[j] from z[0 .. j-1] for j = 1 .. n scores each x once.
// Window k ends at label e_k = min(T + k S, n) and scores the labels after the
// previous window's end (e_{k-1}, e_k] (window 0 scores [1, e_0]); its inputs
// are the min(T, e_k) ids z[e_k - len .. e_k - 1], so a window starts every S
// tokens and the last one is moved back to end at the text's end with a full T
// tokens of context (lm-eval's rule; HF's script lets the last window be
// short). Tokens scored in window k >= 1 see at least T - S earlier tokens.
// With S == T this is exactly lm-eval's windows (context_len 1); a text of
// n <= T tokens is one window of n tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace rat {

class Model;

// Window k of a text of n ids (see above): inputs z[begin, begin + len),
// scored labels z[begin + p + 1] for the window positions p >= first.
struct RollingWindow {
  int64_t begin = 0, len = 0, first = 0;
};

// Throws rat::Error naming --seq-len / --stride unless 1 <= S <= T (a stride
// above T would leave tokens unscored) and naming the text when n < 1.
std::vector<RollingWindow> rolling_windows(int64_t n, int64_t T, int64_t S);

struct RollingResult {
  double nll = 0;           // sum over tokens of -ln p(token | its context)
  double nll_sq = 0;        // sum of squares of the per-token NLLs
  int64_t tokens = 0;       // n: every id of the text is scored once
  int64_t bytes = 0;        // UTF-8 bytes of the text
  int64_t windows = 0;      // forward rows
  int64_t window_len = 0;   // min(T, n)
  double mean_nll() const;  // nll / tokens (nats per token)
  double ppl() const;       // exp(mean_nll)
  double bpb() const;       // nll / (ln 2 * bytes): bits per byte, tokenizer-independent
  // Standard errors, treating the per-token NLLs as independent draws (they
  // are not quite: neighbouring tokens correlate, so these understate the
  // spread between texts): the sample stddev of the token NLLs / sqrt(n),
  // then ppl's and bpb's by the delta method (d exp(m) = exp(m) dm; bpb is
  // m * n / (ln 2 * bytes), linear in m). NaN when n < 2.
  double mean_nll_stderr() const;
  double ppl_stderr() const;
  double bpb_stderr() const;
};

// Scores ids (the text, without the end-of-document id) in windows of T
// tokens every S tokens, B windows per forward (Model::label_log_probs, the
// kScore path). eod is put first (it must be a model id); every id must be in
// [0, vocab_size) (throws rat::Error naming the first offender otherwise).
// progress(windows done) after each batch.
RollingResult rolling_perplexity(Model& model, std::span<const int32_t> ids, int32_t eod,
                                 int64_t bytes, int64_t T, int64_t S, int64_t B,
                                 const std::function<void(int64_t)>& progress = nullptr);

}  // namespace rat
