// RMSNorm (SPEC.md): y = x / sqrt(mean(x^2) + eps) * w, eps = 1e-6.
#pragma once

#include <cstdint>

namespace rat {

constexpr float kRmsEps = 1e-6f;

// x, y: [N, D]; w: [D]; rstd: [N] written (1/sqrt(mean(x^2)+eps)), kept for backward.
void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t D);

// dy: [N, D]. dx: [N, D] ACCUMULATED (callers pass the residual gradient in it).
// dw: [D] accumulated.
void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx,
                      float* dw, int64_t N, int64_t D);

}  // namespace rat
