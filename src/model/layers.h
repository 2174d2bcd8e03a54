// Blocks of the backbone (SPEC.md "Mixers", "FFN"): each computes
// y = x + f(RMSNorm(x)) with its own pre-norm. A training forward keeps
// exactly what backward needs in the block's own buffers, sized once per
// (B, T); backward turns the gradient of y into the gradient of x in place and
// accumulates parameter gradients. A forward without training keeps nothing:
// its intermediates live in the scratch all blocks share (BlockEnv::scratch),
// which the next block overwrites. A block that recomputes (Model::set_recompute)
// trains into the buffers all such blocks share (BlockEnv::recompute) and runs
// its forward again there right before its backward.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/rope.h"
#include "kernels/weight_cache.h"
#include "model/config.h"
#include "model/decode_state.h"
#include "model/params.h"
#include "util/error.h"

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
// scratch of backward and of forwards that do not train (only one block runs
// at a time).
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
  // The dropout masks of the next training forward (kernels/dropout.h): the
  // trainer numbers each forward so a resumed run draws the same masks.
  uint64_t dropout_seed = 0, dropout_stream = 0;
  Buffers scratch;
  // The intermediates of every block that recomputes them (Model::set_recompute):
  // one block's worth (per slot, the largest any of them needs), which each
  // such block borrows for its training forward and again for its backward.
  Buffers recompute;
  const RopeTable& rope_table(int64_t P, int64_t max_pos);
};

// Floats per Buffers slot one training step at (B, T) asks of a block:
// `saved`, what its training forward keeps (the same slots a forward that does
// not train takes from the shared scratch), and `scratch`, what its backward
// takes from BlockEnv::scratch. Each block states them beside its forward and
// backward; the memory plan (train/memory_plan.h) sizes activations from them
// without allocating, and tests/cpp/train/test_memory_plan.cc holds them to the
// buffers a real step grows.
struct BlockBufferSizes {
  std::vector<int64_t> saved, scratch;
};

class Block {
 public:
  virtual ~Block() = default;
  // x, y: [B*T, D] (distinct). train: keep what backward needs; otherwise
  // keep nothing (the intermediates go to the shared scratch).
  virtual void forward(const float* x, float* y, int64_t B, int64_t T, bool train) = 0;
  // dx: gradient of y on entry, of x on exit. x: this block's forward input.
  // Needs the block's last forward to have trained.
  virtual void backward(const float* x, float* dx, int64_t B, int64_t T) = 0;
  // Bytes of activations this block keeps for backward.
  int64_t activation_bytes() const { return saved_.bytes(); }
  // What forward(train) and backward at (B, T) ask of the buffers (BlockBufferSizes).
  virtual BlockBufferSizes buffer_sizes(int64_t B, int64_t T) const = 0;

  // Activation recomputation: a training forward whose intermediates go to
  // the shared BlockEnv::recompute instead of this block's own buffers, and
  // a backward that first runs that forward again there (y: where its output,
  // identical to the first one's and unused, may go). The same code runs on
  // the same inputs, dropout masks included (kernels/dropout.h), so the
  // gradients are those of forward + backward bit for bit. The buffers are
  // swapped in, not copied: no allocation after the first step.
  void forward_unkept(const float* x, float* y, int64_t B, int64_t T) {
    Borrow shared(*this);
    forward(x, y, B, T, true);
  }
  void backward_recomputed(const float* x, float* y, float* dx, int64_t B, int64_t T) {
    Borrow shared(*this);
    forward(x, y, B, T, true);
    backward(x, dx, B, T);
  }
  // Frees what a training forward kept (the block now recomputes it). Until
  // its next forward a plain backward is refused: nothing it needs is kept.
  void release_saved() {
    saved_ = Buffers();
    fwd_ = &env_->scratch;
  }
  void bind(const LayerView& p, const LayerView& g) { p_ = p, g_ = g; }

  // Generation (SPEC.md "Generation state"; driven by Model::prefill / step).
  // Mixers only; the FFN is per token and decodes with forward(x, y, n, 1, false).
  // The layer's position among the layers of its kind: its entry in the
  // DecodeState list of that kind (set by Model; 0 for a lone block).
  void set_state_index(int64_t i) { state_index_ = i; }
  // Makes this layer's entry of st for st.max_batch slots of st.max_len
  // tokens and grows st.scratch to its step's needs (all allocation happens here).
  virtual void init_state(DecodeState& st) {}
  // Right after forward(x, y, 1, T, train) over one sequence: lifts its decode
  // state out of what forward computed into slot `slot` (prefill without a
  // second pass). With train false, before any other block runs.
  virtual void export_state(DecodeState& st, int64_t slot, int64_t T) {}
  // One token for each of n rows: row i is slot[i]'s token at position pos[i]
  // (0-based; the slot holds the state of tokens 0 .. pos[i]-1).
  // x, y: [n, D]; y = the block's output. Allocation-free.
  virtual void step(const float* x, float* y, const int64_t* slot, const int64_t* pos, int64_t n,
                    DecodeState& st) {}
  // Continues slot `slot` (holding the state of tokens 0 .. pos0-1) with T
  // more tokens in one pass: x, y: [T, D], rows at positions pos0 .. pos0+T-1.
  // The norm and projections are GEMMs over the T rows; the mixing runs the
  // step's per-token kernels (the same bits as T steps), so the slot then
  // holds what T steps would leave. Grows the shared scratch to T rows once.
  virtual void extend(const float* x, float* y, int64_t T, int64_t slot, int64_t pos0,
                      DecodeState& st) {
    throw Error("this block cannot continue a decode state");
  }

 protected:
  Block(BlockEnv* env, MixerConfig m) : env_(env), m_(m) {}
  // Where this forward's intermediates go: the block's own buffers when
  // training, else the shared scratch. Remembered for export_state and backward.
  Buffers& forward_buffers(bool train) {
    fwd_ = train ? &saved_ : &env_->scratch;
    return *fwd_;
  }
  // backward reads what a training forward kept.
  void check_trained() const {
    if (fwd_ != &saved_) throw Error("backward after a forward that did not train");
  }
  BlockEnv* env_;
  MixerConfig m_;
  LayerView p_, g_;
  Buffers saved_;
  Buffers* fwd_ = &saved_;  // where the last forward's intermediates are
  int64_t state_index_ = 0;

 private:
  // Lends env_->recompute to this block as saved_ for a scope; afterwards
  // saved_ is its own (empty) buffers again and the last forward's
  // intermediates are in the shared buffers, so a plain backward is refused.
  struct Borrow {
    explicit Borrow(Block& b) : b(b) { std::swap(b.saved_, b.env_->recompute); }
    ~Borrow() {
      std::swap(b.saved_, b.env_->recompute);
      b.fwd_ = &b.env_->recompute;
    }
    Block& b;
  };
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
