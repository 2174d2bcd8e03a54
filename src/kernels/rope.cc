#include "kernels/rope.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace rat {

void RopeTable::build(int64_t p, int64_t mp, double b) {
  RAT_ASSERT(p > 0 && p % 2 == 0 && mp >= 0);  // rotate-half pairs i with i + P/2
  P = p;
  max_pos = mp;
  base = b;
  int64_t half = P / 2;
  cos.resize(size_t(max_pos * half));
  sin.resize(size_t(max_pos * half));
  for (int64_t pos = 0; pos < max_pos; ++pos)
    for (int64_t i = 0; i < half; ++i) {
      // inv_freq and the angle in float32 as the authors' tables are built,
      // so long positions round the same way their checkpoints were trained.
      float inv_freq = 1.0f / std::pow(float(base), float(2 * i) / float(P));
      float ang = float(pos) * inv_freq;
      cos[size_t(pos * half + i)] = float(std::cos(ang));
      sin[size_t(pos * half + i)] = float(std::sin(ang));
    }
}

void RopeTable::ensure(int64_t p, int64_t mp, double b) {
  if (p != P || b != base || mp > max_pos) build(p, std::max(mp, max_pos), b);
}

void rope_apply(const RopeTable& tab, float* x, int64_t B, int64_t T, int64_t t0, int64_t nheads,
                int64_t ld, int64_t div, int sign) {
  RAT_ASSERT(x != nullptr && tab.P % 2 == 0 && ld >= nheads * tab.P && div >= 1 &&
             (sign == 1 || sign == -1));
  RAT_ASSERT(B * T == 0 || (t0 >= 0 && (t0 + T - 1) / div < tab.max_pos));
  const int64_t P = tab.P, half = P / 2;
  const float s = float(sign);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < B * T; ++n) {
    int64_t pos = (t0 + n % T) / div;
    const float* c = rope_cos(tab, pos);
    const float* sn = rope_sin(tab, pos);
    float* row = x + n * ld;
    for (int64_t h = 0; h < nheads; ++h) rope_rotate(row + h * P, row + h * P, c, sn, half, s);
  }
}

}  // namespace rat
