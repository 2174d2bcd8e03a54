// Generation state of a whole model (SPEC.md "Generation state"), allocated
// once for (max_batch slots, max_len tokens) so a decode step allocates nothing.
// One state type per mixer kind; a layer finds its own as entry i of its
// kind's list, i = its position among the layers of that kind:
//
//   rat:             RatState: kv [H, S, C, P]: final kt (after interrope by
//                    its chunk index) and vt of every finished chunk,
//                    C = ceil(max_len / L); run_k, run_v [S, D]: the current
//                    chunk's running kt (not rotated: the recurrence continues
//                    on it) and vt.
//   attention:       KvState: kv [S, H, R, P]: K after RoPE and V of every
//                    past token, R = max_len.
//   local_attention: KvState as a ring of R = min(window + 1, max_len) rows;
//                    token j lives in row j mod R.
//   rnn:             RnnState: h [S, D].
// [.., R, P] keeps each (slot, head)'s keys contiguous: the step streams them.
// RAT puts heads outermost so that one head of consecutive slots is one run
// of memory too: its step sweeps a head block across the batch at a time
// while other heads' projections are still being computed.
// With bf16 set before the layers' init_state, the k, v rows are kept as bf16
// (round to nearest even) to halve the bytes a step reads; the running states
// stay float32. The default is float32: decoding then equals the full forward.
//
// Layers step one at a time, so all share ONE StepScratch (projections,
// residual rows, per-thread scores), sized for the largest layer.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/overlap_tasks.h"

namespace rat {

// K and V cache rows, float32 or bf16.
struct KvRows {
  bool bf16 = false;
  std::vector<float> k, v;
  std::vector<uint16_t> k16, v16;

  // Sizes k, v (or k16, v16) to n values each.
  void alloc(int64_t n) {
    if (bf16) {
      k16.assign(size_t(n), 0), v16.assign(size_t(n), 0);
    } else {
      k.assign(size_t(n), 0.f), v.assign(size_t(n), 0.f);
    }
  }
  // Writes one cache row of P values at element offset `at`.
  void put(int64_t at, const float* kr, const float* vr, int64_t P) {
    if (bf16) {
      to_bf16(kr, k16.data() + at, P);
      to_bf16(vr, v16.data() + at, P);
    } else {
      std::copy(kr, kr + P, k.data() + at);
      std::copy(vr, vr + P, v.data() + at);
    }
  }
  int64_t bytes() const {
    return int64_t((k.size() + v.size()) * sizeof(float) +
                   (k16.size() + v16.size()) * sizeof(uint16_t));
  }
};

struct RatState {
  int64_t chunks = 0;               // C: cache rows per (slot, head)
  KvRows kv;                        // [H, S, C, P]
  std::vector<float> run_k, run_v;  // [S, D]
  // H and L: copy_slot walks one slot's rows.
  int64_t heads = 0, chunk_size = 0;
  // bf16 products: this layer's in_proj bf16 rows regrouped by head block
  // ([z, v, g] of block 0, then block 1, ...) so each block is one GEMM; made
  // from the model's bf16 copy `in16_of` at its cache version, with
  // `in16_heads` per block. Derived from weights, not state: not in cache bytes.
  std::vector<uint16_t> in16_blocked;
  const uint16_t* in16_of = nullptr;
  uint64_t in16_version = 0;
  int64_t in16_heads = 0;

  int64_t cache_bytes() const {
    return kv.bytes() + int64_t((run_k.size() + run_v.size()) * sizeof(float));
  }
};

struct KvState {
  int64_t rows = 0;  // R: cache rows per (slot, head)
  KvRows kv;         // [S, H, R, P]
  // H: copy_slot walks one slot's rows.
  int64_t heads = 0;
  int64_t cache_bytes() const { return kv.bytes(); }
};

struct RnnState {
  std::vector<float> h;  // [S, D]
  int64_t cache_bytes() const { return int64_t(h.size() * sizeof(float)); }
};

// What one step of one layer (and of the model around it) works in; grown by
// each layer's init_state to the largest need, never inside a step.
struct StepScratch {
  std::vector<float> x, xm, hf;       // residual rows and final norm output [S, D]
  std::vector<float> u, rstd;         // a block's normed input [S, D] and norm statistics [2S]
  std::vector<float> proj, proj_t;    // in_proj output and its transpose [S, W]
  std::vector<float> out, out_t;      // out_proj input and output transpose [S, D]
  std::vector<uint16_t> u16, out16;   // bf16 products: GEMM inputs rounded once per step
  std::vector<float> thread_scratch;  // [threads, scratch_stride]: scores, rotated q/k, ...
  int64_t scratch_stride = 0;
  // Threads thread_scratch was sized for (OpenMP's count at init): a step's
  // parallel regions use no more, even if the count was raised since.
  int threads = 1;
  int step_threads() const { return std::max(1, std::min(threads, omp_get_max_threads())); }
  std::unique_ptr<OverlapTasks> tasks;  // RAT's overlapped step

