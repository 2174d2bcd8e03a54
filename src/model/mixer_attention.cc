// Attention and local attention mixers (SPEC.md): [v, q, k] = in_proj(RMSNorm(x)),
// RoPE on q and k at absolute positions, causal softmax (local: keys
// t - window .. t), y = x + out_proj(o). No output gate.
#include <cstring>

#include "kernels/attention.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "model/layers.h"

namespace rat {

namespace {

enum Saved { kU, kRstd, kProj, kO, kLse };
enum Scratch { sDProj, sDO };

class AttentionMixer final : public Block {
 public:
  AttentionMixer(BlockEnv* env, MixerConfig m) : Block(env, m) {}

  AttnShape shape(int64_t B, int64_t T) const {
    const int64_t D = env_->cfg->d_model, P = m_.d_head;
    AttnShape s{};
    s.B = B, s.T = T, s.H = D / P, s.P = P;
    s.window = m_.kind == MixerKind::kLocalAttention ? m_.window_size : -1;
    s.ld_q = s.ld_k = s.ld_v = 3 * D;
    s.ld_o = D;
    return s;
  }

  void forward(const float* x, float* y, int64_t B, int64_t T, bool train) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D, N = B * T;
    float* u = saved_.get(kU, N * D);
    float* rstd = saved_.get(kRstd, N);
    float* proj = saved_.get(kProj, N * W);
    float* o = saved_.get(kO, N * D);
    float* lse = saved_.get(kLse, B * H * T);
    rmsnorm_forward(x, p_.input_norm, u, rstd, N, D);
    linear_forward(u, D, p_.in_proj, nullptr, proj, W, N, D, W, env_->prec);
    const RopeTable& rope = env_->rope_table(P, T);
    rope_apply(rope, proj + D, B, T, 0, 2 * H, W, 1, +1);  // q and k are adjacent
    attention_forward(shape(B, T), proj + D, proj + 2 * D, proj, o, lse);
    std::memcpy(y, x, size_t(N * D) * sizeof(float));
    linear_forward(o, D, p_.out_proj, nullptr, y, D, N, D, D, env_->prec, 1.f);
    (void)train;
  }

  void backward(const float* x, float* dx, int64_t B, int64_t T) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D, N = B * T;
    float* u = saved_.get(kU, 0);
    float* rstd = saved_.get(kRstd, 0);
    float* proj = saved_.get(kProj, 0);
    float* o = saved_.get(kO, 0);
    float* lse = saved_.get(kLse, 0);
    float* dproj = env_->scratch.get(sDProj, N * W);
    float* dout = env_->scratch.get(sDO, N * D);
    linear_backward(o, D, p_.out_proj, dx, D, dout, D, 0.f, g_.out_proj, nullptr, N, D, D,
                    env_->prec);
    attention_backward(shape(B, T), proj + D, proj + 2 * D, proj, o, lse, dout, dproj + D,
                       dproj + 2 * D, dproj);
    const RopeTable& rope = env_->rope_table(P, T);
    rope_apply(rope, dproj + D, B, T, 0, 2 * H, W, 1, -1);
    float* du = dout;
    linear_backward(u, D, p_.in_proj, dproj, W, du, D, 0.f, g_.in_proj, nullptr, N, D, W,
                    env_->prec);
    rmsnorm_backward(du, x, p_.input_norm, rstd, dx, g_.input_norm, N, D);
  }
};

}  // namespace

std::unique_ptr<Block> make_attention_mixer(BlockEnv* env, const MixerConfig& m) {
  return std::make_unique<AttentionMixer>(env, m);
}

}  // namespace rat
