#include "model/decode_state.h"

namespace rat {

namespace {

template <class T>
int64_t vec_bytes(const std::vector<T>& v) {
  return int64_t(v.capacity() * sizeof(T));
}

// Values in [-1, 1) from a counter hash (splitmix64's finaliser) of (h, j).
float hashed(uint64_t h, int64_t j) {
  uint64_t z = h + uint64_t(j) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return float(int64_t(z >> 40) - (int64_t(1) << 23)) / float(1 << 23);
}

void fill(std::vector<float>& v, uint64_t h) {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < int64_t(v.size()); ++j) v[size_t(j)] = hashed(h, j);
}

// bf16 rows: the same kind of values, rounded a block at a time.
void fill(std::vector<uint16_t>& v, uint64_t h) {
  constexpr int64_t kBlock = 1024;
  const int64_t n = int64_t(v.size());
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    float row[kBlock];
    const int64_t m = std::min(kBlock, n - j0);
    for (int64_t r = 0; r < m; ++r) row[r] = hashed(h, j0 + r);
    to_bf16(row, v.data() + j0, m);
  }
}

}  // namespace

int64_t StepScratch::bytes() const {
  int64_t b = 0;
  for (const auto* v : {&x, &xm, &hf, &u, &rstd, &proj, &proj_t, &out, &out_t, &thread_scratch})
    b += vec_bytes(*v);
  return b + vec_bytes(u16) + vec_bytes(out16);
}

int64_t DecodeState::cache_bytes() const {
  int64_t b = 0;
  for (const RatState& s : rat) b += s.cache_bytes();
  for (const KvState& s : attention) b += s.cache_bytes();
  for (const KvState& s : local) b += s.cache_bytes();
  for (const RnnState& s : rnn) b += s.cache_bytes();
  return b;
}

int64_t DecodeState::bytes() const {
  int64_t b = cache_bytes() + scratch.bytes();
  for (const RatState& s : rat) b += vec_bytes(s.in16_blocked);
  return b;
}

namespace {

// Copies n values at element offset `from` to offset `to` of a KvRows' k and v.
void copy_kv(KvRows& kv, int64_t from, int64_t to, int64_t n) {
  if (kv.bf16) {
    std::copy_n(kv.k16.data() + from, n, kv.k16.data() + to);
    std::copy_n(kv.v16.data() + from, n, kv.v16.data() + to);
  } else {
    std::copy_n(kv.k.data() + from, n, kv.k.data() + to);
    std::copy_n(kv.v.data() + from, n, kv.v.data() + to);
  }
}

void copy_row(std::vector<float>& v, int64_t from, int64_t to, int64_t width) {
  std::copy_n(v.data() + from * width, width, v.data() + to * width);
}

// K, V of one slot of a KvState [S, H, R, P]: the rows a step at position len
// can read (all R of a ring once it has wrapped).
void copy_kv_slot(KvState& s, int64_t S, int64_t from, int64_t to, int64_t len) {
  if (s.heads == 0) return;
  const int64_t per_slot = int64_t(s.kv.bf16 ? s.kv.k16.size() : s.kv.k.size()) / S;
  const int64_t P = per_slot / (s.heads * s.rows), rows = std::min(len, s.rows);
  for (int64_t h = 0; h < s.heads; ++h)
    copy_kv(s.kv, (from * s.heads + h) * s.rows * P, (to * s.heads + h) * s.rows * P, rows * P);
}

}  // namespace

void DecodeState::copy_slot(int64_t from, int64_t to, int64_t len) {
  if (from == to) return;
  const int64_t S = max_batch;
  for (RatState& s : rat) {
    // kv [H, S, C, P]: chunk c's row is written when its last token is.
    const int64_t D = int64_t(s.run_k.size()) / S;
    const int64_t P = D / s.heads, rows = std::min(s.chunks, len / s.chunk_size);
    for (int64_t h = 0; h < s.heads; ++h)
      copy_kv(s.kv, (h * S + from) * s.chunks * P, (h * S + to) * s.chunks * P, rows * P);
    copy_row(s.run_k, from, to, D), copy_row(s.run_v, from, to, D);
  }
  for (KvState& s : attention) copy_kv_slot(s, S, from, to, len);
  for (KvState& s : local) copy_kv_slot(s, S, from, to, len);
  for (RnnState& s : rnn) copy_row(s.h, from, to, int64_t(s.h.size()) / S);
}

bool DecodeState::can_truncate(int64_t held, int64_t k, bool recurrent_at_k) const {
  if (k == held) return true;
  if (k < 0 || k > held) return false;
  if (!rnn.empty() && !recurrent_at_k) return false;
  for (const RatState& s : rat)
    if (k % s.chunk_size != 0 && !recurrent_at_k) return false;
  // The ring's R = window + 1 rows hold positions held - R .. held - 1; query
  // k reads max(0, k - (R - 1)) .. k - 1 (R == max_len: never wraps, any k).
  for (const KvState& s : local)
    if (std::max<int64_t>(0, k - (s.rows - 1)) < held - s.rows) return false;
  return true;
}

int64_t DecodeState::recurrent_floats() const {
  int64_t n = 0;
  for (const RnnState& s : rnn) n += int64_t(s.h.size()) / max_batch;
  for (const RatState& s : rat) n += 2 * int64_t(s.run_k.size()) / max_batch;
  return n;
}

void DecodeState::save_recurrent(int64_t slot, float* out) const {
  auto take = [&](const std::vector<float>& v) {
    const int64_t w = int64_t(v.size()) / max_batch;
    out = std::copy_n(v.data() + slot * w, w, out);
  };
  for (const RnnState& s : rnn) take(s.h);
  for (const RatState& s : rat) take(s.run_k), take(s.run_v);
}

void DecodeState::load_recurrent(int64_t slot, const float* in) {
  auto put = [&](std::vector<float>& v) {
    const int64_t w = int64_t(v.size()) / max_batch;
    std::copy_n(in, w, v.data() + slot * w);
    in += w;
  };
  for (RnnState& s : rnn) put(s.h);
  for (RatState& s : rat) put(s.run_k), put(s.run_v);
}

void DecodeState::fill_random(uint64_t seed) {
  uint64_t n = 0;  // a different stream per buffer
  auto h = [&] { return seed * 0x9E3779B97F4A7C15ull + (++n) * 0xD1B54A32D192ED03ull; };
  auto fill_kv = [&](KvRows& kv) {
    fill(kv.k, h()), fill(kv.v, h()), fill(kv.k16, h()), fill(kv.v16, h());
  };
  for (RatState& s : rat) fill_kv(s.kv), fill(s.run_k, h()), fill(s.run_v, h());
  for (KvState& s : attention) fill_kv(s.kv);
  for (KvState& s : local) fill_kv(s.kv);
  for (RnnState& s : rnn) fill(s.h, h());
}

}  // namespace rat
