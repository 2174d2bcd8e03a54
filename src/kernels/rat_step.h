// RAT's per-token path (SPEC.md "rat", "Generation state"), beside the chunked rat_scan:
//   rat_token_head: one token of one head's token-wise stage. The gated scans of v and of
//     the head's key group advance by one token (state in place) and the new kt is rotated
//     by the chunk's angle row (interrope). rat_scan_forward runs it for every token of a
//     chunk; a decode step runs it once. One inline function, so both paths compute the same
//     bits (tests/cpp/kernels/test_rat_step.cc checks chunked == stepped exactly).
//   rat_step_head: one (row, head) of a decode step: gates, rat_token_head, the query's
//     rotation, the attend over the cached chunk finals plus the running state, z * o, and
//     the cache append when the token ends its chunk.
#pragma once

#include <cstdint>

#include "kernels/rope.h"
#include "kernels/scan.h"

namespace rat {

// g: [P] gates (sigmoid already applied); v: [P] the head's v; k: [P] its key group's k.
// sv, sk: [P] running vt and kt of the chunk (zero before its first token), advanced in place.
// cs, sn: the chunk's angle row (rope_cos/rope_sin of the chunk index). kr: [P] written, sk
// rotated (may not alias sk).
inline void rat_token_head(const float* g, const float* v, const float* k, float* sv, float* sk,
                           const float* cs, const float* sn, int64_t P, float* kr) {
  scan_step(g, v, sv, P);
  scan_step(g, k, sk, P);
  rope_rotate(sk, kr, cs, sn, P / 2, 1.f);
}

// One RAT layer's generation state as a decode step sees it, plain pointers into memory the
// caller owns (SPEC.md "Generation state", rat).
struct RatStepState {
  int64_t D, P, G, L;      // model width, head width, key/query groups (G | H = D / P), chunk
  int64_t S, C;            // cache slots and chunk rows per (head, slot)
  const float* gate_bias;  // [D]
  const RopeTable* rope;   // head width P, at least C positions
  // Final (rotated) kt and vt of every finished chunk, [H, S, C, P]: float32 in k, v, or bf16
  // bits in k16, v16 when cache_bf16 (the other pair may be null).
  float *k, *v;
  uint16_t *k16, *v16;
  bool cache_bf16;
  float *run_k, *run_v;  // [S, D]: the current chunk's running kt (not rotated) and vt
};

// Floats of scratch rat_step_head needs: scores (C + 1), then kr, qr, gates, o (P each).
constexpr int64_t rat_step_scratch(int64_t C, int64_t P) { return C + 1 + 4 * P; }

// proj: one row's in_proj output [z | v | g | q | k] (widths D, D, D, GP, GP), pre-activation.
// The row is slot s's token at position t (the slot holds tokens 0 .. t-1). For head h:
// advances run_k, run_v; writes z * o ([P]) to out (float32) or, when out is null, to out16
// (bf16 bits); appends the chunk's final (kt rotated, vt) to the cache when t ends a chunk.
// scratch: rat_step_scratch(C, P) floats. Calling thread only; distinct (s, h) pairs touch
// distinct memory, so a step runs them in parallel.
void rat_step_head(const RatStepState& st, const float* proj, int64_t h, int64_t s, int64_t t,
                   float* scratch, float* out, uint16_t* out16);

}  // namespace rat
