// The RAT mixer (SPEC.md "rat"):
//   [z, v, g, q, k] = in_proj(RMSNorm(x)),  z = sigmoid(z), g = sigmoid(g + gate_bias)
//   vt, kt = chunk-reset gated scans of v and of k tiled to D (head h: group h % G)
//   q, kt rotated by the chunk index (interrope)
//   o = inter-chunk attention over earlier chunks' final states + own state
//   y = x + out_proj(z * o)
#include <algorithm>

#include <omp.h>

#include <cmath>
#include <cstring>

#include "kernels/activations.h"
#include "kernels/decode_attention.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/overlap_tasks.h"
#include "kernels/rat_attention.h"
#include "kernels/rat_scan.h"
#include "kernels/rmsnorm.h"
#include "kernels/transpose.h"
#include "kernels/vec_math.h"
#include "model/layers.h"

namespace rat {

namespace {

enum Saved { kU, kRstd, kProj, kVt, Kt, kKtRot, kQRot, kO, kLse, kGated };
enum Scratch { sDProj, sDGated, sDQ, sDKt, sDVt };

class RatMixer final : public Block {
 public:
  RatMixer(BlockEnv* env, MixerConfig m) : Block(env, m) {}

  void forward(const float* x, float* y, int64_t B, int64_t T, bool train) override {
    const ModelConfig& cfg = *env_->cfg;
    const int64_t D = cfg.d_model, P = m_.d_head, H = D / P, G = m_.ngroups, L = m_.chunk_size;
    const int64_t GP = G * P, W = 3 * D + 2 * GP, N = B * T, C = (T + L - 1) / L;
    Buffers& b = forward_buffers(train);
    float* u = b.get(kU, N * D);
    float* rstd = b.get(kRstd, N);
    float* proj = b.get(kProj, N * W);
    float* vt = b.get(kVt, N * D);
    float* kt = b.get(Kt, N * D);
    float* ktr = b.get(kKtRot, N * D);
    float* qr = b.get(kQRot, N * GP);
    float* o = b.get(kO, N * D);
    float* lse = b.get(kLse, B * H * T);
    float* gated = b.get(kGated, N * D);

    rmsnorm_forward(x, p_.input_norm, u, rstd, N, D);
    linear_forward(u, D, p_.in_proj, nullptr, proj, W, N, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    const float* z = proj;  // sigmoid(z) in place, by rat_scan_forward
    const RatScanShape ss{B, T, L, D, P, G, W};
    rat_scan_forward(ss, p_.gate_bias, env_->rope_table(P, C), proj, vt, kt, ktr, qr);
    RatAttnShape s{B, T, H, P, L, G, GP, D, D};
    rat_attention_forward(s, qr, ktr, vt, o, lse);
    // Gate, and the residual copy that out_proj accumulates onto, in one parallel pass.
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) {
        gated[n * D + d] = z[n * W + d] * o[n * D + d];
        y[n * D + d] = x[n * D + d];
      }
    linear_forward(gated, D, p_.out_proj, nullptr, y, D, N, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }

  void backward(const float* x, float* dx, int64_t B, int64_t T) override {
    const ModelConfig& cfg = *env_->cfg;
    const int64_t D = cfg.d_model, P = m_.d_head, H = D / P, G = m_.ngroups, L = m_.chunk_size;
    const int64_t GP = G * P, W = 3 * D + 2 * GP, N = B * T, C = (T + L - 1) / L;
    check_trained();
    float* u = saved_.get(kU, 0);
    float* rstd = saved_.get(kRstd, 0);
    float* proj = saved_.get(kProj, 0);
    float* vt = saved_.get(kVt, 0);
    float* kt = saved_.get(Kt, 0);
    float* ktr = saved_.get(kKtRot, 0);
    float* qr = saved_.get(kQRot, 0);
    float* o = saved_.get(kO, 0);
    float* lse = saved_.get(kLse, 0);
    float* gated = saved_.get(kGated, 0);
    Buffers& sc = env_->scratch;
    float* dproj = sc.get(sDProj, N * W);
    float* dgo = sc.get(sDGated, N * D);
    float* dq = sc.get(sDQ, N * GP);
    float* dkt = sc.get(sDKt, N * D);
    float* dvt = sc.get(sDVt, N * D);
    const float* z = proj;

    // y = x + out_proj(z * o): dx keeps the residual gradient.
    linear_backward(gated, D, p_.out_proj, dx, D, dgo, D, 0.f, g_.out_proj, nullptr, N, D, D,
                    env_->prec);
    // d(z*o): dz_pre = dgo * o * z(1-z) into dproj[:, :D]; do = dgo * z (in place).
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) {
        float zz = z[n * W + d], gd = dgo[n * D + d];
        dproj[n * W + d] = gd * o[n * D + d] * zz * (1.f - zz);
        dgo[n * D + d] = gd * zz;
      }
    RatAttnShape s{B, T, H, P, L, G, GP, D, D};
    rat_attention_backward(s, qr, ktr, vt, o, lse, dgo, dq, dkt, dvt);
    const RatScanShape ss{B, T, L, D, P, G, W};
    rat_scan_backward(ss, env_->rope_table(P, C), proj, vt, kt, dvt, dkt, dq, dproj);
    colsum_accumulate(dproj + 2 * D, W, N, D, g_.gate_bias);
    float* du = dgo;  // reuse: dgo is no longer needed
    linear_backward(u, D, p_.in_proj, dproj, W, du, D, 0.f, g_.in_proj, nullptr, N, D, W,
                    env_->prec);
    rmsnorm_backward(du, x, p_.input_norm, rstd, dx, g_.input_norm, N, D);
  }

