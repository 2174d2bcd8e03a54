// Token embedding lookup (SPEC.md: x = wte[ids]; no positional embedding).
#pragma once

#include <cstdint>

namespace rat {

// ids: [N] in [0, V) (checked at the data boundary); wte: [V, D]; x: [N, D] written.
void embedding_forward(const int32_t* ids, const float* wte, float* x, int64_t N, int64_t D);

// dwte[ids[n]] += dx[n]. Threads split the D columns, so no two write one float.
void embedding_backward(const int32_t* ids, const float* dx, float* dwte, int64_t N, int64_t D);

}  // namespace rat
