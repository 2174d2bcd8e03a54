// Incremental decoding of a Model (SPEC.md "Generation state"): a fixed number
// of slots, each holding one sequence's per-layer state (a DecodeState),
// allocated once for (max_batch, max_len). prefill() fills a slot from a whole
// prompt (Model::prefill: the ordinary chunked, parallel forward, each mixer's
// state lifted out of it); step() then advances any set of slots by one token
// each (Model::step), every slot at its own position, so prompts of different
// lengths decode together. Prefill + steps give the logits of one full
// forward over the same tokens. The Decoder itself only keeps the books:
// how many tokens each slot holds, and that a request fits them.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "model/decode_state.h"
#include "model/model.h"

namespace rat {

class Decoder {
 public:
  // max_len: the longest sequence (prompt + generated) a slot may hold.
  // bf16_cache: keep attention K/V and RAT chunk states as bf16 (half the
  // bytes per step; logits then differ from the full forward by bf16 rounding).
  Decoder(Model& model, int64_t max_batch, int64_t max_len, bool bf16_cache = false);
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Restarts slot `slot` with a prompt of n >= 1 tokens (ids checked against
  // the vocabulary); logits [V] receives the prediction after its last token.
  void prefill(int64_t slot, const int32_t* ids, int64_t n, float* logits);
  // Continues slot `slot` from the tokens it holds with n >= 1 more in one
  // parallel pass (Model::extend); logits [V] after the last. Equals prefill
  // of the whole sequence, or steps, up to float rounding (any split: pieces
  // may start and end anywhere in a RAT chunk or a local-attention window).
  // A slot holding nothing starts afresh.
  void extend(int64_t slot, const int32_t* ids, int64_t n, float* logits);
  // Appends ids[i] to slot slots[i] for i < n (distinct slots, each holding at
  // least one token and fewer than max_len); logits [n, V] written.
  // Allocation-free after the first call with this n (oneDNN caches its plan).
  void step(const int64_t* slots, const int32_t* ids, int64_t n, float* logits);

  int64_t length(int64_t slot) const { return len_[size_t(slot)]; }
  // Marks slot `slot` as holding `len` tokens (0 <= len < max_len) whose
  // state was written into state() from outside (serve's slot files), or
  // truncates it to its first len tokens where every layer's state allows
  // (DecodeState::can_truncate; serve's prefix reuse checks that first).
  void set_length(int64_t slot, int64_t len);
  int64_t max_batch() const { return max_batch_; }
  int64_t max_len() const { return max_len_; }
  // Bytes of per-layer state (all slots) and for one slot.
  int64_t cache_bytes() const { return state_->cache_bytes(); }
  int64_t cache_bytes_per_sequence() const { return cache_bytes() / max_batch_; }
  Model& model() { return model_; }
  DecodeState& state() { return *state_; }
  // Every byte the decoder holds (caches, step scratch, residual rows): what a
  // memory budget must cover besides the weights and the model's own
  // forward scratch.
  int64_t total_bytes() const;

  // Benchmarks only: marks every slot as holding `len` tokens whose cached
  // states are random numbers (DecodeState::fill_random), so a step at
  // position `len` can be timed without first prefilling max_batch x len
  // tokens.
  void fill_random(int64_t len, uint64_t seed);

  // Batch-invariant steps (`--batch-invariant`): a slot's logits are then bit
  // for bit the same whatever other slots step with it, at a cost in speed
  // from three rows on: every product of a step computes its rows as one-row
  // products would (kernels/gemm.h's RowInvariantProducts), and RAT's steps do
  // not split their products to overlap the cache sweeps. Everything else a
  // step does is per slot already. Prefill and extend are one slot's own.
  void set_batch_invariant(bool on);
  bool batch_invariant() const { return batch_invariant_; }

  // Tests and tuning: RAT steps of at least min_rows rows and min_work cache
  // work overlap their GEMM slices (heads per in_proj slice) with the cache
  // sweeps (see DecodeState::overlap_min_rows); 0, 0 makes every multi-thread
  // step do so.
  void set_overlap(int64_t min_rows, int64_t min_work, int64_t heads);

 private:
  void check_ids(const int32_t* ids, int64_t n) const;

  Model& model_;
  int64_t max_batch_, max_len_;
  std::unique_ptr<DecodeState> state_;
  std::vector<int64_t> len_;  // tokens held per slot
  bool batch_invariant_ = false;
  // The overlap threshold not in use: swapped with the state's on each change.
  int64_t overlap_rows_off_ = std::numeric_limits<int64_t>::max();
  std::vector<int64_t> pos_;  // positions of the current step's rows
  std::vector<char> busy_;    // slots already in the current step (distinctness check)
};

}  // namespace rat
