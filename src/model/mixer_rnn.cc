// Gated linear RNN mixer (SPEC.md "rnn"): [z, v, g] = in_proj(RMSNorm(x)),
// h_t = g_t h_{t-1} + (1 - g_t) v_t over the whole sequence,
// y = x + out_proj(sigmoid(z) * h). It is the chunk scan with one chunk.
#include <algorithm>
#include <cstring>

#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rnn_step.h"
#include "kernels/scan.h"
#include "model/layers.h"

namespace rat {

namespace {

enum Saved { kU, kRstd, kProj, kH, kGated };
enum Scratch { sDProj, sDGated, sDH, sDG };

class RnnMixer final : public Block {
 public:
  RnnMixer(BlockEnv* env, MixerConfig m) : Block(env, m) {}

  void forward(const float* x, float* y, int64_t B, int64_t T, bool train) override {
    const int64_t D = env_->cfg->d_model, W = 3 * D, N = B * T;
    Buffers& b = forward_buffers(train);
    float* u = b.get(kU, N * D);
    float* rstd = b.get(kRstd, N);
    float* proj = b.get(kProj, N * W);
    float* h = b.get(kH, N * D);
    float* gated = b.get(kGated, N * D);
    rmsnorm_forward(x, p_.input_norm, u, rstd, N, D);
    linear_forward(u, D, p_.in_proj, nullptr, proj, W, N, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    float* z = proj;
    float* v = proj + D;
    float* g = proj + 2 * D;
    sigmoid_inplace(z, W, nullptr, N, D);
    sigmoid_inplace(g, W, p_.gate_bias, N, D);
    chunk_scan_forward(g, W, v, W, h, D, B, T, T, D);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) gated[n * D + d] = z[n * W + d] * h[n * D + d];
    std::memcpy(y, x, size_t(N * D) * sizeof(float));
    linear_forward(gated, D, p_.out_proj, nullptr, y, D, N, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }

  // The get() sizes of forward and backward, slot by slot (layers.h BlockBufferSizes).
  BlockBufferSizes buffer_sizes(int64_t B, int64_t T) const override {
    const int64_t D = env_->cfg->d_model, W = 3 * D, N = B * T;
    BlockBufferSizes s;
    s.saved = {N * D, N, N * W, N * D, N * D};
    s.scratch = {N * W, N * D, N * D, N * D};
    return s;
  }

  void backward(const float* x, float* dx, int64_t B, int64_t T) override {
    const int64_t D = env_->cfg->d_model, W = 3 * D, N = B * T;
    check_trained();
    float* u = saved_.get(kU, 0);
    float* rstd = saved_.get(kRstd, 0);
    float* proj = saved_.get(kProj, 0);
    float* h = saved_.get(kH, 0);
    float* gated = saved_.get(kGated, 0);
    float* dproj = env_->scratch.get(sDProj, N * W);
    float* dgo = env_->scratch.get(sDGated, N * D);
    float* dh = env_->scratch.get(sDH, N * D);
    float* dg = env_->scratch.get(sDG, N * D);
    const float* z = proj;
    const float* v = proj + D;
    const float* g = proj + 2 * D;
    linear_backward(gated, D, p_.out_proj, dx, D, dgo, D, 0.f, g_.out_proj, nullptr, N, D, D,
                    env_->prec);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) {
        float zz = z[n * W + d], gd = dgo[n * D + d];
        dproj[n * W + d] = gd * h[n * D + d] * zz * (1.f - zz);
        dh[n * D + d] = gd * zz;
        dg[n * D + d] = 0.f;
      }
    chunk_scan_backward(g, W, v, W, h, dh, D, dproj + D, W, dg, D, B, T, T, D);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) {
        float gg = g[n * W + d];
        dproj[n * W + 2 * D + d] = dg[n * D + d] * gg * (1.f - gg);
      }
    colsum_accumulate(dproj + 2 * D, W, N, D, g_.gate_bias);
    float* du = dgo;
    linear_backward(u, D, p_.in_proj, dproj, W, du, D, 0.f, g_.in_proj, nullptr, N, D, W,
                    env_->prec);
    rmsnorm_backward(du, x, p_.input_norm, rstd, dx, g_.input_norm, N, D);
  }