  template <class T>
  static void grow(std::vector<T>& v, int64_t n) {
    if (int64_t(v.size()) < n) v.assign(size_t(n), T(0));
  }
  // Room for steps of S rows of width D, in_proj width W, and per-thread
  // scratch of `stride` floats.
  void need(int64_t S, int64_t D, int64_t W, int64_t stride) {
    for (auto* v : {&x, &xm, &hf, &u, &out, &out_t}) grow(*v, S * D);
    grow(rstd, 2 * S);  // layernorm keeps rstd | mean
    grow(proj, S * W), grow(proj_t, S * W);
    grow(u16, S * D), grow(out16, S * D);
    threads = omp_get_max_threads();
    scratch_stride = std::max(scratch_stride, stride);
    grow(thread_scratch, int64_t(threads) * scratch_stride);
    if (!tasks) tasks = std::make_unique<OverlapTasks>();
  }
  int64_t bytes() const;
};

struct DecodeState {
  int64_t max_batch = 0, max_len = 0;
  bool bf16 = false;  // k, v rows as bf16 (set before the layers' init_state)
  std::vector<RatState> rat;
  std::vector<KvState> attention, local;
  std::vector<RnnState> rnn;
  StepScratch scratch;
  // rat: steps of at least overlap_min_rows rows and this much cache work
  // (rows x heads x (chunks + 4) x P) overlap in_proj slices of overlap_heads
  // heads with the cache sweeps (OverlapTasks); the others use whole-batch
  // GEMMs. Tests set both minima to 0.
  int64_t overlap_min_rows = 16, overlap_min_work = 65536, overlap_heads = 1;

  // Entry i of a kind's list, made on first use (init_state, in layer order).
  template <class T>
  static T& at(std::vector<T>& v, int64_t i) {
    if (int64_t(v.size()) <= i) v.resize(size_t(i) + 1);
    return v[size_t(i)];
  }

  // Makes slot `to` hold what slot `from` holds after len tokens: every
  // layer's state of that slot (RAT: kt, vt rows of the len / L finished
  // chunks and the running kt, vt; attention: K, V rows of positions < len;
  // local attention: its ring; RNN: h). Stepping `to` at position len then
  // gives what stepping `from` would: scoring prefills a context shared by
  // several continuations once and decodes each from a copy.
  void copy_slot(int64_t from, int64_t to, int64_t len);

  // Prefix reuse (serve): can a slot holding `held` tokens continue from its
  // first k <= held instead (Decoder::set_length(k), then extend)? Per layer:
  // attention always (rows < k are untouched); RAT when k ends a chunk (its
  // finished chunks' rows are the state; the next token starts a chunk) or
  // when the running states at k are restored (`recurrent_at_k`, a snapshot);
  // the RNN only with such a snapshot; local attention while the ring still
  // holds the window query k reads (positions max(0, k - window) .. k-1 not
  // yet overwritten: k >= held - 1 once the ring has wrapped). k == held
  // always. The hybrid needs every layer's yes.
  bool can_truncate(int64_t held, int64_t k, bool recurrent_at_k) const;
  // One slot's running states: every RNN layer's h, then every RAT layer's
  // run_k and run_v (recurrent_floats() floats). Saved after a prompt, they
  // make the RNN and a mid-chunk RAT reusable at that point.
  int64_t recurrent_floats() const;
  void save_recurrent(int64_t slot, float* out) const;
  void load_recurrent(int64_t slot, const float* in);

  // Bytes of the caches proper (not the scratch): what the slots keep.
  int64_t cache_bytes() const;
  // Every byte held: caches, scratch, regrouped weights.
  int64_t bytes() const;
  // Benchmarks: every cache and running state filled with values in [-1, 1)
  // from a counter hash of (seed, buffer); a step's cost does not depend on
  // the values it reads.
  void fill_random(uint64_t seed);
};

}  // namespace rat
