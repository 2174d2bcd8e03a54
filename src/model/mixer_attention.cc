// Attention and local attention mixers (SPEC.md): [v, q, k] = in_proj(norm(x)),
// RoPE on q and k at absolute positions, causal softmax (local: keys
// t - window .. t), y = x + out_proj(o). No output gate. The norm is the
// config's `ln` (RMSNorm by default) and in_proj / out_proj carry biases with
// `bias` (the authors' attention.py, local_attention.py).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/decode_attention.h"
#include "kernels/linear.h"
#include "model/layers.h"
#include "model/norm.h"

namespace rat {

namespace {

enum Saved { kU, kRstd, kProj, kO, kLse };
enum Scratch { sDProj, sDO };

class AttentionMixer final : public Block {
 public:
  AttentionMixer(BlockEnv* env, MixerConfig m) : Block(env, m) {}

  AttnShape shape(int64_t B, int64_t T) const {
    const int64_t D = env_->cfg->d_model, P = m_.d_head;
    AttnShape s{};
    s.B = B, s.T = T, s.H = D / P, s.P = P;
    s.window = m_.kind == MixerKind::kLocalAttention ? m_.window_size : -1;
    s.ld_q = s.ld_k = s.ld_v = 3 * D;
    s.ld_o = D;
    return s;
  }

  void forward(const float* x, float* y, int64_t B, int64_t T, bool train) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D, N = B * T;
    Buffers& b = forward_buffers(train);
    float* u = b.get(kU, N * D);
    float* rstd = b.get(kRstd, norm_stats_size(m_.ln, N));
    float* proj = b.get(kProj, N * W);
    float* o = b.get(kO, N * D);
    float* lse = b.get(kLse, B * H * T);
    norm_forward(m_.ln, x, p_.input_norm, p_.input_norm_b, u, rstd, N, D);
    linear_forward(u, D, p_.in_proj, p_.in_proj_b, proj, W, N, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    const RopeTable& rope = env_->rope_table(P, T);
    rope_apply(rope, proj + D, B, T, 0, 2 * H, W, 1, +1);  // q and k are adjacent
    attention_forward(shape(B, T), proj + D, proj + 2 * D, proj, o, lse);
    std::memcpy(y, x, size_t(N * D) * sizeof(float));
    linear_forward(o, D, p_.out_proj, p_.out_proj_b, y, D, N, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }

  // The get() sizes of forward and backward, slot by slot (layers.h BlockBufferSizes).
  BlockBufferSizes buffer_sizes(int64_t B, int64_t T) const override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D, N = B * T;
    BlockBufferSizes s;
    s.saved = {N * D, norm_stats_size(m_.ln, N), N * W, N * D, B * H * T};
    s.scratch = {N * W, N * D};
    return s;
  }

  void backward(const float* x, float* dx, int64_t B, int64_t T) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D, N = B * T;
    check_trained();
    float* u = saved_.get(kU, 0);
    float* rstd = saved_.get(kRstd, 0);
    float* proj = saved_.get(kProj, 0);
    float* o = saved_.get(kO, 0);
    float* lse = saved_.get(kLse, 0);
    float* dproj = env_->scratch.get(sDProj, N * W);
    float* dout = env_->scratch.get(sDO, N * D);
    linear_backward(o, D, p_.out_proj, dx, D, dout, D, 0.f, g_.out_proj, g_.out_proj_b, N, D, D,
                    env_->prec);
    attention_backward(shape(B, T), proj + D, proj + 2 * D, proj, o, lse, dout, dproj + D,
                       dproj + 2 * D, dproj);
    const RopeTable& rope = env_->rope_table(P, T);
    rope_apply(rope, dproj + D, B, T, 0, 2 * H, W, 1, -1);
    float* du = dout;
    linear_backward(u, D, p_.in_proj, dproj, W, du, D, 0.f, g_.in_proj, g_.in_proj_b, N, D, W,
                    env_->prec);
    norm_backward(m_.ln, du, x, p_.input_norm, rstd, dx, g_.input_norm, g_.input_norm_b, N, D);
  }

  // ---- Generation (SPEC.md "Generation state", attention / local_attention) ----

  // Rows of cache per (slot, head): every token, or a ring of the last window + 1.
  int64_t cache_rows(int64_t Tmax) const {
    return m_.kind == MixerKind::kLocalAttention ? std::min(m_.window_size + 1, Tmax) : Tmax;
  }

  // This layer's cache: a full one (attention) or a ring (local attention).
  std::vector<KvState>& caches(DecodeState& st) const {
    return m_.kind == MixerKind::kLocalAttention ? st.local : st.attention;
  }
  KvState& cache(DecodeState& st) const { return caches(st)[size_t(state_index_)]; }

  void init_state(DecodeState& st) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, S = st.max_batch;
    KvState& ks = DecodeState::at(caches(st), state_index_);
    ks.rows = cache_rows(st.max_len), ks.heads = D / P;
    ks.kv.bf16 = st.bf16;
    ks.kv.alloc(S * ks.rows * D);
    st.scratch.need(S, D, 3 * D, ks.rows + 1);
    env_->rope_table(P, st.max_len);  // built now, not inside a step
  }

  // forward() computed proj = [v, q, k] with q, k already rotated: copy the last R tokens.
  void export_state(DecodeState& st, int64_t slot, int64_t T) override {
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D;
    KvState& ks = cache(st);
    const int64_t R = ks.rows;
    const float* proj = fwd_->get(kProj, 0);
    for (int64_t t = std::max<int64_t>(0, T - R); t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        ks.kv.put(((slot * H + h) * R + t % R) * P, proj + t * W + 2 * D + h * P,
                  proj + t * W + h * P, P);
      }
  }

