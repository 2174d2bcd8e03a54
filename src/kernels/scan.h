// Gated linear recurrence, channel-wise, with the state reset at the start of
// every chunk of L tokens (SPEC.md "rat": vt and kt; "rnn" is the case L >= T):
//   h_l = g_l * h_{l-1} + (1 - g_l) * x_l,   h_{-1} = 0 at each chunk start.
// Rows are tokens of [B, T] flattened; each row has D channels at stride ld_*.
#pragma once

#include <cstdint>

namespace rat {

// g, x: [B*T, D] (strides ld_g, ld_x). h: [B*T, D] written (stride ld_h; may alias x).
void chunk_scan_forward(const float* g, int64_t ld_g, const float* x, int64_t ld_x, float* h,
                        int64_t ld_h, int64_t B, int64_t T, int64_t L, int64_t D);

// dh: gradient of h (stride ld_h, same as h). dx: written (stride ld_dx).
// dg: ACCUMULATED (stride ld_dg), so the v and k scans that share g add into one buffer.
// The gradients have their own strides: g and x are usually views into the
// in_proj output (stride 3D + ...), while dg is a compact [N, D] buffer.
void chunk_scan_backward(const float* g, int64_t ld_g, const float* x, int64_t ld_x, const float* h,
                         const float* dh, int64_t ld_h, float* dx, int64_t ld_dx, float* dg,
                         int64_t ld_dg, int64_t B, int64_t T, int64_t L, int64_t D);

// The recurrence's one update, h = g * h_prev + (1 - g) * x, for one channel. Every path runs
// it (chunk_scan_forward, the fused RAT scan, the RAT and RNN decode steps): one expression, so
// the chunked and per-token paths contract and round it alike.
inline float scan_update(float g, float h_prev, float x) { return g * h_prev + (1.0f - g) * x; }

// One token over n channels, h updated in place (h = g*h + (1-g)*x): the state of the current
// chunk advanced by one token; the caller zeroes h at a chunk start.
inline void scan_step(const float* g, const float* x, float* h, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) h[j] = scan_update(g[j], h[j], x[j]);
}

}  // namespace rat
