// RAT inter-chunk attention (SPEC.md "rat"), tiled.
//
// The keys of head h are the chunk-final states Kf[c] = kt[c*L + L-1] (c < C-1; the last
// chunk's final state has no later reader), which sit in kt at a fixed stride L*ld_kv, so
// every product reads them in place. Query t of chunk c sees Kf[0..c-1] and its own state
// (kt_t, vt_t), all in one softmax.
//
// The chunk-final rows are first gathered into packed [B, H, C-1, P] copies (1/L of kt's size)
// and each head's q and dout rows packed per thread: the model's strides (L * ld_kv floats,
// a power of two) would map a whole key tile onto a few cache sets.
//
// Forward: one task per (batch, head, query block). The softmax starts from the own-state
// term (m = s_own, l = 1, acc = vt_t) and folds in blocks of chunk-final keys online:
// S = Q Kf^T [Bq x Bk] by sgemm, mask c' >= chunk(t), acc += P Vf.
//
// Backward: per (batch, head), the own-state term row by row (this overwrites every row of
// dkt and dvt), then FlashAttention-2 order over key blocks, with dKf, dVf accumulated into
// the chunk-final rows. dq sums over the heads of a group: threads either own a whole
// (batch, group) and loop over its heads, or (when that would starve threads) own a
// (batch, head) and add into a private per-thread dq that a second pass sums by group.
#include "kernels/rat_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/softmax_tile.h"
#include "kernels/vec_math.h"
#include "util/error.h"

