// FFN activations (SPEC.md "FFN"; the authors' nn/activation.py), elementwise over
// [N, F], except softmax (over the F features of each row) and swiglu.
#pragma once

#include <cstdint>

#include "kernels/types.h"

namespace rat {

// h: fc1 output, [N, F] (or [N, 2F] for swiglu: [a | gate] per row).
// a: [N, F] written.
void activation_forward(Activation act, const float* h, float* a, int64_t N, int64_t F);

// da: [N, F]. dh: [N, F] or [N, 2F] written.
void activation_backward(Activation act, const float* h, const float* da, float* dh, int64_t N,
                         int64_t F);

// Logistic sigmoid; used by gates too.
inline float sigmoidf(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }

}  // namespace rat
