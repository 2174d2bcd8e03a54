#include "generate/decoder.h"

#include <algorithm>
#include <string>

#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "util/error.h"

namespace rat {

Decoder::Decoder(Model& model, int64_t max_batch, int64_t max_len, bool bf16_cache)
    : model_(model), max_batch_(max_batch), max_len_(max_len) {
  if (max_batch <= 0 || max_len <= 0)
    throw Error("decoder: batch " + std::to_string(max_batch) + " and length " +
                std::to_string(max_len) + " must be positive");
  const ModelConfig& cfg = model.config();
  const int64_t D = cfg.d_model, rows = std::max(max_len, max_batch);
  states_.resize(cfg.layers.size());
  for (size_t i = 0; i < states_.size(); ++i) {
    states_[i].bf16 = bf16_cache;
    model.mixer(i).init_state(states_[i], max_batch, max_len);
  }
  len_.assign(size_t(max_batch), 0);
  x_.assign(size_t(rows * D), 0.f);
  xm_.assign(size_t(rows * D), 0.f);
  hf_.assign(size_t(max_batch * D), 0.f);
  rstd_.assign(size_t(max_batch), 0.f);
  pos_.assign(size_t(max_batch), 0);
  busy_.assign(size_t(max_batch), 0);
}

int64_t Decoder::cache_bytes() const {
  int64_t b = 0;
  for (const MixerState& s : states_) b += s.cache_bytes();
  return b;
}

int64_t Decoder::total_bytes() const {
  auto b = [](const std::vector<float>& v) { return int64_t(v.capacity() * sizeof(float)); };
  int64_t t = b(x_) + b(xm_) + b(hf_) + b(rstd_) + int64_t(pos_.capacity() * sizeof(int64_t));
  for (const MixerState& s : states_)
    t += b(s.k) + b(s.v) + b(s.run_k) + b(s.run_v) + b(s.u) + b(s.rstd) + b(s.proj) +
         b(s.proj_t) + b(s.out) + b(s.out_t) + b(s.thread_scratch) +
         int64_t((s.k16.capacity() + s.v16.capacity() + s.u16.capacity() + s.out16.capacity() +
                  s.in16_blocked.capacity()) *
                 sizeof(uint16_t));
  return t;
}

void Decoder::fill_synthetic(int64_t len, uint64_t seed) {
  if (len <= 0 || len >= max_len_)
    throw Error("decoder: synthetic length " + std::to_string(len) + " must be in [1, " +
                std::to_string(max_len_) + ")");
  for (size_t i = 0; i < states_.size(); ++i) {
    MixerState& s = states_[i];
    for (std::vector<float>* v : {&s.k, &s.v, &s.run_k, &s.run_v}) {
      // A cheap counter hash: values in [-1, 1), different per layer and buffer.
      uint64_t h = seed * 0x9E3779B97F4A7C15ull + i * 0xD1B54A32D192ED03ull + uint64_t(v->size());
#pragma omp parallel for schedule(static)
      for (int64_t j = 0; j < int64_t(v->size()); ++j) {
        uint64_t z = h + uint64_t(j) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        (*v)[size_t(j)] = float(int64_t(z >> 40) - (int64_t(1) << 23)) / float(1 << 23);
      }
    }
    // bf16 caches: the same kind of values, rounded (row by row to bound the scratch).
    std::vector<float> row(1024);
    for (std::vector<uint16_t>* v : {&s.k16, &s.v16})
      for (size_t j = 0; j < v->size(); j += row.size()) {
        const size_t m = std::min(row.size(), v->size() - j);
        for (size_t r = 0; r < m; ++r) row[r] = float(int64_t((j + r) * 2654435761u % 2048) - 1024) / 1024.f;
        to_bf16(row.data(), v->data() + j, int64_t(m));
      }
  }
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
  const ModelConfig& cfg = model_.config();
  const int64_t D = cfg.d_model;
  if (slot < 0 || slot >= max_batch_) throw Error("decoder: slot " + std::to_string(slot) + " out of range");
  if (n <= 0) throw Error("decoder: the prompt is empty (at least one token is needed)");
  if (n > max_len_)
    throw Error("decoder: prompt of " + std::to_string(n) + " tokens exceeds the maximum length " +
                std::to_string(max_len_));
  check_ids(ids, n);
  ModelView w = model_.weights();
  float* x = x_.data();
  float* xm = xm_.data();
  embedding_forward(ids, w.wte, x, n, D);
  for (size_t i = 0; i < states_.size(); ++i) {
    Block& mixer = model_.mixer(i);
    mixer.forward(x, xm, 1, n, false);
    mixer.export_state(states_[i], slot, n);
    model_.ffn(i).forward(xm, x, 1, n, false);
  }
  // Only the last token's prediction is needed.
  rmsnorm_forward(x + (n - 1) * D, w.final_ln, hf_.data(), rstd_.data(), 1, D);
  lm_head_logits(hf_.data(), w.lm_head, logits, 1, D, cfg.vocab_size, model_.precision(),
                 model_.w16(w.lm_head, cfg.vocab_size * D));
  len_[size_t(slot)] = n;
}

void Decoder::step(const int64_t* slots, const int32_t* ids, int64_t n, float* logits) {
  const ModelConfig& cfg = model_.config();
  const int64_t D = cfg.d_model;
  if (n <= 0) return;
  if (n > max_batch_) throw Error("decoder: step of " + std::to_string(n) + " rows exceeds the batch");
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = slots[i];
    if (s < 0 || s >= max_batch_) throw Error("decoder: slot " + std::to_string(s) + " out of range");
    if (len_[size_t(s)] <= 0) throw Error("decoder: slot " + std::to_string(s) + " was not prefilled");
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
  ModelView w = model_.weights();
  float* x = x_.data();
  float* xm = xm_.data();
  embedding_forward(ids, w.wte, x, n, D);
  for (size_t i = 0; i < states_.size(); ++i) {
    model_.mixer(i).step(x, xm, slots, pos_.data(), n, states_[i]);
    model_.ffn(i).forward(xm, x, n, 1, false);  // the FFN is per token
  }
  rmsnorm_forward(x, w.final_ln, hf_.data(), rstd_.data(), n, D);
  lm_head_logits(hf_.data(), w.lm_head, logits, n, D, cfg.vocab_size, model_.precision(),
                 model_.w16(w.lm_head, cfg.vocab_size * D));
  for (int64_t i = 0; i < n; ++i) ++len_[size_t(slots[i])];
}

void Decoder::set_overlap(int64_t min_rows, int64_t min_work, int64_t heads) {
  for (MixerState& s : states_)
    s.overlap_min_rows = min_rows, s.overlap_min_work = min_work, s.overlap_heads = heads;
}

}  // namespace rat