namespace rat {

namespace {

// Tuned with bench/attention_lab.cc on Zen 5 (P = 64, L = 16, one thread, CPU time): 256 x 256
// was best at T 4096 (61% of the gemm rate vs 54-58%; few keys per row, so per-call overhead
// matters) and within the +-10% noise of the best at T 16384.
constexpr int64_t kFwdBlockQ = 256, kFwdBlockK = 256;
constexpr int64_t kBwdBlockQ = 256, kBwdBlockK = 256;

// Chunk-final keys and values of every (batch, head), packed [B, H, nkeys, P]: in kt/vt they
// are L * ld_kv floats apart, a power-of-two stride that maps them all to a few cache sets.
void pack_finals(const RatAttnShape& s, const float* kt, const float* vt, int64_t nkeys, float* kfp,
                 float* vfp) {
  const int64_t BH = s.B * s.H, P = s.P, ldf = s.L * s.ld_kv;
  if (nkeys == 0) return;  // T <= L: chunk 0 only (and row L-1 may not exist)
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < BH; ++bh) {
    const int64_t off = (bh / s.H * s.T + s.L - 1) * s.ld_kv + bh % s.H * P;
    tile::pack_rows(kt + off, ldf, nkeys, P, kfp + bh * nkeys * P);
    tile::pack_rows(vt + off, ldf, nkeys, P, vfp + bh * nkeys * P);
  }
}

// Grow-only buffers of the calling thread (the kernels are called from outside parallel
// regions): the packed finals and the backward's per-thread dq copies are tens of MB at long T,
// and a fresh allocation per call would page-fault and zero all of it every step.
float* persistent(int slot, size_t n) {
  thread_local std::vector<float> buf[2];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// Forward of rows t0 .. t0+nq-1 of head h, batch b. Kf, Vf: the head's packed finals.
void forward_block(const RatAttnShape& s, int64_t bk, int64_t b, int64_t h, int64_t t0, int64_t nq,
                   const float* q, const float* kt, const float* vt, const float* Kf,
                   const float* Vf, float* o, float* lse) {
  const int64_t P = s.P, T = s.T, L = s.L;
  const float scale = 1.f / std::sqrt(float(P));
  float* S = tile::thread_scratch(0, size_t(nq * bk));
  float* acc = tile::thread_scratch(1, size_t(nq * P));
  float* m = tile::thread_scratch(2, size_t(2 * nq));
  float* Q = tile::thread_scratch(3, size_t(nq * P));
  float* l = m + nq;
  const int64_t g = h % s.G, row0 = b * T;
  tile::pack_rows(q + (row0 + t0) * s.ld_q + g * P, s.ld_q, nq, P, Q);
  for (int64_t r = 0; r < nq; ++r) {  // own-state term opens the softmax
    const int64_t t = t0 + r;
    m[r] = scale * vec_dot(Q + r * P, kt + (row0 + t) * s.ld_kv + h * P, P);
    l[r] = 1.f;
    std::memcpy(acc + r * P, vt + (row0 + t) * s.ld_kv + h * P, sizeof(float) * size_t(P));
  }
  const int64_t nkeys = (t0 + nq - 1) / L;  // keys seen by the block's last row
  for (int64_t j0 = 0; j0 < nkeys; j0 += bk) {
    const int64_t nk = std::min(bk, nkeys - j0);
    gemm_small({nq, nk, P, false, true, P, P, bk}, Q, Kf + j0 * P, S, 0.f);
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t e = std::min(nk, (t0 + r) / L - j0);  // keys c' < chunk(t)
      tile::online_softmax_row(S + r * bk, nk, 0, e, scale, m[r], l[r], acc + r * P, P);
    }
    gemm_small({nq, P, nk, false, false, bk, P, P}, S, Vf + j0 * P, acc, 1.f);
  }
  for (int64_t r = 0; r < nq; ++r) {
    const int64_t t = t0 + r;
    vec_axpby(1.f / l[r], acc + r * P, 0.f, o + (row0 + t) * s.ld_o + h * P, P);
    lse[(b * s.H + h) * T + t] = m[r] + std::log(l[r]);
  }
}

// Backward of head h, batch b. dkt, dvt rows of the head are overwritten; the head's part of
// dq is ADDED into dqh (packed [T, P]), which the caller zeroes. Kf, Vf: packed finals.
void backward_head(const RatAttnShape& s, int64_t bq, int64_t bk, int64_t b, int64_t h,
                   const float* q, const float* kt, const float* vt, const float* o,
                   const float* lse, const float* dout, const float* Kf, const float* Vf,
                   float* dqh, float* dkt, float* dvt) {
  const int64_t P = s.P, T = s.T, L = s.L;
  const float scale = 1.f / std::sqrt(float(P));
  const int64_t nkeys = (T - 1) / L;  // chunk-final states with a later reader
  float* S = tile::thread_scratch(0, size_t(bq * bk));
  float* dS = tile::thread_scratch(1, size_t(bq * bk));
  float* D = tile::thread_scratch(2, size_t(T));
  float* Qh = tile::thread_scratch(3, size_t(T * P));
  float* dOh = tile::thread_scratch(4, size_t(T * P));
  float* dKV = tile::thread_scratch(5, size_t(2 * nkeys * P));  // dKf, dVf accumulators
  float *dKf = dKV, *dVf = dKV + nkeys * P;
  const int64_t g = h % s.G, row0 = b * T;
  const float* lse_h = lse + (b * s.H + h) * T;
  tile::pack_rows(q + row0 * s.ld_q + g * P, s.ld_q, T, P, Qh);
  tile::pack_rows(dout + row0 * s.ld_o + h * P, s.ld_o, T, P, dOh);
  // Own-state term: p = exp(s_own - lse), dvt_t = p dO_t, ds = scale p (dO_t.vt_t - D_t),
  // dq_t += ds kt_t, dkt_t = ds q_t. (Chunk 0: p = 1 and o = vt, so ds = 0 and dvt = dO.)
  for (int64_t t = 0; t < T; ++t) {
    const float* qt = Qh + t * P;
    const float* kr = kt + (row0 + t) * s.ld_kv + h * P;
    const float* vr = vt + (row0 + t) * s.ld_kv + h * P;
    const float* go = dOh + t * P;
    D[t] = vec_dot(go, o + (row0 + t) * s.ld_o + h * P, P);
    const float p = std::exp(scale * vec_dot(qt, kr, P) - lse_h[t]);
    const float ds = scale * p * (vec_dot(go, vr, P) - D[t]);
    vec_axpby(p, go, 0.f, dvt + (row0 + t) * s.ld_kv + h * P, P);
    vec_axpby(ds, qt, 0.f, dkt + (row0 + t) * s.ld_kv + h * P, P);
    vec_axpby(ds, kr, 1.f, dqh + t * P, P);
  }
  if (nkeys == 0) return;  // chunk 0 only: no chunk-final keys
  std::memset(dKV, 0, sizeof(float) * size_t(2 * nkeys * P));
  for (int64_t j0 = 0; j0 < nkeys; j0 += bk) {
    const int64_t nk = std::min(bk, nkeys - j0);
    for (int64_t t0 = (j0 + 1) * L; t0 < T; t0 += bq) {  // first reader of key j0: chunk j0+1
      const int64_t nq = std::min(bq, T - t0);
      // Keys of this block that the query block's last row sees: the causal edge runs L
      // times slower over keys than over queries, so without this trim the tiles near it
      // (bk * L query rows per key block) would be half masked work.
      const int64_t nke = std::min(nk, (t0 + nq - 1) / L - j0);
      const float* Q = Qh + t0 * P;
      const float* dO = dOh + t0 * P;
      gemm_small({nq, nke, P, false, true, P, P, bk}, Q, Kf + j0 * P, S, 0.f);
      for (int64_t r = 0; r < nq; ++r) {
        const int64_t e = std::min(nke, (t0 + r) / L - j0);
        tile::prob_row(S + r * bk, nke, 0, e, scale, lse_h[t0 + r]);
      }
      gemm_small({nke, P, nq, true, false, bk, P, P}, S, dO, dVf + j0 * P, 1.f);
      gemm_small({nq, nke, P, false, true, P, P, bk}, dO, Vf + j0 * P, dS, 0.f);
      for (int64_t r = 0; r < nq; ++r)
        vec_softmax_grad(S + r * bk, dS + r * bk, nke, D[t0 + r], scale);
      gemm_small({nq, P, nke, false, false, bk, P, P}, dS, Kf + j0 * P, dqh + t0 * P, 1.f);
      gemm_small({nke, P, nq, true, false, bk, P, P}, dS, Q, dKf + j0 * P, 1.f);
    }
  }
  const int64_t off = (row0 + L - 1) * s.ld_kv + h * P;  // chunk-final rows, stride L*ld_kv
  tile::unpack_rows(dKf, nkeys, P, dkt + off, L * s.ld_kv, true);
  tile::unpack_rows(dVf, nkeys, P, dvt + off, L * s.ld_kv, true);
}

// RatAttnShape's contract (rat_attention.h): G divides H (head h reads group h % G), chunks
// are at least one token, and every head or group fits in its row stride.
[[maybe_unused]] bool rat_attn_shape_ok(const RatAttnShape& s) {
  return s.B >= 0 && s.T >= 0 && s.H > 0 && s.P > 0 && s.L >= 1 && s.G >= 1 && s.H % s.G == 0 &&
         s.ld_q >= s.G * s.P && s.ld_kv >= s.H * s.P && s.ld_o >= s.H * s.P;
}

}  // namespace