  // ---- Generation (SPEC.md "Generation state", rat) ----

  void init_state(DecodeState& st) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, G = m_.ngroups, L = m_.chunk_size;
    const int64_t S = st.max_batch, C = (st.max_len + L - 1) / L, W = 3 * D + 2 * G * P;
    RatState& rs = DecodeState::at(st.rat, state_index_);
    rs.chunks = C;
    rs.kv.bf16 = st.bf16;
    rs.kv.alloc(S * C * D);
    rs.run_k.assign(size_t(S * D), 0.f);
    rs.run_v.assign(size_t(S * D), 0.f);
    // The bf16 operands of the overlapped step are part of the scratch
    // whatever the precision now: the model may switch to bf16 products later.
    st.scratch.need(S, D, W, C + 1 + 4 * P);  // thread scratch: scores, kr, qr, gates, o
    env_->rope_table(P, C);  // built now, not inside a step
  }

  // forward() computed kt (unrotated), ktr (rotated by chunk) and vt for all T tokens.
  void export_state(DecodeState& st, int64_t slot, int64_t T) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, L = m_.chunk_size;
    RatState& rs = st.rat[size_t(state_index_)];
    const int64_t C = rs.chunks;
    const float* kt = fwd_->get(Kt, 0);
    const float* ktr = fwd_->get(kKtRot, 0);
    const float* vt = fwd_->get(kVt, 0);
    for (int64_t c = 0; c < T / L; ++c) {  // finished chunks: their final token
      const int64_t t = c * L + L - 1;
      for (int64_t h = 0; h < H; ++h) {
        rs.kv.put(((h * st.max_batch + slot) * C + c) * P, ktr + t * D + h * P, vt + t * D + h * P, P);
      }
    }
    // The running state of an unfinished last chunk (a finished one is reset
    // by the next step, which starts a chunk).
    if (T % L) {
      std::memcpy(rs.run_k.data() + slot * D, kt + (T - 1) * D, size_t(D) * sizeof(float));
      std::memcpy(rs.run_v.data() + slot * D, vt + (T - 1) * D, size_t(D) * sizeof(float));
    }
  }

