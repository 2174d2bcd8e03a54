#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "data/sft.h"
#include "util/error.h"

namespace rat {

namespace {

// Scores samples [first, first + count) of `total`, B at a time; fill(r, x, y)
// writes sample r's ids and labels.
template <class Fill>
EvalResult evaluate_samples(Model& model, const std::string& path, int64_t total, int64_t T,
                            int64_t B, int64_t first, int64_t count, const Fill& fill,
                            const std::function<void(int64_t)>& on_batch) {
  if (count < 0) count = total - first;
  if (first < 0 || first + count > total)
    throw Error(path + ": samples [" + std::to_string(first) + ", " +
                std::to_string(first + count) + ") requested but the file holds " +
                std::to_string(total) + " samples of length " + std::to_string(T));
  std::vector<int32_t> ids(size_t(B * T)), labels(size_t(B * T));
  double nll = 0;
  EvalResult r;
  for (int64_t s = 0; s < count; s += B) {
    const int64_t b = std::min(B, count - s);
    for (int64_t i = 0; i < b; ++i) fill(first + s + i, ids.data() + i * T, labels.data() + i * T);
    CeResult ce = model.score(ids.data(), labels.data(), b, T);  // one layer's activations
    nll += ce.loss_sum;
    r.tokens += ce.count;
    r.samples += b;
    if (on_batch) on_batch(s + b);
  }
  r.loss = r.tokens ? nll / double(r.tokens) : 0.0;
  r.ppl = std::exp(r.loss);
  return r;
}

}  // namespace

int64_t checked_eval_samples(const TokenFile& data, int64_t vocab_size, int64_t T,
                             int64_t max_samples) {
  data.check_vocab(vocab_size);
  int64_t n = data.num_samples(T);
  if (n <= 0)
    throw Error(data.path() + ": " + std::to_string(data.num_tokens()) +
                " tokens hold no sample of length " + std::to_string(T) + " (+1 label)");
  if (max_samples >= 0) n = std::min(n, max_samples);
  return n;
}

EvalResult evaluate(Model& model, const TokenFile& data, int64_t T, int64_t B, int64_t first,
                    int64_t count, const std::function<void(int64_t)>& on_batch) {
  const int64_t iii = model.config().ignore_input_index;
  return evaluate_samples(
      model, data.path(), data.num_samples(T), T, B, first, count,
      [&](int64_t r, int32_t* x, int32_t* y) { data.sample(r, T, iii, x, y); }, on_batch);
}

EvalResult evaluate_sft(Model& model, const TokenFile& inputs, const TokenFile& labels, int64_t T,
                        int64_t B, int64_t first, int64_t count,
                        const std::function<void(int64_t)>& on_batch) {
  if (T <= 0)
    throw Error(inputs.path() + ": sample length " + std::to_string(T) + ", expected T >= 1");
  return evaluate_samples(
      model, inputs.path(), inputs.num_tokens() / T, T, B, first, count,
      [&](int64_t r, int32_t* x, int32_t* y) { sft_sample(inputs, labels, r, T, x, y); }, on_batch);
}

}  // namespace rat
