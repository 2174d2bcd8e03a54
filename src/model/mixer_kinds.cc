// The descriptors of SPEC.md's mixers and the authors' identity cell, and the
// counts derived from them. Sizes: D = d_model, P = d_head, G = ngroups,
// L = chunk_size, window = window_size.
#include "model/mixer_kinds.h"

#include <algorithm>
#include <cctype>

#include "model/layers.h"
#include "util/error.h"

namespace rat {

namespace {

// --- shared by several kinds

int64_t width_3d(const ModelConfig& cfg, const MixerConfig&) { return 3 * cfg.d_model; }
int64_t width_none(const ModelConfig&, const MixerConfig&) { return 0; }

// input_norm, in_proj (W rows) and out_proj; a gate bias, where a kind has
// one, follows them. rat and rnn always have an RMSNorm and no projection
// bias (the authors' rat.py, rnn.py).
std::vector<MixerTensor> projections(const ModelConfig& cfg, int64_t W) {
  const int64_t D = cfg.d_model;
  return {{"input_norm.weight", {D}, Init::kOne},
          {"in_proj.weight", {W, D}, Init::kNormal},
          {"out_proj.weight", {D, D}, Init::kNormal}};
}
// attention and local_attention: the norm their `ln` names (layernorm adds
// input_norm.bias, identity has no tensor) and the projection biases of `bias`.
std::vector<MixerTensor> attention_projections(const ModelConfig& cfg, const MixerConfig& m) {
  const int64_t D = cfg.d_model, W = 3 * D;
  std::vector<MixerTensor> t;
  if (m.ln != NormKind::kIdentity) t.push_back({"input_norm.weight", {D}, Init::kOne});
  if (m.ln == NormKind::kLayerNorm) t.push_back({"input_norm.bias", {D}, Init::kZero});
  t.push_back({"in_proj.weight", {W, D}, Init::kNormal});
  if (m.bias) t.push_back({"in_proj.bias", {W}, Init::kLinearBias});
  t.push_back({"out_proj.weight", {D, D}, Init::kNormal});
  if (m.bias) t.push_back({"out_proj.bias", {D}, Init::kLinearBias});
  return t;
}
std::vector<MixerTensor> no_tensors(const ModelConfig&, const MixerConfig&) { return {}; }
int64_t no_keys(const MixerConfig&, int64_t) { return 0; }
std::string no_sizes(const MixerConfig&) { return ""; }

// --- rat: [z, v, g, q, k] = in_proj(u), widths [D, D, D, GP, GP]; the cache
// holds the final kt, vt of every finished chunk plus the running kt, vt.

int64_t rat_width(const ModelConfig& cfg, const MixerConfig& m) {
  return 3 * cfg.d_model + 2 * m.ngroups * m.d_head;
}
std::vector<MixerTensor> rat_tensors(const ModelConfig& cfg, const MixerConfig& m) {
  auto t = projections(cfg, rat_width(cfg, m));
  t.push_back({"gate_bias", {cfg.d_model}, Init::kGateBiasChunk});
  return t;
}
// The t div L earlier chunks' final states plus the query's own running state.
int64_t rat_keys(const MixerConfig& m, int64_t t) { return t / m.chunk_size + 1; }
CacheRows rat_rows(const MixerConfig& m, int64_t pos) {
  return {2.0 * double(pos / m.chunk_size), 2.0};
}
std::string rat_sizes(const MixerConfig& m) { return "(L" + std::to_string(m.chunk_size) + ")"; }

// --- attention: K (after RoPE) and V of every past token, itself included.

std::vector<MixerTensor> attention_tensors(const ModelConfig& cfg, const MixerConfig& m) {
  return attention_projections(cfg, m);
}
int64_t attention_keys(const MixerConfig&, int64_t t) { return t + 1; }
CacheRows attention_rows(const MixerConfig& m, int64_t pos) {
  return {2.0 * double(attention_keys(m, pos)), 0.0};
}

// --- local_attention: keys t - window .. t, a ring of window + 1 rows.

std::vector<MixerTensor> local_tensors(const ModelConfig& cfg, const MixerConfig& m) {
  return attention_projections(cfg, m);
}
int64_t local_keys(const MixerConfig& m, int64_t t) { return std::min(t, m.window_size) + 1; }
CacheRows local_rows(const MixerConfig& m, int64_t pos) {
  return {2.0 * double(local_keys(m, pos)), 0.0};
}
std::string local_sizes(const MixerConfig& m) { return "(W" + std::to_string(m.window_size) + ")"; }

// --- rnn: [z, v, g] = in_proj(u); the state is h, D floats.

std::vector<MixerTensor> rnn_tensors(const ModelConfig& cfg, const MixerConfig& m) {
  auto t = projections(cfg, width_3d(cfg, m));
  t.push_back({"gate_bias", {cfg.d_model}, Init::kGateBiasSeq});
  return t;
}
CacheRows rnn_rows(const MixerConfig&, int64_t) { return {0.0, 1.0}; }

// --- identity (the authors' src/model/base.py Identity, registered as
// layer `identity`): returns its input. No norm, no tensors, no state.

CacheRows no_rows(const MixerConfig&, int64_t) { return {}; }

const MixerKindInfo kRatInfo = {.kind = MixerKind::kRat,
                                .name = "rat",
                                .heads = true,
                                .rotation = Rotation::kChunkIndex,
                                .in_proj_width = rat_width,
                                .tensors = rat_tensors,
                                .keys_scored = rat_keys,
                                .cache_rows = rat_rows,
                                .sizes = rat_sizes,
                                .make = make_rat_mixer};
const MixerKindInfo kAttentionInfo = {.kind = MixerKind::kAttention,
                                      .name = "attention",
                                      .heads = true,
                                      .rotation = Rotation::kTokenPosition,
                                      .in_proj_width = width_3d,
                                      .tensors = attention_tensors,
                                      .keys_scored = attention_keys,
                                      .cache_rows = attention_rows,
                                      .sizes = no_sizes,
                                      .make = make_attention_mixer};
const MixerKindInfo kLocalAttentionInfo = {.kind = MixerKind::kLocalAttention,
                                           .name = "local_attention",
                                           .heads = true,
                                           .rotation = Rotation::kTokenPosition,
                                           .in_proj_width = width_3d,
                                           .tensors = local_tensors,
                                           .keys_scored = local_keys,
                                           .cache_rows = local_rows,
                                           .sizes = local_sizes,
                                           .make = make_attention_mixer};
const MixerKindInfo kRnnInfo = {.kind = MixerKind::kRnn,
                                .name = "rnn",
                                .heads = false,
                                .rotation = Rotation::kNone,
                                .in_proj_width = width_3d,
                                .tensors = rnn_tensors,
                                .keys_scored = no_keys,
                                .cache_rows = rnn_rows,
                                .sizes = no_sizes,
                                .make = make_rnn_mixer};
const MixerKindInfo kIdentityInfo = {.kind = MixerKind::kIdentity,
                                     .name = "identity",
                                     .heads = false,
                                     .rotation = Rotation::kNone,
                                     .in_proj_width = width_none,
                                     .tensors = no_tensors,
                                     .keys_scored = no_keys,
                                     .cache_rows = no_rows,
                                     .sizes = no_sizes,
                                     .make = make_identity_mixer};

// The descriptor of `k`, or null past the last kind (mixer_kinds() walks the
// enum until then). No `default`: a kind without a descriptor is a -Wswitch
// warning here.
const MixerKindInfo* find_info(MixerKind k) {
  switch (k) {
    case MixerKind::kRat: return &kRatInfo;
    case MixerKind::kAttention: return &kAttentionInfo;
    case MixerKind::kLocalAttention: return &kLocalAttentionInfo;
    case MixerKind::kRnn: return &kRnnInfo;
    case MixerKind::kIdentity: return &kIdentityInfo;
  }
  return nullptr;
}

// Levenshtein distance ignoring case, for "closest" in messages.
size_t edit_distance(std::string a, std::string b) {
  for (std::string* s : {&a, &b})
    for (char& c : *s) c = char(std::tolower(static_cast<unsigned char>(c)));
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

const MixerKindInfo& mixer_kind_info(MixerKind k) {
  const MixerKindInfo* info = find_info(k);
  if (!info) throw Error("mixer kind " + std::to_string(int(k)) + " has no descriptor");
  return *info;
}

const std::vector<const MixerKindInfo*>& mixer_kinds() {
  static const std::vector<const MixerKindInfo*> all = [] {
    std::vector<const MixerKindInfo*> v;
    for (int i = 0; const MixerKindInfo* info = find_info(MixerKind(i)); ++i) v.push_back(info);
    return v;
  }();
  return all;
}

std::string mixer_kind_names() {
  std::string s;
  for (const MixerKindInfo* k : mixer_kinds()) s += (s.empty() ? "" : ", ") + std::string(k->name);
  return s;
}

const MixerKindInfo* find_mixer_kind(const std::string& name) {
  for (const MixerKindInfo* k : mixer_kinds())
    if (name == k->name) return k;
  return nullptr;
}

MixerKind mixer_kind_from_name(const std::string& name, const std::string& where) {
  const MixerKindInfo* closest = nullptr;
  size_t best = 0;
  for (const MixerKindInfo* k : mixer_kinds()) {
    if (name == k->name) return k->kind;
    const size_t d = edit_distance(name, k->name);
    if (!closest || d < best) closest = k, best = d;
  }
  throw Error(where + ": unknown mixer '" + name + "', expected one of " + mixer_kind_names() +
              " (closest: '" + closest->name + "')");
}

const char* mixer_name(MixerKind k) { return mixer_kind_info(k).name; }

std::string mixer_label(const MixerConfig& m) {
  const MixerKindInfo& k = mixer_kind_info(m.kind);
  return k.name + k.sizes(m);
}

int64_t keys_scored(const MixerConfig& m, int64_t t) {
  return mixer_kind_info(m.kind).keys_scored(m, t);
}

double keys_scored_total(const MixerConfig& m, int64_t T) {
  const MixerKindInfo& k = mixer_kind_info(m.kind);
  double n = 0;
  for (int64_t t = 0; t < T; ++t) n += double(k.keys_scored(m, t));
  return n;
}

double mixer_matmul_weights(const ModelConfig& cfg, const MixerConfig& m) {
  double n = 0;
  for (const MixerTensor& t : mixer_kind_info(m.kind).tensors(cfg, m))
    if (t.shape.size() == 2) n += double(t.shape[0]) * double(t.shape[1]);
  return n;
}

double mixer_prefill_flops(const ModelConfig& cfg, const MixerConfig& m, int64_t T) {
  return 2.0 * double(T) * mixer_matmul_weights(cfg, m) +
         4.0 * double(cfg.d_model) * keys_scored_total(m, T);
}

double mixer_train_flops(const ModelConfig& cfg, const MixerConfig& m, int64_t T) {
  return 3.0 * mixer_prefill_flops(cfg, m, T);
}

double mixer_decode_flops(const ModelConfig& cfg, const MixerConfig& m, int64_t pos) {
  return 2.0 * mixer_matmul_weights(cfg, m) +
         4.0 * double(cfg.d_model) * double(keys_scored(m, pos));
}

double mixer_decode_cache_bytes(const ModelConfig& cfg, const MixerConfig& m, int64_t pos,
                                bool bf16_cache) {
  const CacheRows r = mixer_kind_info(m.kind).cache_rows(m, pos);
  return (r.kv * (bf16_cache ? 2.0 : 4.0) + r.state * 4.0) * double(cfg.d_model);
}

double mixer_weight_bytes(const ModelConfig& cfg, const MixerConfig& m, bool bf16_weights) {
  double b = 0;
  for (const MixerTensor& t : mixer_kind_info(m.kind).tensors(cfg, m)) {
    double n = 1;
    for (int64_t d : t.shape) n *= double(d);
    b += n * (t.shape.size() == 2 && bf16_weights ? 2.0 : 4.0);
  }
  return b;
}

}  // namespace rat
