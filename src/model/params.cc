#include "model/params.h"

#include <cmath>
#include <random>

#include "model/mixer_kinds.h"
#include "util/error.h"

namespace rat {

int64_t in_proj_width(const ModelConfig& cfg, const MixerConfig& m) {
  return mixer_kind_info(m.kind).in_proj_width(cfg, m);
}

void ParamLayout::add(const std::string& name, std::vector<int64_t> shape, Init init,
                      int64_t layer) {
  ParamSpec s;
  s.name = name;
  s.shape = std::move(shape);
  s.numel = 1;
  for (int64_t d : s.shape) s.numel *= d;
  s.offset = total_;
  s.init = init;
  s.layer = layer;
  // Keep every tensor 64-byte aligned in the flat buffer for vector loads.
  total_ += (s.numel + 15) / 16 * 16;
  specs_.push_back(std::move(s));
}

ParamLayout::ParamLayout(const ModelConfig& cfg) : cfg_(cfg) {
  const int64_t D = cfg.d_model, V = cfg.vocab_size;
  add("embedding.wte.weight", {V, D}, Init::kNormal);
  for (int64_t i = 0; i < int64_t(cfg.layers.size()); ++i) {
    const MixerConfig& m = cfg.layers[size_t(i)];
    const std::string sl = "backbone.layers." + std::to_string(i) + ".seq_layer.";
    const std::string hl = "backbone.layers." + std::to_string(i) + ".hidden_layer.";
    for (MixerTensor& t : mixer_kind_info(m.kind).tensors(cfg, m))
      add(sl + t.name, std::move(t.shape), t.init, i);
    const int64_t F = cfg.ffn.d_ffn;
    const int64_t F1 = cfg.ffn.act == Activation::kSwiglu ? 2 * F : F;
    add(hl + "ln.weight", {D}, Init::kOne, i);
    add(hl + "fc1.weight", {F1, D}, Init::kNormal, i);
    if (cfg.ffn.bias) add(hl + "fc1.bias", {F1}, Init::kZero, i);
    add(hl + "fc2.weight", {D, F}, Init::kNormal, i);
    if (cfg.ffn.bias) add(hl + "fc2.bias", {D}, Init::kZero, i);
  }
  add("backbone.ln.weight", {D}, Init::kOne);
  if (!cfg.tie_embedding) add("head.lm_head.weight", {V, D}, Init::kNormal);
}

int64_t ParamLayout::layer_begin(int64_t layer) const {
  for (const ParamSpec& s : specs_)
    if (s.layer == layer) return s.offset;
  throw Error("parameter registry: no tensor of layer " + std::to_string(layer));
}

const ParamSpec* ParamLayout::find(const std::string& name) const {
  for (const ParamSpec& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

ModelView ParamLayout::view(float* base) const {
  ModelView v;
  auto at = [&](const std::string& name) -> float* {
    const ParamSpec* s = find(name);
    return s ? base + s->offset : nullptr;
  };
  v.wte = at("embedding.wte.weight");
  v.final_ln = at("backbone.ln.weight");
  v.lm_head = cfg_.tie_embedding ? v.wte : at("head.lm_head.weight");
  for (size_t i = 0; i < cfg_.layers.size(); ++i) {
    const std::string sl = "backbone.layers." + std::to_string(i) + ".seq_layer.";
    const std::string hl = "backbone.layers." + std::to_string(i) + ".hidden_layer.";
    LayerView l;
    l.input_norm = at(sl + "input_norm.weight");
    l.in_proj = at(sl + "in_proj.weight");
    l.out_proj = at(sl + "out_proj.weight");
    l.gate_bias = at(sl + "gate_bias");
    l.ffn_ln = at(hl + "ln.weight");
    l.fc1_w = at(hl + "fc1.weight");
    l.fc1_b = at(hl + "fc1.bias");
    l.fc2_w = at(hl + "fc2.weight");
    l.fc2_b = at(hl + "fc2.bias");
    v.layers.push_back(l);
  }
  return v;
}

void ParamLayout::init(float* base, uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.02f);
  for (const ParamSpec& s : specs_) {
    float* p = base + s.offset;
    switch (s.init) {
      case Init::kNormal:
        for (int64_t i = 0; i < s.numel; ++i) p[i] = normal(rng);
        break;
      case Init::kZero:
        for (int64_t i = 0; i < s.numel; ++i) p[i] = 0.f;
        break;
      case Init::kOne:
        for (int64_t i = 0; i < s.numel; ++i) p[i] = 1.f;
        break;
      case Init::kGateBiasChunk:
      case Init::kGateBiasSeq: {
        // "chrono" init: log(U(1, M-1)) with M the chunk size (rat) or the
        // training length (rnn); a chunk of 1 or 2 keeps the bias at log 1 = 0.
        const int64_t M =
            s.init == Init::kGateBiasSeq ? cfg_.seq_len : cfg_.layers[size_t(s.layer)].chunk_size;
        float hi = std::max(1.0f, float(M - 1));
        std::uniform_real_distribution<float> u(1.0f, hi);
        for (int64_t i = 0; i < s.numel; ++i) p[i] = hi > 1.0f ? std::log(u(rng)) : 0.f;
        break;
      }
    }
  }
}

}  // namespace rat