void rat_attention_forward(const RatAttnShape& s, const float* q, const float* kt, const float* vt,
                           float* o, float* lse) {
  RAT_ASSERT(q != nullptr && kt != nullptr && vt != nullptr && o != nullptr && lse != nullptr);
  RAT_ASSERT(rat_attn_shape_ok(s));
  const int64_t bq = s.block_q > 0 ? s.block_q : kFwdBlockQ;
  const int64_t bk = s.block_k > 0 ? s.block_k : kFwdBlockK;
  const int64_t nqb = (s.T + bq - 1) / bq, BH = s.B * s.H, P = s.P;
  const int64_t nkeys = (s.T - 1) / s.L;
  float* kfp = persistent(0, size_t(2 * BH * nkeys * P));  // T/L of the kt, vt sizes
  float* vfp = kfp + BH * nkeys * P;
  pack_finals(s, kt, vt, nkeys, kfp, vfp);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t idx = 0; idx < nqb * BH; ++idx) {  // heaviest (last) query blocks first
    const int64_t qb = nqb - 1 - idx / BH, bh = idx % BH;
    const int64_t t0 = qb * bq;
    forward_block(s, bk, bh / s.H, bh % s.H, t0, std::min(bq, s.T - t0), q, kt, vt,
                  kfp + bh * nkeys * P, vfp + bh * nkeys * P, o, lse);
  }
}