  void step(const float* x, float* y, const int64_t* slot, const int64_t* pos, int64_t n,
            DecodeState& st) override {
    if (n <= 0) return;
    RatState& rs = st.rat[size_t(state_index_)];
    StepScratch& sc = st.scratch;
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, C = rs.chunks;
    rmsnorm_forward(x, p_.input_norm, sc.u.data(), sc.rstd.data(), n, D);
    std::memcpy(y, x, size_t(n * D) * sizeof(float));  // out_proj accumulates onto it
    const uint16_t* in16 = env_->w16(p_.in_proj, D * (3 * D + 2 * m_.ngroups * P));
    const uint16_t* out16 = env_->w16(p_.out_proj, D * D);
    // bf16 products without frozen bf16 weights (no cache: not a decoder's
    // model) round the weights per call: only the whole-batch path does that.
    const bool bf16_uncached = env_->prec == Precision::kBF16 && !(in16 && out16);
    // Few rows make the projections weight-bound (one read of each weight per
    // step, n products per bf16 pair): those keep whole-batch GEMMs, which
    // draw both cores' bandwidth. From ~16 rows they are compute-bound on one
    // core and overlapping them with the sweeps pays (B 16, D 1024:
    // 0.37 -> 0.30 ms; B 1: 0.15 whole-batch against 0.22 overlapped).
    const int64_t work = n * H * (C + 4) * P;
    if (sc.step_threads() > 1 && !bf16_uncached && n >= st.overlap_min_rows &&
        work >= st.overlap_min_work)
      step_overlapped(y, slot, pos, n, st, in16, out16);
    else
      step_whole_batch(y, slot, pos, n, st, in16, out16, work >= 65536);
  }

 private:
  // One (row i, head h) of a step: the gated scans advance by one token, q and
  // kt are rotated by the chunk index, the query attends to the cached chunk
  // finals plus its own running state, and z * o goes to the scratch's out
  // (f32) or out16 (bf16 products). Its proj holds row i's in_proj output.
  void attend_head(int64_t i, int64_t h, const int64_t* slot, const int64_t* pos, int64_t n_rows,
                   DecodeState& st, bool out_bf16) {
    RatState& rs = st.rat[size_t(state_index_)];
    StepScratch& sc = st.scratch;
    const int64_t D = env_->cfg->d_model, P = m_.d_head, G = m_.ngroups;
    const int64_t L = m_.chunk_size, GP = G * P, W = 3 * D + 2 * GP, C = rs.chunks;
    const int64_t s = slot[i], t = pos[i], c = t / L, l = t % L;
    const RopeTable& rope = env_->rope[P];
    float* scr = sc.thread_scratch.data() + omp_get_thread_num() * sc.scratch_stride;
    float* kr = scr + C + 1;
    float* qr = kr + P;
    float* gs = qr + P;  // this head's gates, then its output gates z
    float* o = gs + P;
    const float* pr = sc.proj.data() + i * W;
    if (i + 1 < n_rows) {
      // The next row of this head, which a sweep visits next: its in_proj
      // outputs and running states are scattered lines (written by another
      // core, or long evicted by the stream): fetch them during this attend
      // (a step 3% faster on one thread, 2% on two).
      const float* nx = sc.proj.data() + (i + 1) * W;
      const float* next[7] = {nx + h * P, nx + D + h * P, nx + 2 * D + h * P,
                              nx + 3 * D + (h % G) * P, nx + 3 * D + GP + (h % G) * P,
                              rs.run_k.data() + slot[i + 1] * D + h * P,
                              rs.run_v.data() + slot[i + 1] * D + h * P};
      for (const float* r : next)
        for (int64_t j = 0; j < P; j += 16)
          _mm_prefetch(reinterpret_cast<const char*>(r + j), _MM_HINT_T0);
    }
    const float* v = pr + D + h * P;
    const float* k = pr + 3 * D + GP + (h % G) * P;
    float* rk = rs.run_k.data() + s * D + h * P;
    float* rv = rs.run_v.data() + s * D + h * P;
    // vt, kt: the chunk-reset gated scan, one token (state 0 at l == 0).
    // vec_sigmoid per lane, as rat_scan_forward: the same bits as the forward.
    vec_sigmoid(pr + 2 * D + h * P, p_.gate_bias + h * P, gs, P);
#pragma omp simd
    for (int64_t j = 0; j < P; ++j) {
      const float g = gs[j];
      const float pk = l == 0 ? 0.f : rk[j], pv = l == 0 ? 0.f : rv[j];
      rk[j] = g * pk + (1.f - g) * k[j];
      rv[j] = g * pv + (1.f - g) * v[j];
    }
    rope_rotate_head(rope, c, rk, kr);
    rope_rotate_head(rope, c, pr + 3 * D + (h % G) * P, qr);
    const int64_t base = (h * st.max_batch + s) * C * P;
    const float scale = 1.f / std::sqrt(float(P));
    if (rs.kv.bf16)
      decode_attend(qr, rs.kv.k16.data() + base, rs.kv.v16.data() + base, c, kr, rv, P, scale, scr, o);
    else
      decode_attend(qr, rs.kv.k.data() + base, rs.kv.v.data() + base, c, kr, rv, P, scale, scr, o);
    vec_sigmoid(pr + h * P, nullptr, gs, P);
#pragma omp simd
    for (int64_t j = 0; j < P; ++j) o[j] *= gs[j];  // z * o
    if (out_bf16)
      to_bf16(o, sc.out16.data() + i * D + h * P, P);
    else
      std::memcpy(sc.out.data() + i * D + h * P, o, size_t(P) * sizeof(float));
    // A finished chunk's final state joins the cache.
    if (l == L - 1) rs.kv.put(base + c * P, kr, rv, P);
  }

