// One descriptor per mixer kind (SPEC.md "Mixers"): everything the rest of the
// engine needs to know about a kind without naming it. Config parsing, the
// parameter registry, the block factory, the trainer's MFU and both benches
// read these; none of them switches over kinds. Adding a kind is its block's
// file (with its make_* declared in layers.h), a MixerKind value, and its
// descriptor plus one switch case in mixer_kinds.cc (a missing case is a
// -Wswitch warning).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace rat {

class Block;
struct BlockEnv;

// What rotates q and k (SPEC.md "Positional encodings"): decides which
// model.embedding.pe names a kind accepts.
enum class Rotation { kNone, kTokenPosition, kChunkIndex };

// One tensor of a mixer: its state_dict name after `seq_layer.`, shape, init.
struct MixerTensor {
  std::string name;
  std::vector<int64_t> shape;
  Init init = Init::kNormal;
};

// Rows of D values one sequence's decode step reads from its generation state
// at a position: cache rows (K and V, stored in the cache dtype) and running
// state rows (always float32).
struct CacheRows {
  double kv = 0, state = 0;
};

struct MixerKindInfo {
  MixerKind kind;
  const char* name;  // the authors' `_name_` (configs/model/backbone/layer/<name>.yaml)
  bool heads;        // d_head is required and splits D into heads
  Rotation rotation;
  // Output width of in_proj (0: none).
  int64_t (*in_proj_width)(const ModelConfig& cfg, const MixerConfig& m);
  // The mixer's tensors in state_dict order (empty: the kind owns none).
  std::vector<MixerTensor> (*tensors)(const ModelConfig& cfg, const MixerConfig& m);
  // Keys the softmax of query t (0-based) scores; 0 for kinds without one.
  int64_t (*keys_scored)(const MixerConfig& m, int64_t t);
  // What a decode step at position pos (0-based) reads per sequence.
  CacheRows (*cache_rows)(const MixerConfig& m, int64_t pos);
  // The kind's sizes for reports, e.g. "(L16)"; empty when it has none.
  std::string (*sizes)(const MixerConfig& m);
  std::unique_ptr<Block> (*make)(BlockEnv* env, const MixerConfig& m);
};

// The descriptor of a kind (every MixerKind has one).
const MixerKindInfo& mixer_kind_info(MixerKind k);
// Every descriptor, in MixerKind order.
const std::vector<const MixerKindInfo*>& mixer_kinds();
// The kind named `name`, or null.
const MixerKindInfo* find_mixer_kind(const std::string& name);
// The kind named `name`; throws rat::Error "<where>: unknown mixer '<name>',
// expected one of rat, ... (closest: '<nearest name>')".
MixerKind mixer_kind_from_name(const std::string& name, const std::string& where);
// "rat, attention, local_attention, rnn, identity".
std::string mixer_kind_names();
// "rat(L16)", "local_attention(W1024)", "attention".
std::string mixer_label(const MixerConfig& m);

// Counts derived from the descriptor (the conventions of SPEC.md "efficiency
// protocol"): 2 FLOPs per weight of every mixer matrix per token, 4 * D per
// key scored per query (q.k and p*v over H heads of P), backward twice forward
// (input and weight gradients; attention recompute and element-wise gates are
// not counted).
double mixer_matmul_weights(const ModelConfig& cfg, const MixerConfig& m);
double mixer_prefill_flops(const ModelConfig& cfg, const MixerConfig& m,
                           int64_t T);                                              // one sequence
double mixer_train_flops(const ModelConfig& cfg, const MixerConfig& m, int64_t T);  // fwd + bwd
double mixer_decode_flops(const ModelConfig& cfg, const MixerConfig& m, int64_t pos);  // one token
// Bytes one sequence's decode step at `pos` reads from its generation state.
double mixer_decode_cache_bytes(const ModelConfig& cfg, const MixerConfig& m, int64_t pos,
                                bool bf16_cache);
// Bytes of the mixer's weights a decode step reads: matrices in f32 or their
// bf16 copies (Bf16WeightCache), vectors always f32.
double mixer_weight_bytes(const ModelConfig& cfg, const MixerConfig& m, bool bf16_weights);

}  // namespace rat
