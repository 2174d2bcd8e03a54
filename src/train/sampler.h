// Training samples by step, as the authors' loaders cut them (SPEC.md "Data"):
//  - lm_ordered: whole samples in file order; the sample count is cut to a
//    multiple of the global batch and split into one contiguous range per rank.
//  - lm_random: windows at random token offsets (ours: a counter-based RNG of
//    (seed, rank, micro-batch), so any step can be regenerated on resume).
//  - sft_*: an inputs file and a labels file of equal length; labels are
//    stored in the same unsigned width, -100 as its two's-complement pattern.
// A micro-batch is addressed by (optimiser step, micro index), so resuming at a
// step needs no other data-loader state.
#pragma once

#include <cstdint>
#include <memory>

#include "data/tokens.h"
#include "train/experiment.h"

namespace rat {

class Sampler {
 public:
  Sampler(const DataSplit& split, const ModelConfig& cfg, int64_t batch_size,
          int64_t global_batch_size, int rank, int world, uint64_t seed);
  int64_t accumulation() const { return accum_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  const TokenFile& tokens() const { return *inputs_; }
  // ids, labels: [batch_size, T].
  void micro_batch(int64_t step, int64_t micro, int32_t* ids, int32_t* labels) const {
    micro_batch_of(rank_, step, micro, ids, labels);
  }
  // Micro-batch `micro` of step `step` that rank `rank` of `world` (the
  // constructor's) reads: a run resumed on another rank count reads the same
  // micro-batches as the run that wrote the checkpoint (train/trainer.cc).
  void micro_batch_of(int rank, int64_t step, int64_t micro, int32_t* ids, int32_t* labels) const;

 private:
  DataSplit split_;
  int64_t T_, bs_, accum_, iii_, per_rank_ = 0, steps_per_epoch_ = 0;
  int rank_;
  uint64_t seed_;
  std::unique_ptr<TokenFile> inputs_, labels_;
};

}  // namespace rat
