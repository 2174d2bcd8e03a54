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
#include "kernels/linear.h"
#include "kernels/rat_attention.h"
#include "kernels/rat_decode.h"
#include "kernels/rat_scan.h"
#include "kernels/rmsnorm.h"
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
    const int64_t GP = G * P, W = in_proj_width(*env_->cfg, m_), N = B * T, C = (T + L - 1) / L;
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

  // The get() sizes of forward and backward, slot by slot (layers.h BlockBufferSizes).
  BlockBufferSizes buffer_sizes(int64_t B, int64_t T) const override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, G = m_.ngroups;
    const int64_t GP = G * P, W = in_proj_width(*env_->cfg, m_), N = B * T;
    BlockBufferSizes s;
    s.saved = {N * D, N, N * W, N * D, N * D, N * D, N * GP, N * D, B * H * T, N * D};
    s.scratch = {N * W, N * D, N * GP, N * D, N * D};
    return s;
  }

  void backward(const float* x, float* dx, int64_t B, int64_t T) override {
    const ModelConfig& cfg = *env_->cfg;
    const int64_t D = cfg.d_model, P = m_.d_head, H = D / P, G = m_.ngroups, L = m_.chunk_size;
    const int64_t GP = G * P, W = in_proj_width(*env_->cfg, m_), N = B * T, C = (T + L - 1) / L;
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
    const int64_t D = env_->cfg->d_model, P = m_.d_head, L = m_.chunk_size;
    const int64_t S = st.max_batch, C = (st.max_len + L - 1) / L;
    const int64_t W = in_proj_width(*env_->cfg, m_);
    RatState& rs = DecodeState::at(st.rat, state_index_);
    rs.chunks = C, rs.heads = D / P, rs.chunk_size = L;
    rs.kv.bf16 = st.bf16;
    rs.kv.alloc(S * C * D);
    rs.run_k.assign(size_t(S * D), 0.f);
    rs.run_v.assign(size_t(S * D), 0.f);
    // The bf16 operands of the overlapped step are part of the scratch
    // whatever the precision now: the model may switch to bf16 products later.
    st.scratch.need(S, D, W, rat_step_scratch(C, P));
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
        rs.kv.put(((h * st.max_batch + slot) * C + c) * P, ktr + t * D + h * P, vt + t * D + h * P,
                  P);
      }
    }
    // The running state of an unfinished last chunk (a finished one is reset
    // by the next step, which starts a chunk).
    if (T % L) {
      std::memcpy(rs.run_k.data() + slot * D, kt + (T - 1) * D, size_t(D) * sizeof(float));
      std::memcpy(rs.run_v.data() + slot * D, vt + (T - 1) * D, size_t(D) * sizeof(float));
    }
  }

  // The state a step sees (SPEC.md "Generation state", rat), as the kernels take it.
  RatStepState step_state(DecodeState& st) const {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, G = m_.ngroups;
    RatState& rs = st.rat[size_t(state_index_)];
    return RatStepState{D,
                        P,
                        G,
                        m_.chunk_size,
                        st.max_batch,
                        rs.chunks,
                        p_.gate_bias,
                        &env_->rope.at(P),
                        rs.kv.k.data(),
                        rs.kv.v.data(),
                        rs.kv.k16.data(),
                        rs.kv.v16.data(),
                        rs.kv.bf16,
                        rs.run_k.data(),
                        rs.run_v.data()};
  }

  void step(const float* x, float* y, const int64_t* slot, const int64_t* pos, int64_t n,
            DecodeState& st) override {
    const int64_t D = env_->cfg->d_model;
    RatState& rs = st.rat[size_t(state_index_)];
    StepScratch& ss = st.scratch;
    const RatStepState state = step_state(st);
    const RatDecodeWeights w{p_.input_norm,
                             p_.in_proj,
                             p_.out_proj,
                             env_->w16(p_.in_proj, D * in_proj_width(*env_->cfg, m_)),
                             env_->w16(p_.out_proj, D * D),
                             env_->w16cache ? env_->w16cache->version() : 0,
                             env_->prec};
    const RatInProjBlocks blocks{&rs.in16_blocked, &rs.in16_of, &rs.in16_version, &rs.in16_heads};
    const RatDecodeScratch sc{ss.u.data(),       ss.rstd.data(),  ss.proj.data(),
                              ss.proj_t.data(),  ss.out.data(),   ss.out_t.data(),
                              ss.u16.data(),     ss.out16.data(), ss.thread_scratch.data(),
                              ss.scratch_stride, ss.tasks.get()};
    const RatDecodePlan plan{ss.step_threads(), st.overlap_min_rows, st.overlap_min_work,
                             st.overlap_heads};
    rat_decode_step(state, w, blocks, sc, plan, x, y, slot, pos, n);
  }

  // T tokens of one slot: norm and in_proj over the T rows, then each head
  // walks its tokens in order through rat_step_head (the step's kernel: the
  // scans continue from the slot's running kt, vt, so a pass that starts
  // mid-chunk continues that chunk exactly; a chunk finished inside the pass
  // joins the cache before the next chunk's queries read it), then out_proj.
  void extend(const float* x, float* y, int64_t T, int64_t slot, int64_t pos0,
              DecodeState& st) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P,
                  W = in_proj_width(*env_->cfg, m_);
    StepScratch& ss = st.scratch;
    Buffers& b = forward_buffers(false);
    float* u = b.get(kU, T * D);
    float* proj = b.get(kProj, T * W);
    float* out = b.get(kO, T * D);
    rmsnorm_forward(x, p_.input_norm, u, b.get(kRstd, T), T, D);
    linear_forward(u, D, p_.in_proj, nullptr, proj, W, T, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    const RatStepState state = step_state(st);
#pragma omp parallel for schedule(static) num_threads(ss.step_threads())
    for (int64_t h = 0; h < H; ++h) {
      float* scr = ss.thread_scratch.data() + omp_get_thread_num() * ss.scratch_stride;
      for (int64_t t = 0; t < T; ++t)
        rat_step_head(state, proj + t * W, h, slot, pos0 + t, scr, out + t * D + h * P, nullptr);
    }
    std::memcpy(y, x, size_t(T * D) * sizeof(float));
    linear_forward(out, D, p_.out_proj, nullptr, y, D, T, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }
};

}  // namespace

std::unique_ptr<Block> make_rat_mixer(BlockEnv* env, const MixerConfig& m) {
  return std::make_unique<RatMixer>(env, m);
}

}  // namespace rat