void rat_attention_backward(const RatAttnShape& s, const float* q, const float* kt, const float* vt,
                            const float* o, const float* lse, const float* dout, float* dq,
                            float* dkt, float* dvt) {
  RAT_ASSERT(q && kt && vt && o && lse && dout && dq && dkt && dvt);
  RAT_ASSERT(rat_attn_shape_ok(s));
  const int64_t bq = s.block_q > 0 ? s.block_q : kBwdBlockQ;
  const int64_t bk = s.block_k > 0 ? s.block_k : kBwdBlockK;
  const int64_t B = s.B, T = s.T, H = s.H, G = s.G, P = s.P;
  const int64_t BH = B * H;
  const int64_t nkeys = (T - 1) / s.L;
  float* kfp = persistent(0, size_t(2 * BH * nkeys * P));
  float* vfp = kfp + BH * nkeys * P;
  pack_finals(s, kt, vt, nkeys, kfp, vfp);
  // One head per group: each (batch, head) owns its dq rows.
  if (G == H) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      float* dqh = tile::thread_scratch(6, size_t(T * P));
      std::memset(dqh, 0, sizeof(float) * size_t(T * P));
      backward_head(s, bq, bk, b, h, q, kt, vt, o, lse, dout, kfp + bh * nkeys * P,
                    vfp + bh * nkeys * P, dqh, dkt, dvt);
      tile::unpack_rows(dqh, T, P, dq + b * T * s.ld_q + h * P, s.ld_q, false);
    }
    return;
  }
  // Heads sharing a group: each head's dq into its own [T, P] copy, then the copies of a
  // group added in head order. Per-thread copies (fewer floats) would group the heads by
  // thread, and the gradient would change with the thread count.
  const int64_t TP = T * P;
  float* acc = persistent(1, size_t(BH * TP));
#pragma omp parallel
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; ++bh) {
      float* mine = acc + bh * TP;
      std::memset(mine, 0, sizeof(float) * size_t(TP));
      backward_head(s, bq, bk, bh / H, bh % H, q, kt, vt, o, lse, dout, kfp + bh * nkeys * P,
                    vfp + bh * nkeys * P, mine, dkt, dvt);
    }
#pragma omp for schedule(static)
    for (int64_t bt = 0; bt < B * T; ++bt) {
      const int64_t b = bt / T, t = bt % T;
      for (int64_t g = 0; g < G; ++g) {
        float* dst = dq + bt * s.ld_q + g * P;
        const float* src = acc + ((b * H + g) * T + t) * P;
        std::memcpy(dst, src, sizeof(float) * size_t(P));
        for (int64_t h = g + G; h < H; h += G) vec_axpby(1.f, src + (h - g) * TP, 1.f, dst, P);
      }
    }
  }
}

// ---- references -----------------------------------------------------------------------

namespace {

// Rows (token indices) of the keys query t reads: chunk-final rows of earlier chunks, then t.
void naive_key_rows(const RatAttnShape& s, int64_t t, std::vector<int64_t>& rows) {
  rows.clear();
  for (int64_t c = 0; c < t / s.L; ++c) rows.push_back(c * s.L + s.L - 1);
  rows.push_back(t);
}

// Softmax probabilities of query t (head h, batch b) over its key rows; returns lse.
double naive_probs(const RatAttnShape& s, const float* q, const float* kt, int64_t b, int64_t h,
                   int64_t t, const std::vector<int64_t>& rows, std::vector<double>& p) {
  const int64_t P = s.P;
  const double scale = 1.0 / std::sqrt(double(P));
  const float* qt = q + (b * s.T + t) * s.ld_q + (h % s.G) * P;
  p.resize(rows.size());
  double mx = -INFINITY;
  for (size_t j = 0; j < rows.size(); ++j) {
    const float* kr = kt + (b * s.T + rows[j]) * s.ld_kv + h * P;
    double d = 0;
    for (int64_t i = 0; i < P; ++i) d += double(qt[i]) * kr[i];
    p[j] = d * scale;
    mx = std::max(mx, p[j]);
  }
  double sum = 0;
  for (double& x : p) sum += (x = std::exp(x - mx));
  for (double& x : p) x /= sum;
  return mx + std::log(sum);
}

}  // namespace

