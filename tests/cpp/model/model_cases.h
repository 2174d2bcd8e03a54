// Small models of every mixer kind for the model-level tests that compare one
// way of running a model against another (modes, recomputation): the same
// configs, the same scaled init and the same ids in each, defined once.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"

namespace rat::testing {

// d_head 8; RAT with 2 groups and chunk L; local attention with `window`.
inline MixerConfig small_cell(MixerKind kind, int64_t L = 4, int64_t window = 0) {
  MixerConfig m;
  m.kind = kind;
  m.d_head = 8;
  m.ngroups = kind == MixerKind::kRat ? 2 : 1;
  m.chunk_size = L;
  m.window_size = window;
  return m;
}

// D 32, d_ffn 64, V 61; cell1 set: sequence_interleave (cell1 on odd layers).
inline ModelConfig small_config(const MixerConfig& m, int64_t layers,
                                const MixerConfig* cell1 = nullptr,
                                Activation act = Activation::kGelu, double ffn_dropout = 0,
                                int64_t seq_len = 64) {
  ModelConfig c;
  c.seq_len = seq_len;
  c.vocab_size = 61;
  c.num_layers = layers;
  c.d_model = 32;
  c.seq_cell = m;
  if (cell1) {
    c.backbone = "sequence_interleave";
    c.interleave_step = 2;
    c.seq_cell1 = *cell1;
  }
  c.ffn.d_ffn = 64;
  c.ffn.act = act;
  c.ffn.dropout = ffn_dropout;
  c.pe = PosEnc::kRopeInterRope;
  c.resolve("test");
  return c;
}

struct ModelCase {
  std::string name;
  ModelConfig cfg;
};

// rat, attention, local, rnn with `layers` layers; the hybrid (local attention
// and RAT interleaved) with one more. rnn_act: the RNN case's FFN activation.
inline std::vector<ModelCase> mixer_cases(int64_t layers, Activation rnn_act = Activation::kGelu,
                                          double ffn_dropout = 0) {
  const MixerConfig rat = small_cell(MixerKind::kRat, 4);
  const Activation gelu = Activation::kGelu;
  return {{"rat", small_config(rat, layers, nullptr, gelu, ffn_dropout)},
          {"attention",
           small_config(small_cell(MixerKind::kAttention), layers, nullptr, gelu, ffn_dropout)},
          {"local", small_config(small_cell(MixerKind::kLocalAttention, 4, 3), layers, nullptr,
                                 gelu, ffn_dropout)},
          {"rnn", small_config(small_cell(MixerKind::kRnn), layers, nullptr, rnn_act, ffn_dropout)},
          {"hybrid", small_config(small_cell(MixerKind::kLocalAttention, 4, 5), layers + 1, &rat,
                                  gelu, ffn_dropout)}};
}

// SPEC init with the matrices scaled up to std 1/sqrt(fan_in), so that every
// layer moves the output by O(1) (a state or buffer mix-up, or a wrong
// intermediate, then shows in the output and in every gradient).
inline std::unique_ptr<Model> scaled_model(const ModelConfig& cfg, uint64_t seed = 3) {
  auto m = std::make_unique<Model>(cfg);
  m->init(seed);
  for (const ParamSpec& s : m->layout().specs()) {
    const float k = s.name == "embedding.wte.weight" ? 0.25f / 0.02f
                    : s.shape.size() == 2            ? (1.f / std::sqrt(float(s.shape[1]))) / 0.02f
                                                     : 1.f;
    for (int64_t i = 0; i < s.numel; ++i) m->params()[s.offset + i] *= k;
  }
  return m;
}

// n ids below V from mt19937(seed).
inline std::vector<int32_t> ids_of(int64_t n, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(size_t(n), 0);
  for (auto& i : ids) i = int32_t(rng() % uint32_t(V));
  return ids;
}

}  // namespace rat::testing
