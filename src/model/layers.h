// Blocks of the backbone (SPEC.md "Mixers", "FFN"): each computes
// y = x + f(RMSNorm(x)) with its own pre-norm. Forward keeps exactly what
// backward needs in buffers sized once per (B, T); backward turns the gradient
// of y into the gradient of x in place and accumulates parameter gradients.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/rope.h"
#include "kernels/weight_cache.h"
#include "model/config.h"
#include "model/decode_state.h"
#include "model/params.h"

namespace rat {

// Grow-only buffers: a slot is resized when a larger shape first needs it,
// never inside a steady-state step.
class Buffers {
 public:
  float* get(int slot, int64_t n) {
    if (slot >= int(bufs_.size())) bufs_.resize(size_t(slot) + 1);
    if (int64_t(bufs_[size_t(slot)].size()) < n) bufs_[size_t(slot)].resize(size_t(n));
    return bufs_[size_t(slot)].data();
  }
  int64_t bytes() const {
    int64_t b = 0;
    for (const auto& v : bufs_) b += int64_t(v.size() * sizeof(float));
    return b;
  }

 private:
  std::vector<std::vector<float>> bufs_;
};

// What all blocks of one model share: sizes, precision, rotary tables and the
// backward scratch (only one block runs backward at a time).
struct BlockEnv {
  const ModelConfig* cfg = nullptr;
  Precision prec = Precision::kF32;
  // Frozen-weight bf16 copies (inference only; null in training, where the
  // weights change every step and each GEMM rounds them itself).
  Bf16WeightCache* w16cache = nullptr;
  // W's bf16 copy when products run in bf16 with a cache, else null.
  const uint16_t* w16(const float* W, int64_t n) const {
    return prec == Precision::kBF16 && w16cache ? w16cache->get(W, n) : nullptr;
  }
  std::map<int64_t, RopeTable> rope;  // by head width
  Buffers scratch;
  const RopeTable& rope_table(int64_t P, int64_t max_pos);
};

class Block {
 public:
  virtual ~Block() = default;
  // x, y: [B*T, D]. When `train` is false nothing is kept for backward.
  virtual void forward(const float* x, float* y, int64_t B, int64_t T, bool train) = 0;
  // dx: gradient of y on entry, of x on exit. x: this block's forward input.
  virtual void backward(const float* x, float* dx, int64_t B, int64_t T) = 0;
  // Bytes of saved activations and of its own decode state (for reports).
  int64_t activation_bytes() const { return saved_.bytes(); }
  void bind(const LayerView& p, const LayerView& g) { p_ = p, g_ = g; }

  // Generation (SPEC.md "Generation state"; driven by src/generate/decoder.h).
  // Mixers only; the FFN is per token and decodes with forward(x, y, n, 1).
  // Sizes st for max_batch slots of max_len tokens (all allocation happens here).
  virtual void init_state(MixerState& st, int64_t max_batch, int64_t max_len) {}
  // Right after forward(x, y, 1, T) over one sequence: lifts its decode state
  // out of what forward kept into slot `slot` (prefill without a second pass).
  virtual void export_state(MixerState& st, int64_t slot, int64_t T) {}
  // One token for each of n rows: row i is slot[i]'s token at position pos[i]
  // (0-based; the slot holds the state of tokens 0 .. pos[i]-1).
  // x, y: [n, D]; y = the block's output. Allocation-free.
  virtual void step(const float* x, float* y, const int64_t* slot, const int64_t* pos, int64_t n,
                    MixerState& st) {}

 protected:
  Block(BlockEnv* env, MixerConfig m) : env_(env), m_(m) {}
  BlockEnv* env_;
  MixerConfig m_;
  LayerView p_, g_;
  Buffers saved_;
};

std::unique_ptr<Block> make_mixer(BlockEnv* env, const MixerConfig& m);
std::unique_ptr<Block> make_ffn(BlockEnv* env);

std::unique_ptr<Block> make_rat_mixer(BlockEnv* env, const MixerConfig& m);
std::unique_ptr<Block> make_attention_mixer(BlockEnv* env, const MixerConfig& m);
std::unique_ptr<Block> make_rnn_mixer(BlockEnv* env, const MixerConfig& m);
std::unique_ptr<Block> make_identity_mixer(BlockEnv* env, const MixerConfig& m);

// x[n, :D] = sigmoid(x[n, :D] + bias) over rows of stride ld (bias may be null).
void sigmoid_inplace(float* x, int64_t ld, const float* bias, int64_t N, int64_t D);


}  // namespace rat
