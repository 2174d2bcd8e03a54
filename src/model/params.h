// The one registry of parameters (STYLE.md 3): every tensor's SPEC.md name,
// shape, place in the flat buffer and initialiser. Loading, saving, init, the
// optimiser and the all-reduce all walk this list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace rat {

enum class Init { kNormal, kZero, kOne, kGateBiasChunk, kGateBiasSeq };

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // floats from the start of the flat buffer
  int64_t numel = 0;
  Init init = Init::kNormal;
  int64_t layer = -1;  // block index for per-layer tensors, -1 for the others
};

// Views of one layer's tensors in a flat buffer (params or grads alike).
struct LayerView {
  float* input_norm = nullptr;  // [D]
  float* in_proj = nullptr;     // [W_in, D]
  float* out_proj = nullptr;    // [D, D]
  float* gate_bias = nullptr;   // [D] (rat, rnn)
  float* ffn_ln = nullptr;      // [D]
  float* fc1_w = nullptr;       // [F or 2F, D]
  float* fc1_b = nullptr;       // [F or 2F] when bias
  float* fc2_w = nullptr;       // [D, F]
  float* fc2_b = nullptr;       // [D] when bias
};

struct ModelView {
  float* wte = nullptr;       // [V, D]
  float* lm_head = nullptr;   // [V, D]: wte when tied
  float* final_ln = nullptr;  // [D]
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
  void add(const std::string& name, std::vector<int64_t> shape, Init init, int64_t layer = -1);
  ModelConfig cfg_;
  std::vector<ParamSpec> specs_;
  int64_t total_ = 0;
};

// Output width of a mixer's in_proj (SPEC.md): rat 3D + 2GP, attention,
// local_attention and rnn 3D, identity 0 (its descriptor's).
int64_t in_proj_width(const ModelConfig& cfg, const MixerConfig& m);

}  // namespace rat
