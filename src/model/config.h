// Model configuration: the authors' resolved config.yaml schema (SPEC.md,
// "Checkpoints and configs"), reduced to a plain struct with one entry per
// layer so the hybrid is data, not a code path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/types.h"

namespace YAML {
class Node;
}

namespace rat {

struct KeySchema;  // model/yaml_reader.h

// Descriptors (names, sizes, tensors, counts, factory): model/mixer_kinds.h.
enum class MixerKind { kRat, kAttention, kLocalAttention, kRnn, kIdentity };
enum class PosEnc { kRope, kInterRope, kRopeInterRope, kEmpty };
// The authors' `ln` (nn/norm.py): torch.nn.RMSNorm (weight), torch.nn.LayerNorm
// (weight and bias), or none; eps 1e-6 wherever their modules build one.
enum class NormKind { kRmsNorm, kLayerNorm, kIdentity };
// The authors' `init._name_` (nn/init.py), applied to every nn.Linear and
// nn.Embedding weight of the module that holds the key (fan_in = the weight's
// last dimension): fixed N(0, initializer_range), xavier N(0, fan_in^-1/2),
// uniform U(+-fan_in^-1/2), the three with zero biases; torch_uniform also
// U(+-fan_in^-1/2) biases; torch: PyTorch's default (Linear U(+-fan_in^-1/2)
// weight and bias, Embedding N(0, 1)).
enum class InitScheme { kFixed, kXavier, kUniform, kTorchUniform, kTorch };

struct InitConfig {
  InitScheme scheme = InitScheme::kFixed;
  double initializer_range = 0.02;  // fixed only
};

const char* mixer_name(MixerKind k);
// Canonical spellings; the tables and their parsers are model/enum_names.h.
const char* activation_name(Activation a);
const char* pe_name(PosEnc p);
const char* norm_name(NormKind n);
const char* init_name(InitScheme i);

// Initialisers: the authors' defaults (configs/model/backbone/layer/*.yaml),
// which a config file that omits the key gets.
struct MixerConfig {
  MixerKind kind = MixerKind::kRat;
  int64_t d_head = 64;
  int64_t ngroups = 2;         // rat only: q/k groups, must divide H
  int64_t chunk_size = 64;     // rat only: L
  int64_t window_size = 1024;  // local_attention only: keys t-window..t
  // attention and local_attention only (the authors' rat and rnn build an
  // RMSNorm and assert no bias whatever the keys say):
  NormKind ln = NormKind::kRmsNorm;  // input_norm
  bool bias = false;                 // in_proj.bias, out_proj.bias
};

struct FfnConfig {
  int64_t d_ffn = 0;
  Activation act = Activation::kGelu;
  bool bias = false;
  NormKind ln = NormKind::kRmsNorm;  // the pre-norm `ln`
  double dropout = 0.0;              // on fc2's output, training only
};

struct ModelConfig {
  // data
  int64_t seq_len = 1024;
  int64_t vocab_size = 0;
  int64_t num_bytes = 2;
  int64_t ignore_input_index = -1;  // input id whose next-token label is masked; -1: none
  // model.backbone
  std::string backbone = "sequence";  // sequence | sequence_interleave
  int64_t num_layers = 0;
  int64_t d_model = 0;
  int64_t interleave_step = 1;
  MixerConfig seq_cell;
  MixerConfig seq_cell1;  // used by sequence_interleave only
  FfnConfig ffn;
  NormKind ln = NormKind::kRmsNorm;  // the final norm (backbone.ln)
  InitConfig init;                   // every block's linears (model.backbone.init)
  InitConfig embedding_init;         // embedding.wte (model.embedding.init)
  InitConfig head_init;              // head.lm_head when untied (model.head.init)
  // model.embedding
  PosEnc pe = PosEnc::kRope;
  double rope_base = 10000.0;
  // task
  bool tie_embedding = true;
  int64_t ignore_index = -100;

  // Resolved: the mixer of every block (SPEC.md "Backbones").
  std::vector<MixerConfig> layers;

  int64_t n_heads(const MixerConfig& m) const { return d_model / m.d_head; }
  // Fills `layers` and checks every cross-key constraint; throws rat::Error
  // naming `where` (the file) and the key on failure.
  void resolve(const std::string& where);
};

// Keys the softmax of query t scores (SPEC.md "Mixers"): attention t + 1, local
// attention min(t, window) + 1, rat the t div L earlier chunk states plus its own
// state, rnn and identity none. keys_scored_total sums it over t < T (the FLOP
// counts use it). Both read the kind's descriptor (model/mixer_kinds.cc).
int64_t keys_scored(const MixerConfig& m, int64_t t);
double keys_scored_total(const MixerConfig& m, int64_t T);

// Reads config.yaml (the authors' resolved schema) and resolves it. Throws
// rat::Error, one line `<file>[:<line>]: <dotted.key>: <problem>, expected
// <what>` (model/yaml_reader.h).
// Required: model.backbone.seq_cell._name_; a vocab size in data.vocab_size
// or model.embedding.vocab_size (equal if both); model.embedding.pe._name_
// unless every mixer is rnn or identity (then `empty`); seq_cell1 for
// sequence_interleave.
// A model key the file omits takes the authors' default (SPEC.md "Experiment
// configs"; their configs/model/backbone tree): num_layers 12, d_model 768,
// interleave_step 2 (sequence_interleave; 1 for sequence), d_head 64,
// ngroups 2, chunk_size 64, window_size 1024, d_ffn 4 * d_model, act_fn
// gelu, bias false, pe.base 10000, tie_embedding true, ignore_index -100;
// ln rmsnorm, dropout 0, init {_name_: fixed, initializer_range: 0.02}
// (model.backbone; cells, embedding and head default to the backbone's).
// The data keys have no default in their tree (each dataset sets them):
// seq_len 1024, num_bytes 2, ignore_input_index -1 (none) here.
// A null value (`key: null`) counts
// as absent, as the authors' resolved configs write. Every key must be one of
// config_file_schema() (an experiment file is a model config too): an unknown
// key names the closest valid one (model/yaml_reader.h check_known_keys).
ModelConfig load_model_config(const std::string& path);
// The keys of rat's config files (SPEC.md "Experiment configs"): `keys` every
// key rat reads (model, data, optim, trainer), `unsupported` the authors'
// options rat does not implement. One list for model config.yaml files and
// experiment files, so both are strict in the same way.
const KeySchema& config_file_schema();

// The same from an already parsed tree (experiment configs carry the model
// keys among others); `path` names the source in messages.
ModelConfig model_config_from_yaml(const YAML::Node& root, const std::string& path);
// Writes a config.yaml that load_model_config (and PyYAML) reads back: only
// the schema keys, with `_name_`s, and per mixer only the keys its kind uses.
// Replaced atomically (util/atomic_file.h).
void save_model_config(const ModelConfig& cfg, const std::string& path);

}  // namespace rat