  // ---- Generation (SPEC.md "Generation state", rnn: h) ----

  void init_state(DecodeState& st) override {
    const int64_t D = env_->cfg->d_model, S = st.max_batch;
    DecodeState::at(st.rnn, state_index_).h.assign(size_t(S * D), 0.f);
    st.scratch.need(S, D, 3 * D, 0);
  }

  void export_state(DecodeState& st, int64_t slot, int64_t T) override {
    const int64_t D = env_->cfg->d_model;
    std::memcpy(st.rnn[size_t(state_index_)].h.data() + slot * D, fwd_->get(kH, 0) + (T - 1) * D,
                size_t(D) * sizeof(float));
  }

  void step(const float* x, float* y, const int64_t* slot, const int64_t* pos, int64_t n,
            DecodeState& st) override {
    const int64_t D = env_->cfg->d_model, W = 3 * D;
    StepScratch& sc = st.scratch;
    float* hs = st.rnn[size_t(state_index_)].h.data();
    float* proj = sc.proj.data();
    float* out = sc.out.data();
    rmsnorm_forward(x, p_.input_norm, sc.u.data(), sc.rstd.data(), n, D);
    linear_forward(sc.u.data(), D, p_.in_proj, nullptr, proj, W, n, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    rnn_step(proj, W, p_.gate_bias, hs, slot, pos, out, n, D);
    std::memcpy(y, x, size_t(n * D) * sizeof(float));
    linear_forward(out, D, p_.out_proj, nullptr, y, D, n, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }

  // T tokens of one slot: the gates of all rows at once (vec_sigmoid per row,
  // as rnn_step), then the recurrence continued from the slot's h (zero before
  // token 0) with rnn_step's update, channel blocks in parallel.
  void extend(const float* x, float* y, int64_t T, int64_t slot, int64_t pos0,
              DecodeState& st) override {
    const int64_t D = env_->cfg->d_model, W = 3 * D;
    constexpr int64_t kBlock = 64;  // channels per task: a cache line of h per task at least
    Buffers& b = forward_buffers(false);
    float* u = b.get(kU, T * D);
    float* proj = b.get(kProj, T * W);
    float* out = b.get(kGated, T * D);
    rmsnorm_forward(x, p_.input_norm, u, b.get(kRstd, T), T, D);
    linear_forward(u, D, p_.in_proj, nullptr, proj, W, T, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    sigmoid_inplace(proj, W, nullptr, T, D);
    sigmoid_inplace(proj + 2 * D, W, p_.gate_bias, T, D);
    float* hs = st.rnn[size_t(state_index_)].h.data() + slot * D;
#pragma omp parallel for schedule(static) num_threads(st.scratch.step_threads())
    for (int64_t d0 = 0; d0 < D; d0 += kBlock) {
      const int64_t d1 = std::min(D, d0 + kBlock);
      for (int64_t t = 0; t < T; ++t) {
        const float* z = proj + t * W;
        const float* v = z + D;
        const float* g = z + 2 * D;
        const bool first = pos0 + t == 0;  // h_{-1} = 0
        float* o = out + t * D;
#pragma omp simd
        for (int64_t d = d0; d < d1; ++d) {
          hs[d] = scan_update(g[d], first ? 0.f : hs[d], v[d]);
          o[d] = z[d] * hs[d];
        }
      }
    }
    std::memcpy(y, x, size_t(T * D) * sizeof(float));
    linear_forward(out, D, p_.out_proj, nullptr, y, D, T, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }
};

}  // namespace

std::unique_ptr<Block> make_rnn_mixer(BlockEnv* env, const MixerConfig& m) {
  return std::make_unique<RnnMixer>(env, m);
}

}  // namespace rat
