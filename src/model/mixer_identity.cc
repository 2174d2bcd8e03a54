// The authors' `identity` sequence cell (their configs/model/backbone/layer/
// identity.yaml, class Identity in src/model/base.py): the block returns its
// input. Unlike the other mixers it has no pre-norm, no residual branch, no
// tensors and no generation state, so y = x in every mode.
#include <cstring>

#include "model/layers.h"

namespace rat {

namespace {

void copy_rows(const float* x, float* y, int64_t rows, int64_t D) {
  if (x != y) std::memcpy(y, x, size_t(rows * D) * sizeof(float));
}

class IdentityMixer final : public Block {
 public:
  IdentityMixer(BlockEnv* env, MixerConfig m) : Block(env, m) {}

  void forward(const float* x, float* y, int64_t B, int64_t T, bool train) override {
    copy_rows(x, y, B * T, env_->cfg->d_model);
  }
  // Keeps nothing, needs no scratch.
  BlockBufferSizes buffer_sizes(int64_t B, int64_t T) const override { return {}; }
  // dy/dx = I: the gradient of y is already the gradient of x.
  void backward(const float* x, float* dx, int64_t B, int64_t T) override {}
  void step(const float* x, float* y, const int64_t* slot, const int64_t* pos, int64_t n,
            DecodeState& st) override {
    copy_rows(x, y, n, env_->cfg->d_model);
  }
  void extend(const float* x, float* y, int64_t T, int64_t slot, int64_t pos0,
              DecodeState& st) override {
    copy_rows(x, y, T, env_->cfg->d_model);
  }
};

}  // namespace

std::unique_ptr<Block> make_identity_mixer(BlockEnv* env, const MixerConfig& m) {
  return std::make_unique<IdentityMixer>(env, m);
}

}  // namespace rat
