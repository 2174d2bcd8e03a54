// Per-layer generation state (SPEC.md "Generation state"), allocated once for
// (max_batch slots, max_len tokens) so a decode step allocates nothing.
//
//   rat:             k, v [S, H, C, P]: final kt (after interrope by its chunk
//                    index) and vt of every finished chunk, C = ceil(max_len / L);
//                    run_k, run_v [S, D]: the current chunk's running kt (not
//                    rotated: the recurrence continues on it) and vt.
//   attention:       k, v [S, H, R, P]: K after RoPE and V of every past token,
//                    R = max_len.
//   local_attention: the same as a ring of R = min(window + 1, max_len) rows;
//                    token j lives in row j mod R.
//   rnn:             run_v [S, D]: h.
// [.., H, R, P] keeps each (slot, head)'s keys contiguous: the step streams them.
#pragma once

#include <cstdint>
#include <vector>

namespace rat {

struct MixerState {
  int64_t max_batch = 0, max_len = 0;
  int64_t rows = 0;  // R (or C for rat): cache rows per (slot, head)
  std::vector<float> k, v, run_k, run_v;
  // Step scratch, sized for max_batch rows at construction.
  std::vector<float> u, rstd, proj, out;
  std::vector<float> thread_scratch;  // [threads, rows + 2P]: scores, rotated q/k
  int64_t scratch_stride = 0;

  // Bytes of the cache proper (not the step scratch): what one sequence keeps.
  int64_t cache_bytes() const {
    return int64_t((k.size() + v.size() + run_k.size() + run_v.size()) * sizeof(float));
  }
};

}  // namespace rat
