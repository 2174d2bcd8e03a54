// Per-layer generation state (SPEC.md "Generation state"), allocated once for
// (max_batch slots, max_len tokens) so a decode step allocates nothing.
//
//   rat:             k, v [H, S, C, P]: final kt (after interrope by its chunk
//                    index) and vt of every finished chunk, C = ceil(max_len / L);
//                    run_k, run_v [S, D]: the current chunk's running kt (not
//                    rotated: the recurrence continues on it) and vt.
//   attention:       k, v [S, H, R, P]: K after RoPE and V of every past token,
//                    R = max_len.
//   local_attention: the same as a ring of R = min(window + 1, max_len) rows;
//                    token j lives in row j mod R.
//   rnn:             run_v [S, D]: h.
// [.., R, P] keeps each (slot, head)'s keys contiguous: the step streams them.
// RAT puts heads outermost so that one head of consecutive slots is one run
// of memory too: its step sweeps a head block across the batch at a time
// while other heads' projections are still being computed.
// With bf16 set before init_state, the k, v rows are kept as bf16 (k16, v16;
// round to nearest even) to halve the bytes a step reads; the running states
// stay float32. The default is float32: decoding then equals the full forward.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/overlap_tasks.h"

namespace rat {

struct MixerState {
  int64_t max_batch = 0, max_len = 0;
  int64_t rows = 0;  // R (or C for rat): cache rows per (slot, head)
  bool bf16 = false;  // k, v rows stored as bf16 in k16, v16 (set before init_state)
  std::vector<float> k, v, run_k, run_v;
  std::vector<uint16_t> k16, v16;
  // Step scratch, sized for max_batch rows at construction.
  std::vector<float> u, rstd, proj, proj_t, out, out_t;
  std::vector<uint16_t> u16, out16;  // bf16 products: GEMM inputs rounded once per step
  std::vector<float> thread_scratch;  // [threads, scratch_stride]: scores, rotated q/k, ...
  int64_t scratch_stride = 0;
  // Threads thread_scratch was sized for (OpenMP's count at init_state): a
  // step's parallel regions use no more, even if the count was raised since.
  int threads = 1;
  int step_threads() const { return std::max(1, std::min(threads, omp_get_max_threads())); }
  // rat: steps of at least overlap_min_rows rows and this much cache work
  // (rows x heads x (chunks + 4) x P) overlap in_proj slices of overlap_heads
  // heads with the cache sweeps (OverlapTasks); the others use whole-batch
  // GEMMs. Tests set both minima to 0.
  int64_t overlap_min_rows = 16, overlap_min_work = 65536, overlap_heads = 1;
  std::unique_ptr<OverlapTasks> tasks;
  // rat, bf16 products: in_proj's bf16 rows regrouped by head block ([z, v, g]
  // of block 0, then block 1, ...) so each block is one GEMM; made from the
  // model's bf16 copy `in16_of` at its cache version, with `in16_heads` per block.
  std::vector<uint16_t> in16_blocked;
  const uint16_t* in16_of = nullptr;
  uint64_t in16_version = 0;
  int64_t in16_heads = 0;

  // Sizes k, v (or k16, v16) to n floats each.
  void alloc_kv(int64_t n) {
    if (bf16) {
      k16.assign(size_t(n), 0), v16.assign(size_t(n), 0);
    } else {
      k.assign(size_t(n), 0.f), v.assign(size_t(n), 0.f);
    }
  }
  // Writes one cache row of P values at element offset `at`.
  void put_kv(int64_t at, const float* kr, const float* vr, int64_t P) {
    if (bf16) {
      to_bf16(kr, k16.data() + at, P);
      to_bf16(vr, v16.data() + at, P);
    } else {
      std::copy(kr, kr + P, k.data() + at);
      std::copy(vr, vr + P, v.data() + at);
    }
  }

  // Bytes of the cache proper (not the step scratch): what one sequence keeps.
  int64_t cache_bytes() const {
    return int64_t((k.size() + v.size() + run_k.size() + run_v.size()) * sizeof(float) +
                   (k16.size() + v16.size()) * sizeof(uint16_t));
  }
};

}  // namespace rat
