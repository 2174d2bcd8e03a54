// The rnn mixer's per-token path (SPEC.md "rnn"), beside its chunked path (sigmoids, then
// chunk_scan_forward with one chunk, then z * h): for each of n rows, one token of
//   z = sigmoid(z), g = sigmoid(g + gate_bias), h = g h_prev + (1 - g) v, out = z * h
// with the recurrence's one update (scan.h scan_update) and the same per-row vec_sigmoid, so a
// decode step computes the bits of the full forward (tests/cpp/kernels/test_rnn_step.cc).
#pragma once

#include <cstdint>

namespace rat {

// proj: [n, ld] rows [z | v | g] (D each), pre-activation; z and g are overwritten with their
// sigmoids. gate_bias: [D]. h: [S, D] states; row i advances h[slot[i]] (taken as zero when
// pos[i] == 0, the sequence's first token). out: [n, D] written, z * h. Rows name distinct slots.
void rnn_step(float* proj, int64_t ld, const float* gate_bias, float* h, const int64_t* slot,
              const int64_t* pos, float* out, int64_t n, int64_t D);

}  // namespace rat
