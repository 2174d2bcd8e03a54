// Dropout (the authors' FFN nn.Dropout, training only) with a counter-based
// mask: element i of a site keeps its value iff the top 24 bits of
// splitmix64(key + i) are >= round(p * 2^24), key = dropout_key(seed,
// stream, site). No state is carried between steps, so a run resumed from a
// checkpoint at step s draws exactly the masks of an uninterrupted one, and
// backward recomputes the forward's mask instead of storing it. Kept values
// are scaled by 1 / (1 - p) (inverted dropout, as torch).
#pragma once

#include <cstdint>

namespace rat {

// SplitMix64's output function (Steele, Lea, Flood 2014), a bijection of 64-bit words.
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The key of one site's masks: `stream` numbers the forward (the trainer
// passes (step * accum + micro) * ranks + rank), `site` the dropout in the
// model (the block index of the FFN).
inline uint64_t dropout_key(uint64_t seed, uint64_t stream, uint64_t site) {
  return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ site);
}

// Keep threshold of p on the 24-bit scale.
inline uint32_t dropout_threshold(double p) { return uint32_t(p * 16777216.0 + 0.5); }

inline bool dropout_keep(uint64_t key, uint64_t i, uint32_t threshold) {
  return uint32_t(splitmix64(key + i) >> 40) >= threshold;
}

// y[i] = r[i] + (keep(i) ? z[i] / (1 - p) : 0) over n elements (y may be r).
void dropout_add(const float* z, const float* r, float* y, int64_t n, double p, uint64_t key);

// dz[i] = keep(i) ? dy[i] / (1 - p) : 0 (the same mask as dropout_add's).
void dropout_backward(const float* dy, float* dz, int64_t n, double p, uint64_t key);

}  // namespace rat
