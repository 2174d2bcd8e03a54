// One decode step of a RAT layer (SPEC.md "rat", "Generation state") for n rows, row i being
// slot[i]'s token at position pos[i]:
//   u = RMSNorm(x), proj = in_proj(u), per (row, head) rat_step_head, y = x + out_proj(z * o)
// and how that step is laid out on the threads. Few rows make the projections weight-bound:
// whole-batch GEMMs on all threads around a parallel sweep of the (row, head) steps. Many rows
// make them compute-bound, and the step is cut into GEMM slices and cache sweeps that
// OverlapTasks runs at once on different cores (rat_decode.cc says why and what was measured).
// Plain pointers and sizes only: the caller's decode state owns every buffer, and a step
// allocates nothing (the regrouped bf16 in_proj is remade only when the weights change).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/overlap_tasks.h"
#include "kernels/rat_step.h"

namespace rat {

struct RatDecodeWeights {
  const float* input_norm;       // [D]
  const float* in_proj;          // [W, D], W = 3D + 2GP: rows z, v, g, q, k
  const float* out_proj;         // [D, D]
  const uint16_t *in16, *out16;  // their frozen bf16 copies, or null
  uint64_t w16_version;          // version of those copies (the regrouped in_proj follows it)
  Precision prec;                // of the products
};

// in_proj's bf16 rows regrouped by head block ([z, v, g] of block 0, then block 1, ...) so
// that an overlapped bf16 step computes each block with one GEMM; made from the bf16 in_proj
// *of at cache version *version with *heads heads per block, and remade when any differs.
// Fields point into the caller's state (kept across steps).
struct RatInProjBlocks {
  std::vector<uint16_t>* w;  // [3D, D] once made
  const uint16_t** of;
  uint64_t* version;
  int64_t* heads;
};

// Step scratch for up to S rows (st.S), sized once by the caller.
struct RatDecodeScratch {
  float *u, *rstd;        // [S, D], [S]: the normalised rows and their 1 / rms
  float *proj, *proj_t;   // [S, W], [W, S]: in_proj output, and its transpose (overlapped)
  float *out, *out_t;     // [S, D], [D, S]: z * o (f32 products), out_proj output transposed
  uint16_t *u16, *out16;  // [S, D] each: u and z * o rounded to bf16 (bf16 products)
  float* thread;          // [threads, thread_stride]: one rat_step_head scratch per thread
  int64_t thread_stride;  // >= rat_step_scratch(C, P)
  OverlapTasks* tasks;
};

// How a step may use the threads.
struct RatDecodePlan {
  int threads;  // at most this many (the thread scratch was sized for them)
  // Steps of at least min_rows rows and min_work cache work (rows x heads x (C + 4) x P)
  // overlap in_proj slices of `heads` heads with the sweeps; others run whole-batch.
  int64_t overlap_min_rows, overlap_min_work, overlap_heads;
};

// x, y: [n, D]; slot, pos: [n]. y = x + the layer's output; st's running states and cache
// advance by one token per row (rows must name distinct slots).
void rat_decode_step(const RatStepState& st, const RatDecodeWeights& w,
                     const RatInProjBlocks& blocks, const RatDecodeScratch& sc,
                     const RatDecodePlan& plan, const float* x, float* y, const int64_t* slot,
                     const int64_t* pos, int64_t n);

}  // namespace rat
