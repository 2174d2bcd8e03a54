// RAT's inter-chunk attention (SPEC.md "rat"): query t of chunk c attends, in
// one softmax, to the final states (kt, vt at offset L-1) of chunks 0..c-1 and
// to its own running state (kt_t, vt_t). Scale P^-0.5. In chunk 0, o_t = vt_t.
// Tiled over query blocks: nothing of size T x C is materialised.
#pragma once

#include <cstdint>

namespace rat {

struct RatAttnShape {
  int64_t B, T, H, P;  // batch, tokens, heads, head width
  int64_t L;           // chunk size; the last chunk may be shorter (T % L != 0)
  int64_t G;           // groups: head h reads query group (h % G)
  int64_t ld_q;        // row stride of q (floats); group g of token t at q + (b*T+t)*ld_q + g*P
  int64_t ld_kv;       // row stride of kt and vt; head h at + (b*T+t)*ld_kv + h*P
  int64_t ld_o;        // row stride of o; head h at + (b*T+t)*ld_o + h*P
  // Tile sizes (query rows, chunk-final keys per block); 0 picks the tuned defaults. Added
  // so the lab can sweep them and the tests can force many tiles on small T.
  int64_t block_q = 0, block_k = 0;
};

// q: rotated by chunk index; kt: running key state, rotated by chunk index;
// vt: running value state. o: [B,T,H*P] written. lse: [B,H,T] written (over
// all terms of the softmax, including the own-state term).
void rat_attention_forward(const RatAttnShape& s, const float* q, const float* kt, const float* vt,
                           float* o, float* lse);

// dout: gradient of o, strided like o (ld_o).
// dq [B,T,G*P-strided like q], dkt, dvt [strided like kt/vt]: written (overwritten).
void rat_attention_backward(const RatAttnShape& s, const float* q, const float* kt, const float* vt,
                            const float* o, const float* lse, const float* dout, float* dq,
                            float* dkt, float* dvt);

// Plain reference (double accumulation). lse optional (may be null; added for tests).
void rat_attention_forward_naive(const RatAttnShape& s, const float* q, const float* kt,
                                 const float* vt, float* o, float* lse = nullptr);

// Plain reference backward (double accumulation); dq, dkt, dvt overwritten. Added as the
// analytic oracle for the tiled backward.
void rat_attention_backward_naive(const RatAttnShape& s, const float* q, const float* kt,
                                  const float* vt, const float* dout, float* dq, float* dkt,
                                  float* dvt);

}  // namespace rat
