// LayerNorm (the authors' `ln: layernorm`, torch.nn.LayerNorm(D, eps=1e-6)
// as their modules build it): y = (x - mean(x)) / sqrt(var(x) + eps) * w + b,
// var the biased (population) variance.
#pragma once

#include <cstdint>

namespace rat {

constexpr float kLayerNormEps = 1e-6f;

// x, y: [N, D]; w, b: [D]; mean, rstd: [N] written, kept for backward.
void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t N, int64_t D);

// dy: [N, D]. dx: [N, D] ACCUMULATED (callers pass the residual gradient in
// it). dw, db: [D] accumulated.
void layernorm_backward(const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, float* dw, float* db, int64_t N, int64_t D);

}  // namespace rat
