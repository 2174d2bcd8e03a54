#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "kernels/embedding.h"
#include "model/norm.h"
#include "util/error.h"
#include "util/huge_pages.h"

namespace rat {

namespace {
enum Acts { kFinal, kFinalRstd, kDx, kDFinal, kLogits, kStream0 };
constexpr int64_t kLogitRows = 256;  // rows of logits label_log_probs holds at once
}  // namespace

Model::Model(const ModelConfig& cfg) : cfg_(cfg), layout_(cfg) {
  // Huge pages before the first write (util/huge_pages.h: load and decode).
  params_.reserve(size_t(layout_.total()));
  advise_huge_pages(params_.data(), params_.capacity() * sizeof(float));
  params_.assign(size_t(layout_.total()), 0.f);
  env_.cfg = &cfg_;
  ModelView pv = layout_.view(params_.data());
  std::map<MixerKind, int64_t> of_kind;  // layers of each kind so far
  for (size_t i = 0; i < cfg_.layers.size(); ++i) {
    mixers_.push_back(make_mixer(&env_, cfg_.layers[i]));
    mixers_.back()->set_state_index(of_kind[cfg_.layers[i].kind]++);
    ffns_.push_back(make_ffn(&env_));
    ffns_.back()->set_state_index(int64_t(i));        // its dropout site
    mixers_.back()->bind(pv.layers[i], LayerView{});  // gradients: see grads()
    ffns_.back()->bind(pv.layers[i], LayerView{});
    layer_begin_.push_back(layout_.layer_begin(int64_t(i)));
  }
  // The registry lays out wte, block 0 .. L-1, final norm (none with ln
  // identity), (untied) head: the blocks end at the first later tensor.
  int64_t end = layout_.total();
  for (size_t k = 1; k < layout_.specs().size(); ++k)
    if (layout_.specs()[k].layer == -1) {
      end = layout_.specs()[k].offset;
      break;
    }
  layer_begin_.push_back(end);
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

void Model::FreeFloats::operator()(float* p) const { std::free(p); }

float* Model::grads() {
  if (!grads_) {
    grads_.reset(static_cast<float*>(std::calloc(size_t(layout_.total()), sizeof(float))));
    if (!grads_) throw Error("out of memory for the gradients of the model's parameters");
    ModelView pv = layout_.view(params_.data()), gv = layout_.view(grads_.get());
    for (size_t i = 0; i < mixers_.size(); ++i) {
      mixers_[i]->bind(pv.layers[i], gv.layers[i]);
      ffns_[i]->bind(pv.layers[i], gv.layers[i]);
    }
  }
  return grads_.get();
}

void Model::zero_grads() {
  float* g = grads();
  std::fill(g, g + layout_.total(), 0.f);
}

void Model::set_recompute(Recompute r) {
  recompute_ = r;
  for (size_t i = 0; i < mixers_.size(); ++i) {
    if (r != Recompute::kNone) mixers_[i]->release_saved();
    if (r == Recompute::kBlock) ffns_[i]->release_saved();
  }
  if (r == Recompute::kNone) env_.recompute = Buffers();
}

int64_t Model::activation_bytes() const {
  int64_t b = acts_.bytes() + env_.scratch.bytes() + env_.recompute.bytes();
  for (const auto& m : mixers_) b += m->activation_bytes();
  for (const auto& f : ffns_) b += f->activation_bytes();
  return b;
}

ActivationPlan Model::plan_activations(const ModelConfig& cfg, int64_t B, int64_t T, Recompute r,
                                       bool scores) {
  const int64_t D = cfg.d_model, N = B * T, L = int64_t(cfg.layers.size());
  ActivationPlan p;
  // forward_hidden and forward_backward: kFinal, kFinalRstd, kDx, kDFinal, and
  // the 2L + 1 streams of kTrain (scoring reuses the first two).
  p.stream = 4 * (3 * N * D + norm_stats_size(cfg.ln, N) + (2 * L + 1) * N * D);
  // Blocks without parameters or allocations of their own: only their sizes are asked.
  BlockEnv env;
  env.cfg = &cfg;
  std::vector<int64_t> shared, scratch;  // floats per slot, the largest any block asks
  auto widen = [](std::vector<int64_t>& to, const std::vector<int64_t>& from) {
    if (to.size() < from.size()) to.resize(from.size(), 0);
    for (size_t i = 0; i < from.size(); ++i) to[i] = std::max(to[i], from[i]);
  };
  auto add = [&](const Block& b, bool recomputes) {
    const BlockBufferSizes s = b.buffer_sizes(B, T);
    if (recomputes)
      widen(shared, s.saved);
    else
      for (int64_t n : s.saved) p.kept += 4 * n;
    widen(scratch, s.scratch);
    if (scores) widen(scratch, s.saved);
  };
  for (const MixerConfig& m : cfg.layers) {
    add(*make_mixer(&env, m), r != Recompute::kNone);
    add(*make_ffn(&env), r == Recompute::kBlock);
  }
  for (int64_t n : shared) p.recompute += 4 * n;
  for (int64_t n : scratch) p.scratch += 4 * n;
  return p;
}

// kTrain keeps the stream before each mixer and each FFN (slot kStream0 + j),
// since each block's backward needs its input; the other modes alternate two.
// A block that recomputes trains into the shared BlockEnv::recompute.
const float* Model::forward_layers(const int32_t* ids, int64_t B, int64_t T, Mode mode,
                                   DecodeState* st, int64_t slot) {
  const int64_t D = cfg_.d_model, N = B * T, nl = int64_t(mixers_.size());
  const bool train = mode == Mode::kTrain;
  const bool rec_mixer = train && recompute_ != Recompute::kNone;
  const bool rec_ffn = train && recompute_ == Recompute::kBlock;
  ModelView pv = layout_.view(params_.data());
  auto stream = [&](int64_t j) { return acts_.get(kStream0 + int(train ? j : j % 2), N * D); };
  float* x = stream(0);
  embedding_forward(ids, pv.wte, x, N, D);
  for (int64_t i = 0; i < nl; ++i) {
    Block& mixer = *mixers_[size_t(i)];
    Block& ffn = *ffns_[size_t(i)];
    float* xm = stream(2 * i + 1);
    if (rec_mixer)
      mixer.forward_unkept(x, xm, B, T);
    else
      mixer.forward(x, xm, B, T, train);
    if (mode == Mode::kPrefill) mixer.export_state(*st, slot, T);
    float* xo = stream(2 * i + 2);
    if (rec_ffn)
      ffn.forward_unkept(xm, xo, B, T);
    else
      ffn.forward(xm, xo, B, T, train);
    x = xo;
  }
  return x;
}

const float* Model::forward_hidden(const int32_t* ids, int64_t B, int64_t T, Mode mode) {
  const int64_t D = cfg_.d_model, N = B * T;
  const float* x = forward_layers(ids, B, T, mode, nullptr, 0);
  // Scoring norms into the free one of its two streams (x is stream 0).
  float* hf = mode == Mode::kTrain ? acts_.get(kFinal, N * D) : acts_.get(kStream0 + 1, N * D);
  const ModelView pv = layout_.view(params_.data());
  norm_forward(cfg_.ln, x, pv.final_ln, pv.final_ln_b, hf,
               acts_.get(kFinalRstd, norm_stats_size(cfg_.ln, N)), N, D);
  return hf;
}

CeResult Model::forward_backward(const int32_t* ids, const int32_t* labels, int64_t B, int64_t T,
                                 bool backward, float loss_scale, const GradsReadyFn& grads_ready) {
  const int64_t D = cfg_.d_model, N = B * T, V = cfg_.vocab_size, nl = int64_t(mixers_.size());
  const float* hf = forward_hidden(ids, B, T, backward ? Mode::kTrain : Mode::kScore);
  ModelView pv = layout_.view(params_.data());
  if (!backward)
    return lm_head_cross_entropy(hf, pv.lm_head, labels, N, D, V, cfg_.ignore_index, env_.prec, 0.f,
                                 nullptr, nullptr);
  ModelView gv = layout_.view(grads());
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
  norm_backward(cfg_.ln, dhf, xl, pv.final_ln, acts_.get(kFinalRstd, 0), dx, gv.final_ln,
                gv.final_ln_b, N, D);
  // A tied head's gradient lives in wte, which the embedding finishes last.
  if (grads_ready) grads_ready(layer_begin_[size_t(nl)], layout_.total());
  // A block that recomputes runs its forward again right before its
  // backward; the output goes to the stream after it, which only the
  // backward of later blocks (done) read, and is the same bits.
  const bool rec_mixer = recompute_ != Recompute::kNone, rec_ffn = recompute_ == Recompute::kBlock;
  for (int64_t i = nl - 1; i >= 0; --i) {
    float* x = acts_.get(kStream0 + 2 * int(i), 0);
    float* xm = acts_.get(kStream0 + 2 * int(i) + 1, 0);
    float* xo = acts_.get(kStream0 + 2 * int(i) + 2, 0);
    if (rec_ffn)
      ffns_[size_t(i)]->backward_recomputed(xm, xo, dx, B, T);
    else
      ffns_[size_t(i)]->backward(xm, dx, B, T);
    if (rec_mixer)
      mixers_[size_t(i)]->backward_recomputed(x, xm, dx, B, T);
    else
      mixers_[size_t(i)]->backward(x, dx, B, T);
    if (grads_ready) grads_ready(layer_begin_[size_t(i)], layer_begin_[size_t(i) + 1]);
  }
  embedding_backward(ids, dx, gv.wte, N, D);
  if (grads_ready) grads_ready(0, layer_begin_[0]);
  return res;
}

void Model::logits(const int32_t* ids, int64_t B, int64_t T, float* out, Mode mode) {
  if (mode == Mode::kPrefill) throw Error("Model::logits: mode kPrefill needs a DecodeState");
  const float* hf = forward_hidden(ids, B, T, mode);
  ModelView pv = layout_.view(params_.data());
  lm_head_logits(hf, pv.lm_head, out, B * T, cfg_.d_model, cfg_.vocab_size, env_.prec,
                 env_.w16(pv.lm_head, cfg_.vocab_size * cfg_.d_model));
}

void Model::label_log_probs(const int32_t* ids, const int32_t* labels, int64_t B, int64_t T,
                            float* out, int32_t* argmax) {
  const int64_t D = cfg_.d_model, V = cfg_.vocab_size, N = B * T;
  const float* hf = forward_hidden(ids, B, T, Mode::kScore);
  ModelView pv = layout_.view(params_.data());
  const uint16_t* w16 = env_.w16(pv.lm_head, V * D);
  float* lg = acts_.get(kLogits, std::min(N, kLogitRows) * V);
  for (int64_t r0 = 0; r0 < N; r0 += kLogitRows) {
    const int64_t m = std::min(kLogitRows, N - r0);
    lm_head_logits(hf + r0 * D, pv.lm_head, lg, m, D, V, env_.prec, w16);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      const int32_t y = labels[r0 + r];
      const float* row = lg + r * V;
      float mx = row[0];
      if (argmax) {
        // The softmax's max pass also finds the argmax: strict > keeps the first of equals.
        int64_t best = 0;
        for (int64_t v = 1; v < V; ++v)
          if (row[v] > mx) mx = row[v], best = v;
        argmax[r0 + r] = int32_t(best);
      }
      if (y == cfg_.ignore_index) {
        out[r0 + r] = 0.f;
        continue;
      }
      if (!argmax)
        for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v] - mx));
      out[r0 + r] = float(double(row[y] - mx) - std::log(sum));
    }
  }
}

