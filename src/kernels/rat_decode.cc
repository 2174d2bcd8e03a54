#include "kernels/rat_decode.h"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/transpose.h"

namespace rat {

namespace {

// One step's arguments and derived sizes, shared by its two schedules.
struct Step {
  const RatStepState& st;
  const RatDecodeWeights& w;
  const RatInProjBlocks& blocks;
  const RatDecodeScratch& sc;
  const RatDecodePlan& plan;
  const int64_t *slot, *pos;
  int64_t n, D, P, H, G, GP, W;

  // Row i, head h: rat_step_head into sc.out (f32) or sc.out16 (bf16 products).
  void head(int64_t i, int64_t h, bool out_bf16) const {
    const float* pr = sc.proj + i * W;
    if (i + 1 < n) {
      // The next row of this head, which a sweep visits next: its in_proj outputs and
      // running states are scattered lines (written by another core, or long evicted by the
      // stream): fetch them during this attend (a step 3% faster on one thread, 2% on two).
      const float* nx = pr + W;
      const float* next[7] = {nx + h * P,
                              nx + D + h * P,
                              nx + 2 * D + h * P,
                              nx + 3 * D + (h % G) * P,
                              nx + 3 * D + GP + (h % G) * P,
                              st.run_k + slot[i + 1] * D + h * P,
                              st.run_v + slot[i + 1] * D + h * P};
      for (const float* r : next)
        for (int64_t j = 0; j < P; j += 16) __builtin_prefetch(r + j, 0, 3);  // prefetcht0
    }
    float* scr = sc.thread + omp_get_thread_num() * sc.thread_stride;
    rat_step_head(st, pr, h, slot[i], pos[i], scr, out_bf16 ? nullptr : sc.out + i * D + h * P,
                  sc.out16 + i * D + h * P);
  }

  // Whole-batch GEMMs (all threads) around the attends. A tiny step (batch 1, short caches)
  // runs its attends on this thread alone: no parallel region to wait on. Guided: big
  // contiguous shares first, then small ones, so a thread held up (a busy machine) leaves the
  // tail to the others.
  void whole_batch(float* y, bool parallel) const {
    linear_forward(sc.u, D, w.in_proj, nullptr, sc.proj, W, n, D, W, w.prec, 0.f, w.in16);
#pragma omp parallel for collapse(2) schedule(guided) num_threads(plan.threads) if (parallel)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < n; ++i) head(i, h, false);
    linear_forward(sc.out, D, w.out_proj, nullptr, y, D, n, D, D, w.prec, 1.f, w.out16);
  }

