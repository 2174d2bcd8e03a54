#include "model/model.h"

#include <algorithm>
#include <cstring>

#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"

namespace rat {

namespace {
enum Acts { kFinal, kFinalRstd, kDx, kDFinal, kStream0 };
}

Model::Model(const ModelConfig& cfg) : cfg_(cfg), layout_(cfg) {
  params_.assign(size_t(layout_.total()), 0.f);
  grads_.assign(size_t(layout_.total()), 0.f);
  env_.cfg = &cfg_;
  ModelView pv = layout_.view(params_.data()), gv = layout_.view(grads_.data());
  for (size_t i = 0; i < cfg_.layers.size(); ++i) {
    mixers_.push_back(make_mixer(&env_, cfg_.layers[i]));
    ffns_.push_back(make_ffn(&env_));
    mixers_.back()->bind(pv.layers[i], gv.layers[i]);
    ffns_.back()->bind(pv.layers[i], gv.layers[i]);
    layer_begin_.push_back(layout_.layer_begin(int64_t(i)));
  }
  // The registry lays out wte, block 0 .. L-1, final norm, (untied) head.
  layer_begin_.push_back(layout_.find("backbone.ln.weight")->offset);
}

int64_t Model::num_params() const {
  int64_t n = 0;
  for (const ParamSpec& s : layout_.specs()) n += s.numel;
  return n;
}

double Model::matmul_weights() const {
  double n = 0;
  for (const ParamSpec& s : layout_.specs())
    if (s.shape.size() == 2 && s.name != "embedding.wte.weight") n += double(s.numel);
  if (cfg_.tie_embedding) n += double(cfg_.vocab_size * cfg_.d_model);
  return n;
}

void Model::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.f); }

int64_t Model::activation_bytes() const {
  int64_t b = acts_.bytes() + const_cast<BlockEnv&>(env_).scratch.bytes();
  for (const auto& m : mixers_) b += m->activation_bytes();
  for (const auto& f : ffns_) b += f->activation_bytes();
  return b;
}

// Runs the blocks; the residual stream before each mixer and each FFN is kept
// (slot kStream0 + j), since each block's backward needs its input.
void Model::forward_hidden(const int32_t* ids, int64_t B, int64_t T) {
  const int64_t D = cfg_.d_model, N = B * T, nl = int64_t(mixers_.size());
  ModelView pv = layout_.view(params_.data());
  float* x = acts_.get(kStream0, N * D);
  embedding_forward(ids, pv.wte, x, N, D);
  for (int64_t i = 0; i < nl; ++i) {
    float* xm = acts_.get(kStream0 + 2 * int(i) + 1, N * D);
    mixers_[size_t(i)]->forward(x, xm, B, T, true);
    float* xo = acts_.get(kStream0 + 2 * int(i) + 2, N * D);
    ffns_[size_t(i)]->forward(xm, xo, B, T, true);
    x = xo;
  }
  float* hf = acts_.get(kFinal, N * D);
  float* rstd = acts_.get(kFinalRstd, N);
  rmsnorm_forward(x, pv.final_ln, hf, rstd, N, D);
}

CeResult Model::forward_backward(const int32_t* ids, const int32_t* labels, int64_t B, int64_t T,
                                 bool backward, float loss_scale,
                                 const GradsReadyFn& grads_ready) {
  const int64_t D = cfg_.d_model, N = B * T, V = cfg_.vocab_size, nl = int64_t(mixers_.size());
  forward_hidden(ids, B, T);
  ModelView pv = layout_.view(params_.data()), gv = layout_.view(grads_.data());
  float* hf = acts_.get(kFinal, 0);
  if (!backward)
    return lm_head_cross_entropy(hf, pv.lm_head, labels, N, D, V, cfg_.ignore_index, env_.prec,
                                 0.f, nullptr, nullptr);
  if (loss_scale <= 0.f) {
    int64_t cnt = 0;
    for (int64_t n = 0; n < N; ++n) cnt += labels[n] != cfg_.ignore_index;
    loss_scale = cnt > 0 ? 1.0f / float(cnt) : 0.f;
  }
  float* dhf = acts_.get(kDFinal, N * D);
  CeResult res = lm_head_cross_entropy(hf, pv.lm_head, labels, N, D, V, cfg_.ignore_index,
                                       env_.prec, loss_scale, dhf, gv.lm_head);
  float* dx = acts_.get(kDx, N * D);
  std::memset(dx, 0, size_t(N * D) * sizeof(float));
  float* xl = acts_.get(kStream0 + 2 * int(nl), 0);
  rmsnorm_backward(dhf, xl, pv.final_ln, acts_.get(kFinalRstd, 0), dx, gv.final_ln, N, D);
  // A tied head's gradient lives in wte, which the embedding finishes last.
  if (grads_ready) grads_ready(layer_begin_[size_t(nl)], layout_.total());
  for (int64_t i = nl - 1; i >= 0; --i) {
    ffns_[size_t(i)]->backward(acts_.get(kStream0 + 2 * int(i) + 1, 0), dx, B, T);
    mixers_[size_t(i)]->backward(acts_.get(kStream0 + 2 * int(i), 0), dx, B, T);
    if (grads_ready) grads_ready(layer_begin_[size_t(i)], layer_begin_[size_t(i) + 1]);
  }
  embedding_backward(ids, dx, gv.wte, N, D);
  if (grads_ready) grads_ready(0, layer_begin_[0]);
  return res;
}

void Model::logits(const int32_t* ids, int64_t B, int64_t T, float* out) {
  forward_hidden(ids, B, T);
  ModelView pv = layout_.view(params_.data());
  lm_head_logits(acts_.get(kFinal, 0), pv.lm_head, out, B * T, cfg_.d_model, cfg_.vocab_size,
                 env_.prec, env_.w16(pv.lm_head, cfg_.vocab_size * cfg_.d_model));
}

}  // namespace rat
