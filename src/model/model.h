// The language model (SPEC.md "The language model"):
//   x = wte[ids]; for each block: x = FFN_i(Mixer_i(x)); logits = lm_head(RMSNorm(x)).
// Parameters and their gradients live in two flat buffers laid out by the
// ParamLayout registry; activations are sized once for the largest (B, T).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cross_entropy.h"
#include "model/config.h"
#include "model/decode_state.h"
#include "model/layers.h"
#include "model/params.h"

namespace rat {

// Told during backward that the stretch [begin, end) of the flat gradient
// buffer is final for this micro-batch: called from the top of the network
// down (final norm and untied head, then each block, last to first, then the
// embedding with begin == 0); the stretches adjoin and cover the buffer.
// Data parallelism starts each stretch's all-reduce here, under backward.
using GradsReadyFn = std::function<void(int64_t begin, int64_t end)>;

// Activation recomputation (trainer.activation_checkpointing): which blocks
// keep only their input (the residual stream, kept anyway) in a training
// forward and run their forward again right before their backward, trading
// one more forward of those blocks for their intermediates. kBlock: mixers
// and FFNs; kMixer: mixers only (FFNs keep theirs).
enum class Recompute { kNone, kBlock, kMixer };

// Activation bytes of a training step at (B, T) by where they live, as
// Model::activation_bytes() counts them after the step: the residual streams
// and head buffers (Model), the intermediates the blocks keep, the one
// block's worth shared by the blocks that recompute, and the scratch all
// blocks share (backward's, and a scoring forward's when the run validates).
struct ActivationPlan {
  int64_t stream = 0, kept = 0, recompute = 0, scratch = 0;
  int64_t total() const { return stream + kept + recompute + scratch; }
};

class Model {
 public:
  explicit Model(const ModelConfig& cfg);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  float* params() { return params_.data(); }
  // Made on first use: a model that only scores or generates holds no gradients.
  float* grads();
  int64_t num_params() const;  // distinct parameters (tied head counted once)
  // Weights that enter a matrix product for every token: every 2-D tensor but
  // the embedding table (a lookup), plus the head, which is the table again
  // when tied. FLOP counts are 2 (forward) or 6 (forward + backward) per one.
  double matmul_weights() const;

  void set_precision(Precision p) { env_.prec = p; }
  Precision precision() const { return env_.prec; }
  // Inference with frozen weights (generation, evaluation): bf16 products use
  // copies of the weights rounded once (Bf16WeightCache, half the f32 size)
  // instead of rounding them on every call. Whoever then changes params()
  // must call weights_changed(). Off by default (training).
  void set_frozen_weight_cache(bool on) { env_.w16cache = on ? &w16cache_ : nullptr; }
  void weights_changed() { w16cache_.invalidate(); }
  // The bf16 copy of a tensor of params() (null unless cached and bf16).
  const uint16_t* w16(const float* W, int64_t n) const { return env_.w16(W, n); }

  void init(uint64_t seed) { layout_.init(params_.data(), seed); }
  // Numbers the next training forwards for dropout (kernels/dropout.h): the
  // masks are a function of (seed, stream, block, element) only. Defaults 0, 0.
  void set_dropout_stream(uint64_t seed, uint64_t stream) {
    env_.dropout_seed = seed;
    env_.dropout_stream = stream;
  }
  void zero_grads();

  // Which blocks recompute their intermediates in backward (default kNone).
  // The gradients are the same bits either way; what the blocks that now
  // recompute kept is freed.
  void set_recompute(Recompute r);
  Recompute recompute() const { return recompute_; }

  // The layer loop (embedding, then mixer and FFN of each layer, final norm)
  // runs in one of three modes:
  //   kTrain:   every block keeps what backward needs (a block that
  //             recomputes, only its input), and the residual stream before
  //             each block is kept;
  //   kScore:   forward only: nothing is kept; two residual buffers alternate
  //             and the blocks work in one shared scratch, so activations take
  //             one layer's worth whatever the depth;
  //   kPrefill: kScore over one sequence that also leaves each mixer's
  //             generation state in a DecodeState slot.
  enum class Mode { kTrain, kScore, kPrefill };