  // Whole-batch GEMMs (all threads) around the attends. A tiny step (batch 1,
  // short caches) runs its attends on this thread alone: no parallel region
  // to wait on. Guided: big contiguous shares first, then small ones, so a
  // thread held up (a busy machine) leaves the tail to the others.
  void step_whole_batch(float* y, const int64_t* slot, const int64_t* pos, int64_t n,
                        DecodeState& st, const uint16_t* in16, const uint16_t* out16,
                        bool parallel) {
    StepScratch& sc = st.scratch;
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P;
    const int64_t W = 3 * D + 2 * m_.ngroups * P;
    linear_forward(sc.u.data(), D, p_.in_proj, nullptr, sc.proj.data(), W, n, D, W, env_->prec,
                   0.f, in16);
#pragma omp parallel for collapse(2) schedule(guided) num_threads(sc.step_threads()) if (parallel)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < n; ++i) attend_head(i, h, slot, pos, n, st, false);
    linear_forward(sc.out.data(), D, p_.out_proj, nullptr, y, D, n, D, D, env_->prec, 1.f, out16);
  }

  // Large steps. A step is about half GEMM (compute-bound at batch 64) and
  // half cache sweep (bandwidth-bound); one after the other, each leaves half
  // the machine idle, and one core alone already draws most of the read
  // bandwidth. So the step is cut into tasks that OverlapTasks runs on all
  // threads, one core multiplying while the other sweeps:
  //   compute 0:        q and k columns of in_proj (every head needs them);
  //   compute 1..nb:    z, v, g columns of head block b (overlap_heads heads);
  //   sweeps:           (head block, range of rows): attend_head, needing 0 and 1 + b;
  //   compute nb+1...:  out_proj by output rows, once every sweep is done.
  // Each GEMM runs on one thread as W[rows] . x^T (weight rows as the long
  // side: 440-480 GFLOP/s per core against 300-330 for x . W^T with a strided
  // output, bf16, batch 64, weights from memory) into a transposed scratch.
  // Measured (D 2048, P 128, B 64, bf16): 5.1-5.3 ms per step, half the
  // 10.1-10.5 ms of one thread; done phase after phase on both threads, 7.1 ms.
  // One head per block and two row ranges per thread were the best of 1-4 heads
  // and 1-4 ranges.
  void step_overlapped(float* y, const int64_t* slot, const int64_t* pos, int64_t n,
                       DecodeState& st, const uint16_t* in16, const uint16_t* out16) {
    RatState& rs = st.rat[size_t(state_index_)];
    StepScratch& sc = st.scratch;
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, G = m_.ngroups;
    const int64_t GP = G * P, W = 3 * D + 2 * GP;
    const bool bf16 = env_->prec == Precision::kBF16;
    const int nt = sc.step_threads();
    const int64_t hb = std::max<int64_t>(1, std::min(H, st.overlap_heads));
    const int nb = int((H + hb - 1) / hb);
    const int64_t pieces = std::min<int64_t>(n, 2 * nt);  // row ranges per head block
    const int64_t rows = (n + pieces - 1) / pieces;
    const int64_t orows = std::max<int64_t>(16, (D / nt + 15) / 16 * 16);
    const int n_out = int((D + orows - 1) / orows);
    const int n_sweeps = int(nb * pieces);
    if (bf16) to_bf16(sc.u.data(), sc.u16.data(), n * D);
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
      gemm_rows(p_.in_proj, in16, sc.u.data(), sc.u16.data(), row0, m, sc.proj_t.data());
      transpose(sc.proj_t.data() + row0 * n, m, n, n, sc.proj.data() + row0, W);
    };
    // bf16: a block's z, v, g rows as one GEMM (3 x 128 rows in one call: 6%
    // faster than three, a step ~3%), from in_proj regrouped by block once per
    // weight version.
    if (bf16 && (rs.in16_of != in16 || rs.in16_version != env_->w16cache->version() ||
                 rs.in16_heads != hb)) {
      rs.in16_blocked.resize(size_t(3 * D * D));
      for (int64_t h0 = 0; h0 < H; h0 += hb) {
        const int64_t nh = std::min(hb, H - h0);
        for (int64_t part = 0; part < 3; ++part)
          std::memcpy(rs.in16_blocked.data() + (3 * h0 + part * nh) * P * D,
                      in16 + (part * D + h0 * P) * D, size_t(nh * P * D) * sizeof(uint16_t));
      }
      rs.in16_of = in16, rs.in16_version = env_->w16cache->version(), rs.in16_heads = hb;
    }
    auto in_block = [&](int64_t h0, int64_t nh) {
      if (!bf16) {
        for (int64_t part = 0; part < 3; ++part) in_rows(part * D + h0 * P, nh * P);
        return;
      }
      const GemmShape s{3 * nh * P, n, D, false, true, D, D, n};
      float* ct = sc.proj_t.data() + 3 * h0 * P * n;
      gemm_small_bf16(s, rs.in16_blocked.data() + 3 * h0 * P * D, sc.u16.data(), ct, 0.f);
      for (int64_t part = 0; part < 3; ++part)
        transpose(ct + part * nh * P * n, nh * P, n, n, sc.proj.data() + part * D + h0 * P, W);
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
              return gemm_rows(p_.out_proj, out16, sc.out.data(), sc.out16.data(), d0,
                               std::min(orows, D - d0), sc.out_t.data());
            }
            const int64_t h0 = (j - 1) * hb;
            in_block(h0, std::min(hb, H - h0));
          },
          [&](int a) {
            // Head after head, row after row: the [H, S, C, P] cache is then
            // read in one run per head (consecutive slots), which its
            // prefetches follow.
            const int64_t b = a / pieces, r = a % pieces;
            const int64_t h1 = std::min(H, (b + 1) * hb), i1 = std::min(n, (r + 1) * rows);
            for (int64_t h = b * hb; h < h1; ++h)
              for (int64_t i = r * rows; i < i1; ++i) attend_head(i, h, slot, pos, n, st, bf16);
          },
          [&](int j) {  // in_proj: any time; out_proj: after every sweep
            if (j <= nb) return true;
            for (int a = n_sweeps - 1; a >= 0; --a)
              if (!tasks.sweep_done(a)) return false;
            return true;
          },
          [&](int a) {
            return tasks.compute_done(0) && tasks.compute_done(1 + int(a / pieces));
          });
#pragma omp barrier
      // y = x + out_t^T, split by output features (over the threads this
      // region really has: OpenMP may grant fewer than asked).
      const int64_t got = omp_get_num_threads(), per = (D + got - 1) / got;
      const int64_t d0 = std::min(D, tid * per), d1 = std::min(D, d0 + per);
      const float* yt = sc.out_t.data();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t d = d0; d < d1; ++d) y[i * D + d] += yt[d * n + i];
    }
  }
};

}  // namespace

std::unique_ptr<Block> make_rat_mixer(BlockEnv* env, const MixerConfig& m) {
  return std::make_unique<RatMixer>(env, m);
}

}  // namespace rat
