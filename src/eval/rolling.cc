#include "eval/rolling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "model/model.h"
#include "util/error.h"

namespace rat {

std::vector<RollingWindow> rolling_windows(int64_t n, int64_t T, int64_t S) {
  if (T < 1) throw Error("--seq-len " + std::to_string(T) + ": expected a window of >= 1 token");
  if (S < 1 || S > T)
    throw Error("--stride " + std::to_string(S) + ": expected 1 <= S <= --seq-len " +
                std::to_string(T) + " (a longer stride would leave tokens unscored)");
  if (n < 1) throw Error("the text has no tokens to score");
  std::vector<RollingWindow> w;
  w.reserve(size_t(1 + (std::max<int64_t>(n - T, 0) + S - 1) / S));
  int64_t prev = 0;  // labels z[1 .. prev] are scored
  for (int64_t k = 0; prev < n; ++k) {
    const int64_t end = std::min(T + k * S, n);  // the window's last label
    const int64_t len = std::min(T, end);
    const int64_t begin = end - len;
    w.push_back({begin, len, prev - begin});
    prev = end;
  }
  return w;
}

double RollingResult::mean_nll() const { return nll / double(tokens); }
double RollingResult::ppl() const { return std::exp(mean_nll()); }
double RollingResult::bpb() const { return nll / (std::log(2.0) * double(bytes)); }

double RollingResult::mean_nll_stderr() const {
  if (tokens < 2) return std::numeric_limits<double>::quiet_NaN();
  const double n = double(tokens);
  const double var = std::max(0.0, (nll_sq - nll * nll / n) / (n - 1));
  return std::sqrt(var / n);
}
double RollingResult::ppl_stderr() const { return ppl() * mean_nll_stderr(); }
double RollingResult::bpb_stderr() const {
  return mean_nll_stderr() * double(tokens) / (std::log(2.0) * double(bytes));
}

RollingResult rolling_perplexity(Model& model, std::span<const int32_t> ids, int32_t eod,
                                 int64_t bytes, int64_t T, int64_t S, int64_t B,
                                 const std::function<void(int64_t)>& progress) {
  const ModelConfig& cfg = model.config();
  const int64_t n = int64_t(ids.size()), V = cfg.vocab_size;
  if (B < 1) throw Error("--batch-size " + std::to_string(B) + ": expected at least 1");
  if (bytes < 1) throw Error("the text has no bytes (bits per byte needs at least one)");
  const std::vector<RollingWindow> windows = rolling_windows(n, T, S);
  auto check_id = [&](int32_t id, const std::string& what) {
    // An id equal to task.ignore_index would be masked as "not scored".
    if (id < 0 || id >= V || id == cfg.ignore_index)
      throw Error(what + " " + std::to_string(id) + " is not an id of the model (vocab_size " +
                  std::to_string(V) + ")");
  };
  check_id(eod, "the end-of-document id");
  for (int64_t i = 0; i < n; ++i) check_id(ids[size_t(i)], "text token " + std::to_string(i));

  RollingResult r;
  r.bytes = bytes;
  r.windows = int64_t(windows.size());
  const int64_t L = windows[0].len;  // every window has min(T, n) tokens
  r.window_len = L;
  const int64_t rows = std::min(B, r.windows);
  std::vector<int32_t> x(size_t(rows * L)), y(size_t(rows * L));
  std::vector<float> lp(size_t(rows * L));
  auto z = [&](int64_t j) { return j == 0 ? eod : ids[size_t(j - 1)]; };
  for (int64_t w0 = 0; w0 < r.windows; w0 += rows) {
    const int64_t b = std::min(rows, r.windows - w0);
    for (int64_t i = 0; i < b; ++i) {
      const RollingWindow& w = windows[size_t(w0 + i)];
      for (int64_t p = 0; p < L; ++p) {
        x[size_t(i * L + p)] = z(w.begin + p);
        y[size_t(i * L + p)] = p >= w.first ? z(w.begin + p + 1) : int32_t(cfg.ignore_index);
      }
    }
    model.label_log_probs(x.data(), y.data(), b, L, lp.data());
    for (int64_t i = 0; i < b; ++i)
      for (int64_t p = windows[size_t(w0 + i)].first; p < L; ++p) {
        const double l = -double(lp[size_t(i * L + p)]);
        r.nll += l;
        r.nll_sq += l * l;
        ++r.tokens;
      }
    if (progress) progress(w0 + b);
  }
  return r;
}

}  // namespace rat