  // Forward over ids [B, T]; loss against labels [B, T] (-100 ignored).
  // With backward (kTrain), gradients of (loss_sum * loss_scale) are
  // ACCUMULATED into grads(); without, the forward scores (kScore).
  // loss_scale <= 0 means 1/count (this micro-batch's mean).
  CeResult forward_backward(const int32_t* ids, const int32_t* labels, int64_t B, int64_t T,
                            bool backward, float loss_scale = 0.f,
                            const GradsReadyFn& grads_ready = nullptr);
  // kScore: the summed loss of ids [B, T] against labels, nothing kept.
  CeResult score(const int32_t* ids, const int32_t* labels, int64_t B, int64_t T) {
    return forward_backward(ids, labels, B, T, false);
  }
  // Full logits [B, T, V] (tests and small evaluations); mode kTrain or kScore.
  void logits(const int32_t* ids, int64_t B, int64_t T, float* out, Mode mode = Mode::kScore);
  // log p(ids[t+1] | ids[..t]) of every position: out [B, T] gets
  // log_softmax(logits)[labels] (0 where a label is ignored). Logits exist
  // a block of rows at a time (the fused head), never all at once. With
  // argmax [B, T], it also gets the greedy prediction of every position
  // (ignored labels too): the first id of the largest logit, as torch.argmax
  // picks, so `argmax == label` is lm-eval's is_greedy test per token.
  void label_log_probs(const int32_t* ids, const int32_t* labels, int64_t B, int64_t T, float* out,
                       int32_t* argmax = nullptr);

  // Generation (SPEC.md "Generation state"; slots managed by src/generate/decoder.h).
  // A state for max_batch slots of max_len tokens; bf16: K/V rows as bf16.
  std::unique_ptr<DecodeState> make_decode_state(int64_t max_batch, int64_t max_len,
                                                 bool bf16 = false);
  // Restarts slot `slot` of st with ids [n] (kPrefill); logits [V] of the
  // prediction after the last token.
  void prefill(const int32_t* ids, int64_t n, DecodeState& st, int64_t slot, float* logits);
  // Continues slot `slot` of st, which holds the state of pos0 tokens, with
  // ids [n] at positions pos0 .. pos0+n-1 in one pass (Block::extend: GEMMs
  // over the n rows, the step's per-token mixing); logits [V] of the
  // prediction after the last. pos0 == 0 starts the slot afresh.
  void extend(const int32_t* ids, int64_t n, DecodeState& st, int64_t slot, int64_t pos0,
              float* logits);
  // One token for each of n rows: ids[i] at position pos[i] of slot slots[i]
  // (distinct slots holding pos[i] tokens); logits [n, V]. Allocation-free.
  void step(const int32_t* ids, const int64_t* slots, const int64_t* pos, int64_t n,
            DecodeState& st, float* logits);

  // Benchmarks and tests drive single blocks.
  Block& mixer(size_t i) { return *mixers_[i]; }
  Block& ffn(size_t i) { return *ffns_[i]; }
  ModelView weights() { return layout_.view(params_.data()); }

  // Bytes held for activations and scratch at the largest shape seen so far.
  int64_t activation_bytes() const;
  // What activation_bytes() will be after training steps at (B, T) with
  // recomputation r (and scoring forwards at (B, T) too when `scores`),
  // from the blocks' own buffer sizes (layers.h BlockBufferSizes): nothing
  // of that size is allocated, nor are the parameters.
  static ActivationPlan plan_activations(const ModelConfig& cfg, int64_t B, int64_t T, Recompute r,
                                         bool scores);

 private:
  // Runs the layers in `mode`; returns the residual stream after the last
  // one [B*T, D] (in acts_).
  const float* forward_layers(const int32_t* ids, int64_t B, int64_t T, Mode mode, DecodeState* st,
                              int64_t slot);
  // forward_layers, then the final norm into a buffer returned: hf [B*T, D].
  const float* forward_hidden(const int32_t* ids, int64_t B, int64_t T, Mode mode);

  ModelConfig cfg_;
  ParamLayout layout_;
  std::vector<float> params_;
  // calloc'd on first use: a large calloc maps fresh zero pages without
  // writing them, so the gradients take memory only where backward writes
  // (a SHARD_GRAD_OP rank keeps its shard resident, train/trainer.cc).
  struct FreeFloats {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], FreeFloats> grads_;
  std::vector<int64_t> layer_begin_;  // where block i's tensors start; [L] = final norm
  BlockEnv env_;
  Bf16WeightCache w16cache_;
  std::vector<std::unique_ptr<Block>> mixers_, ffns_;
  Recompute recompute_ = Recompute::kNone;
  // Residual stream ([2L+1][N, D] in kTrain, two [N, D] otherwise), final
  // norm output and rstd, head and stream gradients.
  Buffers acts_;
};

// Model directories (SPEC.md "Checkpoints and configs").
// Loads config.yaml + model.safetensors; every tensor's presence, shape and
// dtype is checked and the first offender named.
std::unique_ptr<Model> load_model_dir(const std::string& dir);
// Writes config.yaml and model.safetensors (atomically, via temporary names).
void save_model_dir(Model& model, const std::string& dir);

}  // namespace rat
