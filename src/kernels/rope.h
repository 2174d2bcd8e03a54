// Rotary position encoding, rotate-half layout (SPEC.md "Positional
// encodings"): for each head, pairs (x_i, x_{i+P/2}) rotate by pos * inv_freq_i,
// inv_freq_i = base^(-2i/P). RoPE uses the token position; interrope uses the
// chunk index t div L.
#pragma once

#include <cstdint>
#include <vector>

namespace rat {

// cos/sin of pos * inv_freq_i for pos in [0, max_pos), i in [0, P/2).
struct RopeTable {
  int64_t P = 0, max_pos = 0;
  double base = 10000.0;
  std::vector<float> cos, sin;  // [max_pos, P/2]
  void build(int64_t P, int64_t max_pos, double base);
  void ensure(int64_t P, int64_t max_pos, double base);  // rebuilds only if needed
};

// x: rows of `nheads` heads of width P, row stride ld. Row n sits at token
// position t = t0 + (n mod T) (rows are [B, T] flattened) and is rotated by the
// table entry at pos = t / div (div = 1 for RoPE, L for interrope).
// sign = +1 applies the rotation (forward); sign = -1 applies its inverse,
// which is the backward of the rotation (it is orthogonal).
void rope_apply(const RopeTable& tab, float* x, int64_t B, int64_t T, int64_t t0, int64_t nheads,
                int64_t ld, int64_t div, int sign);

// One head of width tab.P rotated by the table entry `pos` (decode steps),
// src -> dst (may alias), on the calling thread only: the same arithmetic as
// rope_apply, so a step rotates exactly as the full forward does.
inline void rope_rotate_head(const RopeTable& tab, int64_t pos, const float* src, float* dst) {
  const int64_t half = tab.P / 2;
  const float* c = tab.cos.data() + pos * half;
  const float* sn = tab.sin.data() + pos * half;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    float a = src[i], b = src[i + half];
    dst[i] = a * c[i] - b * sn[i];
    dst[i + half] = b * c[i] + a * sn[i];
  }
}

}  // namespace rat
