#include "kernels/scan.h"

#include <algorithm>

#include "util/error.h"

namespace rat {

namespace {
// Channels are processed in blocks so that each (batch, chunk, block) task
// walks its tokens sequentially with a vector-wide state, and there are enough
// tasks to feed every thread even when B = 1 and L >= T (the rnn case).
constexpr int64_t kColBlock = 64;
}  // namespace

void chunk_scan_forward(const float* g, int64_t ld_g, const float* x, int64_t ld_x, float* h,
                        int64_t ld_h, int64_t B, int64_t T, int64_t L, int64_t D) {
  RAT_ASSERT(g != nullptr && x != nullptr && h != nullptr);
  RAT_ASSERT(B >= 0 && T >= 0 && L >= 1 && D >= 0 && ld_g >= D && ld_x >= D && ld_h >= D);
  const int64_t C = (T + L - 1) / L;
  const int64_t nblk = (D + kColBlock - 1) / kColBlock;
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t jb = 0; jb < nblk; ++jb) {
        const int64_t j0 = jb * kColBlock, j1 = std::min(D, j0 + kColBlock);
        float state[kColBlock] = {};
        const int64_t t_end = std::min(T, (c + 1) * L);
        for (int64_t t = c * L; t < t_end; ++t) {
          const int64_t n = b * T + t;
          const float* gr = g + n * ld_g;
          const float* xr = x + n * ld_x;
          float* hr = h + n * ld_h;
#pragma omp simd
          for (int64_t j = j0; j < j1; ++j) {
            const float s = scan_update(gr[j], state[j - j0], xr[j]);
            state[j - j0] = s;
            hr[j] = s;
          }
        }
      }
}

// Reverse sweep: a_l = dh_l + g_{l+1} a_{l+1} is dLoss/dh_l through all paths;
// then dx_l = (1 - g_l) a_l and dg_l = a_l (h_{l-1} - x_l).
void chunk_scan_backward(const float* g, int64_t ld_g, const float* x, int64_t ld_x, const float* h,
                         const float* dh, int64_t ld_h, float* dx, int64_t ld_dx, float* dg,
                         int64_t ld_dg, int64_t B, int64_t T, int64_t L, int64_t D) {
  RAT_ASSERT(g != nullptr && x != nullptr && h != nullptr && dh != nullptr && dx != nullptr &&
             dg != nullptr);
  RAT_ASSERT(B >= 0 && T >= 0 && L >= 1 && D >= 0 && ld_g >= D && ld_x >= D && ld_h >= D &&
             ld_dx >= D && ld_dg >= D);
  const int64_t C = (T + L - 1) / L;
  const int64_t nblk = (D + kColBlock - 1) / kColBlock;
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t jb = 0; jb < nblk; ++jb) {
        const int64_t j0 = jb * kColBlock, j1 = std::min(D, j0 + kColBlock);
        float carry[kColBlock] = {};
        const int64_t t_begin = c * L, t_end = std::min(T, (c + 1) * L);
        for (int64_t t = t_end - 1; t >= t_begin; --t) {
          const int64_t n = b * T + t;
          const float* gr = g + n * ld_g;
          const float* xr = x + n * ld_x;
          const float* hprev = t > t_begin ? h + (n - 1) * ld_h : nullptr;
          const float* dhr = dh + n * ld_h;
          float* dxr = dx + n * ld_dx;
          float* dgr = dg + n * ld_dg;
#pragma omp simd
          for (int64_t j = j0; j < j1; ++j) {
            float a = dhr[j] + carry[j - j0];
            float hp = hprev ? hprev[j] : 0.0f;
            dxr[j] = (1.0f - gr[j]) * a;
            dgr[j] += a * (hp - xr[j]);
            carry[j - j0] = gr[j] * a;
          }
        }
      }
}

}  // namespace rat
