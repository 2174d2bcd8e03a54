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

// The one rotation of rat: one head of width 2 * half, rotate-half, by the angle row (c, sn)
// of a RopeTable; sign +1 applies it, -1 its inverse. src and dst may alias (element i reads
// i and i + half and writes only those). rope_apply, the decode steps and the fused RAT scan
// (forward and backward) all rotate through it, so every path rounds the same way.
inline void rope_rotate(const float* src, float* dst, const float* c, const float* sn, int64_t half,
                        float sign) {
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    const float a = src[i], b = src[i + half];
    dst[i] = a * c[i] - sign * b * sn[i];
    dst[i + half] = b * c[i] + sign * a * sn[i];
  }
}

// The angle rows of position `pos` (cos, then sin; P / 2 values each).
inline const float* rope_cos(const RopeTable& tab, int64_t pos) {
  return tab.cos.data() + pos * (tab.P / 2);
}
inline const float* rope_sin(const RopeTable& tab, int64_t pos) {
  return tab.sin.data() + pos * (tab.P / 2);
}

// One head of width tab.P rotated by the table entry `pos` (decode steps),
// src -> dst (may alias), on the calling thread only.
inline void rope_rotate_head(const RopeTable& tab, int64_t pos, const float* src, float* dst) {
  rope_rotate(src, dst, rope_cos(tab, pos), rope_sin(tab, pos), tab.P / 2, 1.f);
}

}  // namespace rat