  void overlapped(float* y) const;
};

// Large steps. A step is about half GEMM (compute-bound at batch 64) and half cache sweep
// (bandwidth-bound); one after the other, each leaves half the machine idle, and one core
// alone already draws most of the read bandwidth. So the step is cut into tasks that
// OverlapTasks runs on all threads, one core multiplying while the other sweeps:
//   compute 0:        q and k columns of in_proj (every head needs them);
//   compute 1..nb:    z, v, g columns of head block b (overlap_heads heads);
//   sweeps:           (head block, range of rows): rat_step_head, needing 0 and 1 + b;
//   compute nb+1...:  out_proj by output rows, once every sweep is done.
// Each GEMM runs on one thread as W[rows] . x^T (weight rows as the long side: 440-480
// GFLOP/s per core against 300-330 for x . W^T with a strided output, bf16, batch 64,
// weights from memory) into a transposed scratch.
// Measured (D 2048, P 128, B 64, bf16): 5.1-5.3 ms per step, half the 10.1-10.5 ms of one
// thread; done phase after phase on both threads, 7.1 ms. One head per block and two row
// ranges per thread were the best of 1-4 heads and 1-4 ranges.
void Step::overlapped(float* y) const {
  const bool bf16 = w.prec == Precision::kBF16;
  const int nt = plan.threads;
  const int64_t hb = std::max<int64_t>(1, std::min(H, plan.overlap_heads));
  const int nb = int((H + hb - 1) / hb);
  const int64_t pieces = std::min<int64_t>(n, 2 * nt);  // row ranges per head block
  const int64_t rows = (n + pieces - 1) / pieces;
  const int64_t orows = std::max<int64_t>(16, (D / nt + 15) / 16 * 16);
  const int n_out = int((D + orows - 1) / orows);
  const int n_sweeps = int(nb * pieces);
  if (bf16) to_bf16(sc.u, sc.u16, n * D);
  // C[rows0 .. rows0 + m) = Wt[rows0 ..) . x^T (both row-major with D columns), one thread.
  auto gemm_rows = [&](const float* Wt, const uint16_t* Wt16, const float* x, const uint16_t* x16,
                       int64_t row0, int64_t m, float* C) {
    const GemmShape s{m, n, D, false, true, D, D, n};
    if (bf16)
      gemm_small_bf16(s, Wt16 + row0 * D, x16, C + row0 * n, 0.f);
    else
      gemm_small_planned(s, Wt + row0 * D, x, C + row0 * n, 0.f);
  };
  // proj[:, row0 .. row0 + m) through its transpose.
  auto in_rows = [&](int64_t row0, int64_t m) {
    gemm_rows(w.in_proj, w.in16, sc.u, sc.u16, row0, m, sc.proj_t);
    transpose(sc.proj_t + row0 * n, m, n, n, sc.proj + row0, W);
  };
  // bf16: a block's z, v, g rows as one GEMM (3 x 128 rows in one call: 6% faster than three,
  // a step ~3%), from in_proj regrouped by block once per weight version.
  if (bf16 && (*blocks.of != w.in16 || *blocks.version != w.w16_version || *blocks.heads != hb)) {
    blocks.w->resize(size_t(3 * D * D));
    for (int64_t h0 = 0; h0 < H; h0 += hb) {
      const int64_t nh = std::min(hb, H - h0);
      for (int64_t part = 0; part < 3; ++part)
        std::memcpy(blocks.w->data() + (3 * h0 + part * nh) * P * D,
                    w.in16 + (part * D + h0 * P) * D, size_t(nh * P * D) * sizeof(uint16_t));
    }
    *blocks.of = w.in16, *blocks.version = w.w16_version, *blocks.heads = hb;
  }
  auto in_block = [&](int64_t h0, int64_t nh) {
    if (!bf16) {
      for (int64_t part = 0; part < 3; ++part) in_rows(part * D + h0 * P, nh * P);
      return;
    }
    const GemmShape s{3 * nh * P, n, D, false, true, D, D, n};
    float* ct = sc.proj_t + 3 * h0 * P * n;
    gemm_small_bf16(s, blocks.w->data() + 3 * h0 * P * D, sc.u16, ct, 0.f);
    for (int64_t part = 0; part < 3; ++part)
      transpose(ct + part * nh * P * n, nh * P, n, n, sc.proj + part * D + h0 * P, W);
  };
  OverlapTasks& tasks = *sc.tasks;
  tasks.reset(1 + nb + n_out, n_sweeps);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    tasks.run(
        tid,
        [&](int j) {
          if (j == 0) return in_rows(3 * D, 2 * GP);  // q, k
          if (j > nb) {  // out_proj rows, into out_t = out_proj . (z * o)^T
            const int64_t d0 = (j - 1 - nb) * orows;
            return gemm_rows(w.out_proj, w.out16, sc.out, sc.out16, d0, std::min(orows, D - d0),
                             sc.out_t);
          }
          const int64_t h0 = (j - 1) * hb;
          in_block(h0, std::min(hb, H - h0));
        },
        [&](int a) {
          // Head after head, row after row: the [H, S, C, P] cache is then read in one run
          // per head (consecutive slots), which its prefetches follow.
          const int64_t b = a / pieces, r = a % pieces;
          const int64_t h1 = std::min(H, (b + 1) * hb), i1 = std::min(n, (r + 1) * rows);
          for (int64_t h = b * hb; h < h1; ++h)
            for (int64_t i = r * rows; i < i1; ++i) head(i, h, bf16);
        },
        [&](int j) {  // in_proj: any time; out_proj: after every sweep
          if (j <= nb) return true;
          for (int a = n_sweeps - 1; a >= 0; --a)
            if (!tasks.sweep_done(a)) return false;
          return true;
        },
        [&](int a) { return tasks.compute_done(0) && tasks.compute_done(1 + int(a / pieces)); });
#pragma omp barrier
    // y = x + out_t^T, split by output features (over the threads this region really has:
    // OpenMP may grant fewer than asked).
    const int64_t got = omp_get_num_threads(), per = (D + got - 1) / got;
    const int64_t d0 = std::min(D, tid * per), d1 = std::min(D, d0 + per);
    const float* yt = sc.out_t;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t d = d0; d < d1; ++d) y[i * D + d] += yt[d * n + i];
  }
}

}  // namespace

void rat_decode_step(const RatStepState& st, const RatDecodeWeights& w,
                     const RatInProjBlocks& blocks, const RatDecodeScratch& sc,
                     const RatDecodePlan& plan, const float* x, float* y, const int64_t* slot,
                     const int64_t* pos, int64_t n) {
  if (n <= 0) return;
  const int64_t D = st.D, P = st.P, H = D / P, G = st.G, GP = G * P;
  assert(n <= st.S && sc.thread_stride >= rat_step_scratch(st.C, P) && plan.threads >= 1);
  const Step step{st, w, blocks, sc, plan, slot, pos, n, D, P, H, G, GP, 3 * D + 2 * GP};
  rmsnorm_forward(x, w.input_norm, sc.u, sc.rstd, n, D);
  std::memcpy(y, x, size_t(n * D) * sizeof(float));  // out_proj accumulates onto it
  // bf16 products without frozen bf16 weights (no cache: not a decoder's model) round the
  // weights per call: only the whole-batch path does that.
  const bool bf16_uncached = w.prec == Precision::kBF16 && !(w.in16 && w.out16);
  // Few rows make the projections weight-bound (one read of each weight per step, n products
  // per bf16 pair): those keep whole-batch GEMMs, which draw both cores' bandwidth. From ~16
  // rows they are compute-bound on one core and overlapping them with the sweeps pays (B 16,
  // D 1024: 0.37 -> 0.30 ms; B 1: 0.15 whole-batch against 0.22 overlapped).
  const int64_t work = n * H * (st.C + 4) * P;
  if (plan.threads > 1 && !bf16_uncached && n >= plan.overlap_min_rows &&
      work >= plan.overlap_min_work)
    step.overlapped(y);
  else
    step.whole_batch(y, work >= 65536);
}

}  // namespace rat
