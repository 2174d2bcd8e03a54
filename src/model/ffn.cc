// FFN block (SPEC.md "FFN"): y = x + fc2(act(fc1(RMSNorm(x)))).
#include <cstring>

#include "kernels/activations.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "model/layers.h"

namespace rat {

namespace {

enum Saved { kU, kRstd, kH, kA };
enum Scratch { sDA, sDH, sDU };

class Ffn final : public Block {
 public:
  explicit Ffn(BlockEnv* env) : Block(env, MixerConfig{}) {}

  void forward(const float* x, float* y, int64_t B, int64_t T, bool train) override {
    const ModelConfig& cfg = *env_->cfg;
    const int64_t D = cfg.d_model, F = cfg.ffn.d_ffn, N = B * T;
    const int64_t F1 = cfg.ffn.act == Activation::kSwiglu ? 2 * F : F;
    Buffers& b = forward_buffers(train);
    float* u = b.get(kU, N * D);
    float* rstd = b.get(kRstd, N);
    float* h = b.get(kH, N * F1);
    float* a = b.get(kA, N * F);
    rmsnorm_forward(x, p_.ffn_ln, u, rstd, N, D);
    linear_forward(u, D, p_.fc1_w, p_.fc1_b, h, F1, N, D, F1, env_->prec, 0.f,
                   env_->w16(p_.fc1_w, D * F1));
    activation_forward(cfg.ffn.act, h, a, N, F);
    std::memcpy(y, x, size_t(N * D) * sizeof(float));
    linear_forward(a, F, p_.fc2_w, p_.fc2_b, y, D, N, F, D, env_->prec, 1.f,
                   env_->w16(p_.fc2_w, F * D));
  }

  void backward(const float* x, float* dx, int64_t B, int64_t T) override {
    const ModelConfig& cfg = *env_->cfg;
    const int64_t D = cfg.d_model, F = cfg.ffn.d_ffn, N = B * T;
    const int64_t F1 = cfg.ffn.act == Activation::kSwiglu ? 2 * F : F;
    check_trained();
    float* u = saved_.get(kU, 0);
    float* rstd = saved_.get(kRstd, 0);
    float* h = saved_.get(kH, 0);
    float* a = saved_.get(kA, 0);
    float* da = env_->scratch.get(sDA, N * F);
    float* dh = env_->scratch.get(sDH, N * F1);
    float* du = env_->scratch.get(sDU, N * D);
    linear_backward(a, F, p_.fc2_w, dx, D, da, F, 0.f, g_.fc2_w, g_.fc2_b, N, F, D, env_->prec);
    activation_backward(cfg.ffn.act, h, da, dh, N, F);
    linear_backward(u, D, p_.fc1_w, dh, F1, du, D, 0.f, g_.fc1_w, g_.fc1_b, N, D, F1, env_->prec);
    rmsnorm_backward(du, x, p_.ffn_ln, rstd, dx, g_.ffn_ln, N, D);
  }
};

}  // namespace

std::unique_ptr<Block> make_ffn(BlockEnv* env) { return std::make_unique<Ffn>(env); }

}  // namespace rat