void rat_attention_forward_naive(const RatAttnShape& s, const float* q, const float* kt,
                                 const float* vt, float* o, float* lse) {
  RAT_ASSERT(q != nullptr && kt != nullptr && vt != nullptr && o != nullptr &&
             rat_attn_shape_ok(s));
  const int64_t P = s.P;
  std::vector<int64_t> rows;
  std::vector<double> p;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t t = 0; t < s.T; ++t) {
        naive_key_rows(s, t, rows);
        const double l = naive_probs(s, q, kt, b, h, t, rows, p);
        float* ot = o + (b * s.T + t) * s.ld_o + h * P;
        for (int64_t i = 0; i < P; ++i) {
          double acc = 0;
          for (size_t j = 0; j < rows.size(); ++j)
            acc += p[j] * vt[(b * s.T + rows[j]) * s.ld_kv + h * P + i];
          ot[i] = float(acc);
        }
        if (lse) lse[(b * s.H + h) * s.T + t] = float(l);
      }
}

void rat_attention_backward_naive(const RatAttnShape& s, const float* q, const float* kt,
                                  const float* vt, const float* dout, float* dq, float* dkt,
                                  float* dvt) {
  RAT_ASSERT(q && kt && vt && dout && dq && dkt && dvt && rat_attn_shape_ok(s));
  const int64_t B = s.B, T = s.T, H = s.H, G = s.G, P = s.P;
  const double scale = 1.0 / std::sqrt(double(P));
  std::vector<double> gq(size_t(B * T * G * P)), gk(size_t(B * T * H * P)), gv(gk.size());
  std::vector<int64_t> rows;
  std::vector<double> p, dp;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t g = h % G;
        naive_key_rows(s, t, rows);
        naive_probs(s, q, kt, b, h, t, rows, p);
        const float* go = dout + (b * T + t) * s.ld_o + h * P;
        const float* qt = q + (b * T + t) * s.ld_q + g * P;
        dp.assign(rows.size(), 0.0);
        double D = 0;  // dO . o = sum_j p_j dp_j
        for (size_t j = 0; j < rows.size(); ++j) {
          const float* vr = vt + (b * T + rows[j]) * s.ld_kv + h * P;
          for (int64_t i = 0; i < P; ++i) dp[j] += double(go[i]) * vr[i];
          D += p[j] * dp[j];
        }
        for (size_t j = 0; j < rows.size(); ++j) {
          const double ds = p[j] * (dp[j] - D) * scale;
          const int64_t r = rows[j];
          const float* kr = kt + (b * T + r) * s.ld_kv + h * P;
          for (int64_t i = 0; i < P; ++i) {
            gq[size_t(((b * T + t) * G + g) * P + i)] += ds * kr[i];
            gk[size_t(((b * T + r) * H + h) * P + i)] += ds * qt[i];
            gv[size_t(((b * T + r) * H + h) * P + i)] += p[j] * go[i];
          }
        }
      }
  for (int64_t bt = 0; bt < B * T; ++bt) {
    for (int64_t i = 0; i < G * P; ++i) dq[bt * s.ld_q + i] = float(gq[size_t(bt * G * P + i)]);
    for (int64_t i = 0; i < H * P; ++i) {
      dkt[bt * s.ld_kv + i] = float(gk[size_t(bt * H * P + i)]);
      dvt[bt * s.ld_kv + i] = float(gv[size_t(bt * H * P + i)]);
    }
  }
}

}  // namespace rat
