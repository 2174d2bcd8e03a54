// Language-model head fused with cross-entropy (SPEC.md: logits = lm_head(h),
// loss = mean CE over labels != ignore_index). Rows are processed in blocks so
// that only a [block, V] slice of the logits exists at any time: the full
// [N, V] tensor would be 4 GB at N = 32K, V = 32K.
#pragma once

#include <cstdint>

#include "kernels/gemm.h"

namespace rat {

struct CeResult {
  double loss_sum = 0;  // sum of -log p(label) over counted rows
  int64_t count = 0;    // rows whose label != ignore_index
};

// hf: [N, D] final hidden states; W: [V, D] head weight; labels: [N].
// Backward too when dhf != nullptr: dhf [N, D] written with d(scale*loss_sum)/dhf,
// dW [V, D] accumulated. `scale` is usually 1 / (count over the global batch).
CeResult lm_head_cross_entropy(const float* hf, const float* W, const int32_t* labels, int64_t N,
                               int64_t D, int64_t V, int64_t ignore_index, Precision prec,
                               float scale, float* dhf, float* dW);

// Full logits [N, V] (tests, generation). W16: W's bf16 copy or null (as in
// linear_forward).
void lm_head_logits(const float* hf, const float* W, float* logits, int64_t N, int64_t D, int64_t V,
                    Precision prec, const uint16_t* W16 = nullptr);

}  // namespace rat
