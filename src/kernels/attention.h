// Causal softmax attention (full or sliding-window), tiled so that no T x T
// matrix ever exists: each query block sees its key range, keeps its row
// statistics (log-sum-exp) and recomputes probabilities in backward.
// SPEC.md "attention" and "local_attention".
#pragma once

#include <cstdint>

namespace rat {

struct AttnShape {
  int64_t B, T, H, P;              // batch, tokens, heads, head width
  int64_t window = -1;             // < 0: full causal; else key j visible iff t - window <= j <= t
  int64_t ld_q, ld_k, ld_v, ld_o;  // row strides (floats) between consecutive tokens
  // Head h of token t in batch b lives at ptr + (b*T + t)*ld + h*P.
  // Tile sizes (query rows, key rows per block); 0 picks the tuned defaults. Added so the
  // lab can sweep them and the tests can force many tiles on small T; results do not
  // depend on them beyond float rounding.
  int64_t block_q = 0, block_k = 0;
};

// q, k, v: already rotated (RoPE). o: [B,T,H*P] written. lse: [B,H,T] written
// (natural-log sum of exp(scale * q.k) over visible keys), kept for backward.
void attention_forward(const AttnShape& s, const float* q, const float* k, const float* v, float* o,
                       float* lse);

// dout: gradient of o, strided like o (ld_o). dq, dk, dv: written (overwritten), same
// strides as q/k/v. Threads split (batch, head) pairs: with fewer pairs than threads,
// some threads idle.
void attention_backward(const AttnShape& s, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* dout, float* dq, float* dk,
                        float* dv);

// Plain reference (double accumulation, materialises scores one row at a time).
// lse (optional, may be null) receives the reference log-sum-exp. (lse added for tests.)
void attention_forward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                             float* o, float* lse = nullptr);

// Plain reference backward (double accumulation, one row of probabilities at a time);
// dq, dk, dv overwritten. Added as the analytic oracle for the tiled backward.
void attention_backward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                              const float* dout, float* dq, float* dk, float* dv);

}  // namespace rat
