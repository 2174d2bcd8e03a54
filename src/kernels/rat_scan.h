// RAT's token-wise stage around the inter-chunk attention (SPEC.md "rat"), fused into one
// streaming pass over the in_proj output per direction:
//   z = sigmoid(z), g = sigmoid(g + gate_bias)                          (in place)
//   vt, kt = chunk-reset gated scans of v and of k tiled to D (head h reads group h % G)
//   ktr, qr = kt and q rotated by the chunk index t div L (interrope)
// Unfused, this is sigmoid_inplace x2, chunk_scan_forward for v and for every head of k, a
// copy and rope_apply for kt, a copy and rope_apply for q: eight passes over [T, D] buffers
// with strided per-head access. Here one task owns one chunk of one sequence (chunks are
// independent: the state resets) and walks its L tokens once with all D channels
// contiguous; the rotation angle is the same for the whole task (it depends on the chunk).
// Each token's update is rat_step.h's rat_token_head, the one a decode step runs.
#pragma once

#include <cstdint>

#include "kernels/rope.h"

namespace rat {

struct RatScanShape {
  int64_t B, T, L;  // batch, tokens, chunk size (last chunk may be shorter)
  int64_t D, P, G;  // model width, head width, key/query groups (G divides H = D / P)
  // proj rows are [z | v | g | q | k] with widths D, D, D, G*P, G*P at row stride ld
  // (>= 3D + 2GP). vt, kt, ktr: [B*T, D] packed; qr: [B*T, G*P] packed.
  int64_t ld;
};

// proj: z and g overwritten with their sigmoids. vt, kt, ktr, qr: written. rope: a table for
// head width P with at least ceil(T / L) positions.
void rat_scan_forward(const RatScanShape& s, const float* gate_bias, const RopeTable& rope,
                      float* proj, float* vt, float* kt, float* ktr, float* qr);

// Backward of the same stage, z excepted. proj: as the forward left it (g is the sigmoid).
// dvt, dktr: gradients of vt and of the ROTATED kt ([B*T, D]); dqr: of the rotated q
// ([B*T, G*P]). Writes dproj's v, g, q and k columns (row stride s.ld): dv, the gradient of
// the gate's pre-activation (g + gate_bias), dq and dk (the H/G tiled copies summed onto each
// group). dproj's z columns are not touched.
void rat_scan_backward(const RatScanShape& s, const RopeTable& rope, const float* proj,
                       const float* vt, const float* kt, const float* dvt, const float* dktr,
                       const float* dqr, float* dproj);

}  // namespace rat
