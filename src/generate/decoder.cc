#include "generate/decoder.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "kernels/gemm.h"
#include "util/error.h"

namespace rat {

Decoder::Decoder(Model& model, int64_t max_batch, int64_t max_len, bool bf16_cache)
    : model_(model), max_batch_(max_batch), max_len_(max_len) {
  if (max_batch <= 0 || max_len <= 0)
    throw Error("decoder: batch " + std::to_string(max_batch) + " and length " +
                std::to_string(max_len) + " must be positive");
  state_ = model.make_decode_state(max_batch, max_len, bf16_cache);
  len_.assign(size_t(max_batch), 0);
  pos_.assign(size_t(max_batch), 0);
  busy_.assign(size_t(max_batch), 0);
}

int64_t Decoder::total_bytes() const {
  return state_->bytes() + int64_t((len_.capacity() + pos_.capacity()) * sizeof(int64_t)) +
         int64_t(busy_.capacity());
}

void Decoder::fill_random(int64_t len, uint64_t seed) {
  if (len <= 0 || len >= max_len_)
    throw Error("decoder: synthetic length " + std::to_string(len) + " must be in [1, " +
                std::to_string(max_len_) + ")");
  state_->fill_random(seed);
  std::fill(len_.begin(), len_.end(), len);
}

void Decoder::check_ids(const int32_t* ids, int64_t n) const {
  const int64_t V = model_.config().vocab_size;
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      throw Error("token id " + std::to_string(ids[i]) + " is outside the model's vocabulary [0, " +
                  std::to_string(V) + ")");
}

void Decoder::prefill(int64_t slot, const int32_t* ids, int64_t n, float* logits) {
  if (slot < 0 || slot >= max_batch_)
    throw Error("decoder: slot " + std::to_string(slot) + " out of range");
  if (n <= 0) throw Error("decoder: the prompt is empty (at least one token is needed)");
  if (n > max_len_)
    throw Error("decoder: prompt of " + std::to_string(n) + " tokens exceeds the maximum length " +
                std::to_string(max_len_));
  check_ids(ids, n);
  model_.prefill(ids, n, *state_, slot, logits);
  len_[size_t(slot)] = n;
}

void Decoder::extend(int64_t slot, const int32_t* ids, int64_t n, float* logits) {
  if (slot < 0 || slot >= max_batch_)
    throw Error("decoder: slot " + std::to_string(slot) + " out of range");
  if (n <= 0) throw Error("decoder: nothing to extend with (at least one token is needed)");
  const int64_t len = len_[size_t(slot)];
  if (n > max_len_ - len)
    throw Error("decoder: " + std::to_string(len) + " held + " + std::to_string(n) +
                " new tokens exceed the maximum length " + std::to_string(max_len_));
  check_ids(ids, n);
  model_.extend(ids, n, *state_, slot, len, logits);
  len_[size_t(slot)] = len + n;
}

void Decoder::set_length(int64_t slot, int64_t len) {
  if (slot < 0 || slot >= max_batch_ || len < 0 || len >= max_len_)
    throw Error("decoder: set_length(" + std::to_string(slot) + ", " + std::to_string(len) +
                ") out of range");
  len_[size_t(slot)] = len;
}

void Decoder::step(const int64_t* slots, const int32_t* ids, int64_t n, float* logits) {
  if (n <= 0) return;
  if (n > max_batch_)
    throw Error("decoder: step of " + std::to_string(n) + " rows exceeds the batch");
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = slots[i];
    if (s < 0 || s >= max_batch_)
      throw Error("decoder: slot " + std::to_string(s) + " out of range");
    if (len_[size_t(s)] <= 0)
      throw Error("decoder: slot " + std::to_string(s) + " was not prefilled");
    if (len_[size_t(s)] >= max_len_)
      throw Error("decoder: slot " + std::to_string(s) + " is full (" + std::to_string(max_len_) +
                  " tokens)");
    pos_[size_t(i)] = len_[size_t(s)];
  }
  // Two rows of one slot would race on its state.
  int64_t dup = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (busy_[size_t(slots[i])]) dup = slots[i];
    busy_[size_t(slots[i])] = 1;
  }
  for (int64_t i = 0; i < n; ++i) busy_[size_t(slots[i])] = 0;
  if (dup >= 0) throw Error("decoder: slot " + std::to_string(dup) + " appears twice in one step");
  check_ids(ids, n);
  const RowInvariantProducts rows(batch_invariant_);
  model_.step(ids, slots, pos_.data(), n, *state_, logits);
  for (int64_t i = 0; i < n; ++i) ++len_[size_t(slots[i])];
}

void Decoder::set_batch_invariant(bool on) {
  if (on == batch_invariant_) return;
  batch_invariant_ = on;
  // The overlapped RAT step multiplies slices of rows on single threads
  // (gemm_small_planned), outside gemm's row-invariant routing.
  std::swap(state_->overlap_min_rows, overlap_rows_off_);
}

void Decoder::set_overlap(int64_t min_rows, int64_t min_work, int64_t heads) {
  (batch_invariant_ ? overlap_rows_off_ : state_->overlap_min_rows) = min_rows;
  state_->overlap_min_work = min_work;
  state_->overlap_heads = heads;
}

}  // namespace rat
