#include "train/sampler.h"

#include "data/sft.h"

#include "util/error.h"

namespace rat {

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

Sampler::Sampler(const DataSplit& split, const ModelConfig& cfg, int64_t batch_size,
                 int64_t global_batch_size, int rank, int world, uint64_t seed)
    : split_(split),
      T_(cfg.seq_len),
      bs_(batch_size),
      iii_(cfg.ignore_input_index),
      rank_(rank),
      seed_(seed) {
  if (global_batch_size % (batch_size * world))
    throw Error("data.global_batch_size " + std::to_string(global_batch_size) +
                " is not divisible by data.batch_size x ranks = " + std::to_string(batch_size) +
                " x " + std::to_string(world));
  accum_ = global_batch_size / (batch_size * world);
  const std::string& in_path = split.sft() ? split.tokenized_input_path : split.tokenized_file_path;
  inputs_ = std::make_unique<TokenFile>(in_path, int(cfg.num_bytes));
  inputs_->check_vocab(cfg.vocab_size);
  if (split.sft()) {
    labels_ = std::make_unique<TokenFile>(split.tokenized_label_path, int(cfg.num_bytes));
    if (labels_->num_tokens() != inputs_->num_tokens())
      throw Error(split.tokenized_label_path + ": " + std::to_string(labels_->num_tokens()) +
                  " labels but " + in_path + " has " + std::to_string(inputs_->num_tokens()) +
                  " inputs; SFT files must be of equal length");
  }
  const int64_t n = inputs_->num_tokens();
  int64_t limit = split.limit_tokens < 0 ? n - 1 : std::min(split.limit_tokens, n - 1);
  if (split.sft()) limit = n;
  const int64_t nsamples = limit / (global_batch_size * T_) * global_batch_size;
  if (nsamples == 0)
    throw Error(in_path + ": " + std::to_string(n) + " tokens are fewer than one global batch of " +
                std::to_string(global_batch_size) + " samples x data.seq_len " +
                std::to_string(T_) + " (+1); lower the batch or seq_len, or add data");
  per_rank_ = nsamples / world;
  steps_per_epoch_ = nsamples / global_batch_size;
}

void Sampler::micro_batch_of(int rank, int64_t step, int64_t micro, int32_t* ids,
                             int32_t* labels) const {
  const int64_t k = step * accum_ + micro;  // the rank's micro-batch counter
  for (int64_t i = 0; i < bs_; ++i) {
    int32_t* x = ids + i * T_;
    int32_t* y = labels + i * T_;
    if (split_.random() && !split_.sft()) {
      const uint64_t h = splitmix64(seed_ ^ splitmix64(uint64_t(rank) * 0x100000001b3ULL ^
                                                       splitmix64(uint64_t(k * bs_ + i))));
      const int64_t off = int64_t(h % uint64_t(inputs_->num_tokens() - T_ - 1));
      for (int64_t t = 0; t < T_; ++t) {
        x[t] = int32_t(inputs_->token(off + t));
        y[t] = x[t] == iii_ ? -100 : int32_t(inputs_->token(off + t + 1));
      }
      continue;
    }
    int64_t r;
    if (split_.random()) {
      r = int64_t(splitmix64(seed_ ^ splitmix64(uint64_t(k * bs_ + i) + uint64_t(rank))) %
                  uint64_t(per_rank_));
    } else {
      r = (k * bs_ + i) % per_rank_;  // later epochs wrap around
    }
    r += int64_t(rank) * per_rank_;
    if (!split_.sft()) {
      inputs_->sample(r, T_, iii_, x, y);
    } else {
      sft_sample(*inputs_, *labels_, r, T_, x, y);
    }
  }
}

}  // namespace rat
