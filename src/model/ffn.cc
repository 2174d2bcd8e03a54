// FFN block (SPEC.md "FFN"; the authors' mlp.py): y = x + fc2(act(fc1(norm(x)))),
// the norm the config's `ln` (RMSNorm by default). With hidden_cell.dropout
// p > 0, a training forward drops fc2's output (bias included) before the
// residual, as the authors' mlp.py: y = x + dropout(fc2(...)).
#include <cstring>

#include "kernels/activations.h"
#include "kernels/dropout.h"
#include "kernels/linear.h"
#include "model/layers.h"
#include "model/norm.h"

namespace rat {

namespace {

enum Saved { kU, kRstd, kH, kA, kZ };
enum Scratch { sDA, sDH, sDU, sDZ };

class Ffn final : public Block {
 public:
  explicit Ffn(BlockEnv* env) : Block(env, MixerConfig{}) {}

  void forward(const float* x, float* y, int64_t B, int64_t T, bool train) override {
    const ModelConfig& cfg = *env_->cfg;
    const int64_t D = cfg.d_model, F = cfg.ffn.d_ffn, N = B * T;
    const int64_t F1 = cfg.ffn.act == Activation::kSwiglu ? 2 * F : F;
    Buffers& b = forward_buffers(train);
    float* u = b.get(kU, N * D);
    float* rstd = b.get(kRstd, norm_stats_size(cfg.ffn.ln, N));
    float* h = b.get(kH, N * F1);
    float* a = b.get(kA, N * F);
    norm_forward(cfg.ffn.ln, x, p_.ffn_ln, p_.ffn_ln_b, u, rstd, N, D);
    linear_forward(u, D, p_.fc1_w, p_.fc1_b, h, F1, N, D, F1, env_->prec, 0.f,
                   env_->w16(p_.fc1_w, D * F1));
    activation_forward(cfg.ffn.act, h, a, N, F);
    if (train && cfg.ffn.dropout > 0.0) {
      // The site's key is fixed for this forward; backward recomputes it.
      key_ = dropout_key(env_->dropout_seed, env_->dropout_stream, uint64_t(state_index_));
      float* z = b.get(kZ, N * D);
      linear_forward(a, F, p_.fc2_w, p_.fc2_b, z, D, N, F, D, env_->prec, 0.f,
                     env_->w16(p_.fc2_w, F * D));
      dropout_add(z, x, y, N * D, cfg.ffn.dropout, key_);
      return;
    }
    std::memcpy(y, x, size_t(N * D) * sizeof(float));
    linear_forward(a, F, p_.fc2_w, p_.fc2_b, y, D, N, F, D, env_->prec, 1.f,
                   env_->w16(p_.fc2_w, F * D));
  }

  // The get() sizes of forward and backward, slot by slot (layers.h BlockBufferSizes):
  // dropout adds the pre-dropout output (kept) and its gradient (scratch).
  BlockBufferSizes buffer_sizes(int64_t B, int64_t T) const override {
    const ModelConfig& cfg = *env_->cfg;
    const int64_t D = cfg.d_model, F = cfg.ffn.d_ffn, N = B * T;
    const int64_t F1 = cfg.ffn.act == Activation::kSwiglu ? 2 * F : F;
    BlockBufferSizes s;
    s.saved = {N * D, norm_stats_size(cfg.ffn.ln, N), N * F1, N * F};
    s.scratch = {N * F, N * F1, N * D};
    if (cfg.ffn.dropout > 0.0) s.saved.push_back(N * D), s.scratch.push_back(N * D);
    return s;
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
    const float* dz = dx;  // y = x + fc2(a): dx holds the gradient of fc2's output
    if (cfg.ffn.dropout > 0.0) {
      float* dzd = env_->scratch.get(sDZ, N * D);
      dropout_backward(dx, dzd, N * D, cfg.ffn.dropout, key_);
      dz = dzd;
    }
    linear_backward(a, F, p_.fc2_w, dz, D, da, F, 0.f, g_.fc2_w, g_.fc2_b, N, F, D, env_->prec);
    activation_backward(cfg.ffn.act, h, da, dh, N, F);
    linear_backward(u, D, p_.fc1_w, dh, F1, du, D, 0.f, g_.fc1_w, g_.fc1_b, N, D, F1, env_->prec);
    norm_backward(cfg.ffn.ln, du, x, p_.ffn_ln, rstd, dx, g_.ffn_ln, g_.ffn_ln_b, N, D);
  }

 private:
  uint64_t key_ = 0;  // the dropout mask key of the last training forward
};

}  // namespace

std::unique_ptr<Block> make_ffn(BlockEnv* env) { return std::make_unique<Ffn>(env); }

}  // namespace rat
