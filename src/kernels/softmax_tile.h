// Row operations shared by the tiled attention kernels (attention.cc, rat_attention.cc):
// one row of a score tile, of which only columns [a, e) are visible to its query.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/vec_math.h"

namespace rat::tile {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Online softmax (forward): row holds raw scores q.k for nk keys. Turns the visible ones into
// exp(scale*s - m_new), zeroes the rest (so the P V product can run over the whole tile), and
// updates the running max m and sum l of the row; acc (the row's P V so far, P floats) is
// rescaled by exp(m_old - m_new) when the max moves. An empty range (a >= e) only zeroes.
inline void online_softmax_row(float* row, int64_t nk, int64_t a, int64_t e, float scale, float& m,
                               float& l, float* acc, int64_t P) {
  if (a >= e) {
    std::memset(row, 0, sizeof(float) * size_t(nk));
    return;
  }
  if (a > 0) std::memset(row, 0, sizeof(float) * size_t(a));
  if (e < nk) std::memset(row + e, 0, sizeof(float) * size_t(nk - e));
  float mx = scale * vec_max(row + a, e - a);  // scale > 0, so the max commutes with it
  float m_new = mx > m ? mx : m;
  float sum = vec_exp_affine_sum(row + a, e - a, scale, m_new);
  if (m_new != m) {
    float alpha = std::exp(m - m_new);  // m == -inf (first visible key): alpha = 0
    l *= alpha;
    vec_scale(acc, P, alpha);
    m = m_new;
  }
  l += sum;
}

// Backward: recompute probabilities exp(scale*s - lse) on [a, e), zero elsewhere.
inline void prob_row(float* row, int64_t nk, int64_t a, int64_t e, float scale, float lse) {
  if (a >= e) {
    std::memset(row, 0, sizeof(float) * size_t(nk));
    return;
  }
  if (a > 0) std::memset(row, 0, sizeof(float) * size_t(a));
  if (e < nk) std::memset(row + e, 0, sizeof(float) * size_t(nk - e));
  vec_exp_affine(row + a, e - a, scale, lse);
}

// Per-thread scratch that grows to the largest request and is then reused (OpenMP keeps its
// threads alive, so nothing is allocated after the first call of a given size).
inline float* thread_scratch(int slot, size_t n) {
  thread_local std::vector<float> buf[8];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// Copies rows x P floats from a strided matrix (row stride ld) into a packed one (stride P).
// The kernels pack each head's operands before their products: the model's rows are 12 KB
// (q, k, v inside the in_proj output) or L * 4 KB (RAT's chunk-final states) apart, strides
// that map every row of a tile to the same few L1/L2 sets; packed, the tiles stay cached.
inline void pack_rows(const float* src, int64_t ld, int64_t rows, int64_t P, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * P, src + r * ld, sizeof(float) * size_t(P));
}

// dst rows (stride ld) = packed src rows (stride P), or += when accumulate.
inline void unpack_rows(const float* src, int64_t rows, int64_t P, float* dst, int64_t ld,
                        bool accumulate) {
  for (int64_t r = 0; r < rows; ++r) {
    if (accumulate)
      vec_axpby(1.f, src + r * P, 1.f, dst + r * ld, P);
    else
      std::memcpy(dst + r * ld, src + r * P, sizeof(float) * size_t(P));
  }
}

}  // namespace rat::tile
