// The pre-norms and the final norm a config's `ln` selects (the authors'
// nn/norm.py): RMSNorm (kernels/rmsnorm.h), LayerNorm (kernels/layernorm.h)
// or identity. One dispatch so every block treats the three alike.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace rat {

// Floats of per-row statistics a forward keeps: rstd [N] (rmsnorm, and
// identity, which writes none), rstd | mean [2N] (layernorm).
inline int64_t norm_stats_size(NormKind k, int64_t N) {
  return k == NormKind::kLayerNorm ? 2 * N : N;
}

// x, y: [N, D] distinct; w: [D] (null for identity), b: [D] (layernorm only).
void norm_forward(NormKind k, const float* x, const float* w, const float* b, float* y,
                  float* stats, int64_t N, int64_t D);

// dy: [N, D]; dx ACCUMULATED; dw, db accumulated (as the norm has them).
void norm_backward(NormKind k, const float* dy, const float* x, const float* w, const float* stats,
                   float* dx, float* dw, float* db, int64_t N, int64_t D);

}  // namespace rat