std::unique_ptr<DecodeState> Model::make_decode_state(int64_t max_batch, int64_t max_len,
                                                      bool bf16) {
  auto st = std::make_unique<DecodeState>();
  st->max_batch = max_batch, st->max_len = max_len, st->bf16 = bf16;
  for (auto& m : mixers_) m->init_state(*st);
  st->scratch.need(max_batch, cfg_.d_model, 0, 0);  // residual rows, even with no mixer state
  return st;
}

void Model::prefill(const int32_t* ids, int64_t n, DecodeState& st, int64_t slot, float* logits) {
  const int64_t D = cfg_.d_model;
  const float* x = forward_layers(ids, 1, n, Mode::kPrefill, &st, slot);
  // Only the last token's prediction is needed.
  ModelView w = layout_.view(params_.data());
  norm_forward(cfg_.ln, x + (n - 1) * D, w.final_ln, w.final_ln_b, st.scratch.hf.data(),
               st.scratch.rstd.data(), 1, D);
  lm_head_logits(st.scratch.hf.data(), w.lm_head, logits, 1, D, cfg_.vocab_size, env_.prec,
                 env_.w16(w.lm_head, cfg_.vocab_size * D));
}

void Model::extend(const int32_t* ids, int64_t n, DecodeState& st, int64_t slot, int64_t pos0,
                   float* logits) {
  const int64_t D = cfg_.d_model;
  ModelView w = layout_.view(params_.data());
  float* x = acts_.get(kStream0, n * D);
  float* xm = acts_.get(kStream0 + 1, n * D);
  embedding_forward(ids, w.wte, x, n, D);
  for (size_t i = 0; i < mixers_.size(); ++i) {
    mixers_[i]->extend(x, xm, n, slot, pos0, st);
    ffns_[i]->forward(xm, x, n, 1, false);  // the FFN is per token
  }
  norm_forward(cfg_.ln, x + (n - 1) * D, w.final_ln, w.final_ln_b, st.scratch.hf.data(),
               st.scratch.rstd.data(), 1, D);
  lm_head_logits(st.scratch.hf.data(), w.lm_head, logits, 1, D, cfg_.vocab_size, env_.prec,
                 env_.w16(w.lm_head, cfg_.vocab_size * D));
}

void Model::step(const int32_t* ids, const int64_t* slots, const int64_t* pos, int64_t n,
                 DecodeState& st, float* logits) {
  if (n <= 0) return;
  const int64_t D = cfg_.d_model;
  ModelView w = layout_.view(params_.data());
  float* x = st.scratch.x.data();
  float* xm = st.scratch.xm.data();
  embedding_forward(ids, w.wte, x, n, D);
  for (size_t i = 0; i < mixers_.size(); ++i) {
    mixers_[i]->step(x, xm, slots, pos, n, st);
    ffns_[i]->forward(xm, x, n, 1, false);  // the FFN is per token
  }
  norm_forward(cfg_.ln, x, w.final_ln, w.final_ln_b, st.scratch.hf.data(), st.scratch.rstd.data(),
               n, D);
  lm_head_logits(st.scratch.hf.data(), w.lm_head, logits, n, D, cfg_.vocab_size, env_.prec,
                 env_.w16(w.lm_head, cfg_.vocab_size * D));
}

}  // namespace rat