  void step(const float* x, float* y, const int64_t* slot, const int64_t* pos, int64_t n,
            DecodeState& st) override {
    KvState& ks = cache(st);
    StepScratch& sc = st.scratch;
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D, R = ks.rows;
    float* u = sc.u.data();
    float* proj = sc.proj.data();
    float* out = sc.out.data();
    norm_forward(m_.ln, x, p_.input_norm, p_.input_norm_b, u, sc.rstd.data(), n, D);
    linear_forward(u, D, p_.in_proj, p_.in_proj_b, proj, W, n, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    const RopeTable& rope = env_->rope[P];
    const float scale = 1.f / std::sqrt(float(P));
    // Guided schedule and the tiny-step rule: see RatMixer::step.
#pragma omp parallel for collapse(2) schedule(guided) \
    num_threads(sc.step_threads()) if (n * H * (R + 2) * P >= 65536)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t s = slot[i], t = pos[i];
        float* scr = sc.thread_scratch.data() + omp_get_thread_num() * sc.scratch_stride;
        float* pr = proj + i * W;
        float* q = pr + D + h * P;
        const int64_t base = (s * H + h) * R * P;
        float* k = pr + 2 * D + h * P;
        rope_rotate_head(rope, t, q, q);
        rope_rotate_head(rope, t, k, k);
        ks.kv.put(base + (t % R) * P, k, pr + h * P, P);
        // Visible keys t - window .. t (all of 0 .. t for attention) are exactly
        // rows 0 .. min(t + 1, R) - 1 of the ring; softmax does not care in
        // which order they sit.
        const int64_t n_keys = std::min(t + 1, R);
        float* o = out + i * D + h * P;
        if (ks.kv.bf16)
          decode_attend(q, ks.kv.k16.data() + base, ks.kv.v16.data() + base, n_keys, nullptr,
                        nullptr, P, scale, scr, o);
        else
          decode_attend(q, ks.kv.k.data() + base, ks.kv.v.data() + base, n_keys, nullptr, nullptr,
                        P, scale, scr, o);
      }
    std::memcpy(y, x, size_t(n * D) * sizeof(float));
    linear_forward(out, D, p_.out_proj, p_.out_proj_b, y, D, n, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }

  // The step's per-(token, head) work for T tokens of one slot: q, k rotated
  // at positions pos0 + t, the K, V rows written to the cache, each query
  // attending its visible rows. When the T rows fit in the cache without
  // wrapping (attention always: R = max_len), all rows are written first and
  // every (token, head) attends in parallel; a local ring that wraps within
  // the pass would overwrite rows earlier queries still read, so there each
  // head walks its tokens in order (write, attend), exactly as T steps do.
  void extend(const float* x, float* y, int64_t T, int64_t slot, int64_t pos0,
              DecodeState& st) override {
    KvState& ks = cache(st);
    StepScratch& sc = st.scratch;
    const int64_t D = env_->cfg->d_model, P = m_.d_head, H = D / P, W = 3 * D, R = ks.rows;
    Buffers& b = forward_buffers(false);
    float* u = b.get(kU, T * D);
    float* proj = b.get(kProj, T * W);
    float* out = b.get(kO, T * D);
    norm_forward(m_.ln, x, p_.input_norm, p_.input_norm_b, u,
                 b.get(kRstd, norm_stats_size(m_.ln, T)), T, D);
    linear_forward(u, D, p_.in_proj, p_.in_proj_b, proj, W, T, D, W, env_->prec, 0.f,
                   env_->w16(p_.in_proj, D * W));
    const RopeTable& rope = env_->rope[P];
    rope_apply(rope, proj + D, 1, T, pos0, 2 * H, W, 1, +1);  // q and k at pos0 + t
    const float scale = 1.f / std::sqrt(float(P));
    auto put = [&](int64_t t, int64_t h) {
      const float* pr = proj + t * W;
      ks.kv.put(((slot * H + h) * R + (pos0 + t) % R) * P, pr + 2 * D + h * P, pr + h * P, P);
    };
    auto attend = [&](int64_t t, int64_t h) {
      float* scr = sc.thread_scratch.data() + omp_get_thread_num() * sc.scratch_stride;
      const int64_t base = (slot * H + h) * R * P, n_keys = std::min(pos0 + t + 1, R);
      const float* q = proj + t * W + D + h * P;
      float* o = out + t * D + h * P;
      if (ks.kv.bf16)
        decode_attend(q, ks.kv.k16.data() + base, ks.kv.v16.data() + base, n_keys, nullptr, nullptr,
                      P, scale, scr, o);
      else
        decode_attend(q, ks.kv.k.data() + base, ks.kv.v.data() + base, n_keys, nullptr, nullptr, P,
                      scale, scr, o);
    };
    if (pos0 + T <= R) {
#pragma omp parallel num_threads(sc.step_threads())
      {
#pragma omp for collapse(2) schedule(static)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t h = 0; h < H; ++h) put(t, h);
#pragma omp for collapse(2) schedule(guided)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t h = 0; h < H; ++h) attend(t, h);
      }
    } else {
#pragma omp parallel for schedule(static) num_threads(sc.step_threads())
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t) put(t, h), attend(t, h);
    }
    std::memcpy(y, x, size_t(T * D) * sizeof(float));
    linear_forward(out, D, p_.out_proj, p_.out_proj_b, y, D, T, D, D, env_->prec, 1.f,
                   env_->w16(p_.out_proj, D * D));
  }
};

}  // namespace

std::unique_ptr<Block> make_attention_mixer(BlockEnv* env, const MixerConfig& m) {
  return std::make_unique<AttentionMixer>(env, m);
}

}  // namespace rat
