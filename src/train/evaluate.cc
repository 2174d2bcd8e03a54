#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace rat {

EvalResult evaluate(Model& model, const TokenFile& data, int64_t T, int64_t B, int64_t first,
                    int64_t count, const std::function<void(int64_t)>& on_batch) {
  const int64_t total = data.num_samples(T);
  if (count < 0) count = total - first;
  if (first < 0 || first + count > total)
    throw Error(data.path() + ": samples [" + std::to_string(first) + ", " +
                std::to_string(first + count) + ") requested but the file holds " +
                std::to_string(total) + " samples of length " + std::to_string(T));
  std::vector<int32_t> ids(size_t(B * T)), labels(size_t(B * T));
  const int64_t iii = model.config().ignore_input_index;
  double nll = 0;
  EvalResult r;
  for (int64_t s = 0; s < count; s += B) {
    const int64_t b = std::min(B, count - s);
    for (int64_t i = 0; i < b; ++i)
      data.sample(first + s + i, T, iii, ids.data() + i * T, labels.data() + i * T);
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

}  // namespace rat
