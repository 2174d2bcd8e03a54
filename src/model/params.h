// The one registry of parameters (STYLE.md 3): every tensor's SPEC.md name,
// shape, place in the flat buffer and initialiser. Loading, saving, init, the
// optimiser and the all-reduce all walk this list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace rat {

// kNormal: the weight of a Linear or Embedding, drawn by its module's init
// scheme (SPEC.md "Initialisation", the authors' nn/init.py); kLinearBias: a
// Linear's bias (zero, or uniform under torch_uniform and torch); kZero and
// kOne: norm biases and weights.
enum class Init { kNormal, kZero, kOne, kGateBiasChunk, kGateBiasSeq, kLinearBias };

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // floats from the start of the flat buffer
  int64_t numel = 0;
  Init init = Init::kNormal;
  int64_t layer = -1;      // block index for per-layer tensors, -1 for the others
  InitConfig scheme;       // kNormal, kLinearBias: the owning module's init
  bool embedding = false;  // nn.Embedding (torch's default init differs)
  int64_t fan_in = 0;      // kNormal, kLinearBias: the Linear's input width
};

// Views of one layer's tensors in a flat buffer (params or grads alike).
struct LayerView {
  float* input_norm = nullptr;    // [D] (null: ln identity)
  float* input_norm_b = nullptr;  // [D] (ln layernorm)
  float* in_proj = nullptr;       // [W_in, D]
  float* in_proj_b = nullptr;     // [W_in] (attention kinds with bias)
  float* out_proj = nullptr;      // [D, D]
  float* out_proj_b = nullptr;    // [D] (attention kinds with bias)
  float* gate_bias = nullptr;     // [D] (rat, rnn)
  float* ffn_ln = nullptr;        // [D] (null: ln identity)
  float* ffn_ln_b = nullptr;      // [D] (ln layernorm)
  float* fc1_w = nullptr;         // [F or 2F, D]
  float* fc1_b = nullptr;         // [F or 2F] when bias
  float* fc2_w = nullptr;         // [D, F]
  float* fc2_b = nullptr;         // [D] when bias
};

struct ModelView {
  float* wte = nullptr;         // [V, D]
  float* lm_head = nullptr;     // [V, D]: wte when tied
  float* final_ln = nullptr;    // [D] (null: ln identity)
  float* final_ln_b = nullptr;  // [D] (ln layernorm)
  std::vector<LayerView> layers;
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& cfg);
  const std::vector<ParamSpec>& specs() const { return specs_; }
  int64_t total() const { return total_; }
  const ParamSpec* find(const std::string& name) const;
  // Offset of block `layer`'s first tensor (blocks are laid out in order).
  int64_t layer_begin(int64_t layer) const;
  ModelView view(float* base) const;
  // SPEC.md "Initialisation", deterministic in `seed`.
  void init(float* base, uint64_t seed) const;

 private:
  void add(const std::string& name, std::vector<int64_t> shape, Init init, int64_t layer = -1,
           const InitConfig& scheme = {}, bool embedding = false);
  // weight (and bias) of a norm of kind `k` named prefix + "weight" / "bias".
  void add_norm(const std::string& prefix, NormKind k, int64_t D, int64_t layer);
  ModelConfig cfg_;
  std::vector<ParamSpec> specs_;
  int64_t total_ = 0;
};

// Output width of a mixer's in_proj (SPEC.md): rat 3D + 2GP, attention,
// local_attention and rnn 3D, identity 0 (its descriptor's).
int64_t in_proj_width(const ModelConfig& cfg, const MixerConfig& m);

}  // namespace rat
