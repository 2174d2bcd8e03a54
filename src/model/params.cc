#include "model/params.h"

#include <cmath>
#include <random>

#include "model/mixer_kinds.h"
#include "util/error.h"

namespace rat {

int64_t in_proj_width(const ModelConfig& cfg, const MixerConfig& m) {
  return mixer_kind_info(m.kind).in_proj_width(cfg, m);
}

void ParamLayout::add(const std::string& name, std::vector<int64_t> shape, Init init, int64_t layer,
                      const InitConfig& scheme, bool embedding) {
  ParamSpec s;
  s.scheme = scheme;
  s.embedding = embedding;
  s.fan_in = shape.back();
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

void ParamLayout::add_norm(const std::string& prefix, NormKind k, int64_t D, int64_t layer) {
  if (k != NormKind::kIdentity) add(prefix + "weight", {D}, Init::kOne, layer);
  if (k == NormKind::kLayerNorm) add(prefix + "bias", {D}, Init::kZero, layer);
}

ParamLayout::ParamLayout(const ModelConfig& cfg) : cfg_(cfg) {
  const int64_t D = cfg.d_model, V = cfg.vocab_size;
  add("embedding.wte.weight", {V, D}, Init::kNormal, -1, cfg.embedding_init, true);
  for (int64_t i = 0; i < int64_t(cfg.layers.size()); ++i) {
    const MixerConfig& m = cfg.layers[size_t(i)];
    const std::string sl = "backbone.layers." + std::to_string(i) + ".seq_layer.";
    const std::string hl = "backbone.layers." + std::to_string(i) + ".hidden_layer.";
    for (MixerTensor& t : mixer_kind_info(m.kind).tensors(cfg, m)) {
      // A bias draws with its weight's fan-in (the tensor before it).
      const int64_t fan_in = t.init == Init::kLinearBias ? specs_.back().fan_in : 0;
      add(sl + t.name, std::move(t.shape), t.init, i, cfg.init);
      if (fan_in) specs_.back().fan_in = fan_in;
    }
    const int64_t F = cfg.ffn.d_ffn;
    const int64_t F1 = cfg.ffn.act == Activation::kSwiglu ? 2 * F : F;
    add_norm(hl + "ln.", cfg.ffn.ln, D, i);
    add(hl + "fc1.weight", {F1, D}, Init::kNormal, i, cfg.init);
    if (cfg.ffn.bias) add(hl + "fc1.bias", {F1}, Init::kLinearBias, i, cfg.init);
    if (cfg.ffn.bias) specs_.back().fan_in = D;
    add(hl + "fc2.weight", {D, F}, Init::kNormal, i, cfg.init);
    if (cfg.ffn.bias) add(hl + "fc2.bias", {D}, Init::kLinearBias, i, cfg.init);
    if (cfg.ffn.bias) specs_.back().fan_in = F;
  }
  add_norm("backbone.ln.", cfg.ln, D, -1);
  if (!cfg.tie_embedding) add("head.lm_head.weight", {V, D}, Init::kNormal, -1, cfg.head_init);
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
  v.final_ln_b = at("backbone.ln.bias");
  v.lm_head = cfg_.tie_embedding ? v.wte : at("head.lm_head.weight");
  for (size_t i = 0; i < cfg_.layers.size(); ++i) {
    const std::string sl = "backbone.layers." + std::to_string(i) + ".seq_layer.";
    const std::string hl = "backbone.layers." + std::to_string(i) + ".hidden_layer.";
    LayerView l;
    l.input_norm = at(sl + "input_norm.weight");
    l.input_norm_b = at(sl + "input_norm.bias");
    l.in_proj = at(sl + "in_proj.weight");
    l.in_proj_b = at(sl + "in_proj.bias");
    l.out_proj = at(sl + "out_proj.weight");
    l.out_proj_b = at(sl + "out_proj.bias");
    l.gate_bias = at(sl + "gate_bias");
    l.ffn_ln = at(hl + "ln.weight");
    l.ffn_ln_b = at(hl + "ln.bias");
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
  // One normal distribution for every tensor, its standard deviation given
  // per draw (its cached second deviate is standard, so a fixed-0.02 model
  // draws exactly what it drew before the schemes existed).
  std::normal_distribution<float> normal(0.f, 1.f);
  using NormalParam = std::normal_distribution<float>::param_type;
  auto fill_normal = [&](float* p, int64_t n, float sd) {
    const NormalParam np(0.f, sd);
    for (int64_t i = 0; i < n; ++i) p[i] = normal(rng, np);
  };
  auto fill_uniform = [&](float* p, int64_t n, float r) {
    std::uniform_real_distribution<float> u(-r, r);
    for (int64_t i = 0; i < n; ++i) p[i] = u(rng);
  };
  for (const ParamSpec& s : specs_) {
    float* p = base + s.offset;
    const float r = float(1.0 / std::sqrt(double(std::max<int64_t>(s.fan_in, 1))));
    switch (s.init) {
      case Init::kNormal:
        switch (s.scheme.scheme) {
          case InitScheme::kFixed:
            fill_normal(p, s.numel, float(s.scheme.initializer_range));
            break;
          case InitScheme::kXavier: fill_normal(p, s.numel, r); break;
          case InitScheme::kUniform:
          case InitScheme::kTorchUniform: fill_uniform(p, s.numel, r); break;
          case InitScheme::kTorch:
            // nn.Embedding: N(0, 1); nn.Linear: kaiming_uniform(a = sqrt 5),
            // i.e. U(+-1/sqrt(fan_in)).
            if (s.embedding)
              fill_normal(p, s.numel, 1.f);
            else
              fill_uniform(p, s.numel, r);
            break;
        }
        break;
      case Init::kLinearBias:
        if (s.scheme.scheme == InitScheme::kTorchUniform || s.scheme.scheme == InitScheme::kTorch)
          fill_uniform(p, s.numel, r);
        else
          for (int64_t i = 0; i < s.numel; ++i) p[i] = 0.f;
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
