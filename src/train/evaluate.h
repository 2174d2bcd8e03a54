// Evaluation over a token file (SPEC.md "Data"): every whole sample of length
// T, labels masked after ignore_input_index, loss averaged over counted labels.
#pragma once

#include <cstdint>
#include <functional>

#include "data/tokens.h"
#include "model/model.h"

namespace rat {

struct EvalResult {
  double loss = 0;     // total NLL / tokens
  double ppl = 0;      // exp(loss)
  int64_t tokens = 0;  // labels that counted (not -100)
  int64_t samples = 0;
};

// How many samples `rat eval --data` scores: the file's whole samples of
// length T (+1 label), at most max_samples (< 0: all), after checking every id
// against vocab_size. Throws rat::Error naming the file when it holds none.
int64_t checked_eval_samples(const TokenFile& data, int64_t vocab_size, int64_t T,
                             int64_t max_samples);

// Samples [first, first + count) of the file (count < 0: all), in batches of
// B, each scored by Model::score (kScore: memory of one layer's activations,
// whatever the depth). `on_batch(samples_done)` is called after each batch (progress bars).
EvalResult evaluate(Model& model, const TokenFile& data, int64_t T, int64_t B, int64_t first = 0,
                    int64_t count = -1, const std::function<void(int64_t)>& on_batch = nullptr);

// The same over an SFT pair (data.val._name_ sft_*): sample r is inputs and
// labels [rT, rT+T) as stored, so only the answer positions count.
EvalResult evaluate_sft(Model& model, const TokenFile& inputs, const TokenFile& labels, int64_t T,
                        int64_t B, int64_t first = 0, int64_t count = -1,
                        const std::function<void(int64_t)>& on_batch = nullptr);

}  // namespace rat
