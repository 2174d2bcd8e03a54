// Tiled causal / sliding-window softmax attention (SPEC.md "attention", "local_attention").
//
// Forward: one task per (batch, head, query block). The block's key range [t0 - window, t1]
// is walked in key blocks; S = Q K^T and O += P V are single-threaded oneDNN sgemm calls, and
// the softmax is online (running max m, sum l), so a thread holds one Bq x Bk score tile and
// one Bq x P accumulator, never a T x T matrix. lse = m + log(l) is kept for backward.
//
// Operands are packed before the products: in the model q, k, v are column slices of the
// in_proj output, rows 3D floats (12 KB at D 1024) apart, a stride that puts every row of a
// tile in the same few L1/L2 sets; sgemm on them ran ~25% slower (bench/attention_lab.cc,
// "attn-hmaj" row). Forward packs k and v head-major once per call (2 B T H P floats) and q
// per query block; backward packs a head's q, dout (and accumulates dq) in O(T P) per-thread
// scratch, and k, v, dk, dv one key block at a time.
//
// Backward (FlashAttention-2 order): one task per (batch, head), so dq, dk, dv of a head are
// written by one thread only. For each key block j and each query block i that sees it:
//   P = exp(scale Q_i K_j^T - lse),  dV_j += P^T dO_i,  dP = dO_i V_j^T,
//   dS = scale P o (dP - D),  D_t = dO_t . O_t,   dQ_i += dS K_j,  dK_j += dS^T Q_i.
#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/softmax_tile.h"
#include "kernels/vec_math.h"
#include "util/error.h"

namespace rat {

namespace {

// Tuned with bench/attention_lab.cc on Zen 5 (P = 64, one thread, CPU time): 128 x 256 forward
// and 128 x 128 backward were at or within noise (+-10%) of the best of 64..256 x 128..512.
constexpr int64_t kFwdBlockQ = 128, kFwdBlockK = 256;
constexpr int64_t kBwdBlockQ = 128, kBwdBlockK = 128;

// First key visible to query t (window < 0: full causal).
inline int64_t first_key(int64_t t, int64_t window) {
  return window < 0 ? 0 : std::max<int64_t>(0, t - window);
}

// Forward of rows t0 .. t0+nq-1 of head h, batch b. Kh, Vh: this head's keys and values,
// packed [T, P].
void forward_block(const AttnShape& s, int64_t bk, int64_t b, int64_t h, int64_t t0, int64_t nq,
                   const float* q, const float* Kh, const float* Vh, float* o, float* lse) {
  const int64_t P = s.P, T = s.T;
  const float scale = 1.f / std::sqrt(float(P));
  float* S = tile::thread_scratch(0, size_t(nq * bk));   // [nq, bk] scores, then probabilities
  float* acc = tile::thread_scratch(1, size_t(nq * P));  // [nq, P] unnormalised output
  float* m = tile::thread_scratch(2, size_t(2 * nq));    // running max, then running sum
  float* Q = tile::thread_scratch(3, size_t(nq * P));    // [nq, P] packed queries
  float* l = m + nq;
  std::fill(m, m + nq, tile::kNegInf);
  std::fill(l, l + nq, 0.f);
  std::memset(acc, 0, sizeof(float) * size_t(nq * P));
  tile::pack_rows(q + (b * T + t0) * s.ld_q + h * P, s.ld_q, nq, P, Q);

  const int64_t t1 = t0 + nq - 1;
  for (int64_t j0 = first_key(t0, s.window); j0 <= t1; j0 += bk) {
    const int64_t nk = std::min(bk, t1 + 1 - j0);
    gemm_small({nq, nk, P, false, true, P, P, bk}, Q, Kh + j0 * P, S, 0.f);  // S = Q K^T
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t t = t0 + r;
      const int64_t a = std::max(j0, first_key(t, s.window)) - j0;
      const int64_t e = std::min(j0 + nk - 1, t) + 1 - j0;
      tile::online_softmax_row(S + r * bk, nk, a, e, scale, m[r], l[r], acc + r * P, P);
    }
    gemm_small({nq, P, nk, false, false, bk, P, P}, S, Vh + j0 * P, acc, 1.f);  // acc += P V
  }
  for (int64_t r = 0; r < nq; ++r) {
    const int64_t t = t0 + r;
    vec_axpby(1.f / l[r], acc + r * P, 0.f, o + (b * T + t) * s.ld_o + h * P, P);
    lse[(b * s.H + h) * T + t] = m[r] + std::log(l[r]);
  }
}

// Backward of head h, batch b: dq, dk, dv rows of this head are overwritten. The head's q,
// dout and dq live packed [T, P] in thread scratch (O(T) per thread); k, v and their
// gradients one key block at a time.
void backward_head(const AttnShape& s, int64_t bq, int64_t bk, int64_t b, int64_t h, const float* q,
                   const float* k, const float* v, const float* o, const float* lse,
                   const float* dout, float* dq, float* dk, float* dv) {
  const int64_t P = s.P, T = s.T;
  const float scale = 1.f / std::sqrt(float(P));
  float* S = tile::thread_scratch(0, size_t(bq * bk));   // probabilities P
  float* dS = tile::thread_scratch(1, size_t(bq * bk));  // dP, then dS
  float* D = tile::thread_scratch(2, size_t(T));         // D_t = dO_t . O_t
  float* Qh = tile::thread_scratch(3, size_t(T * P));
  float* dOh = tile::thread_scratch(4, size_t(T * P));
  float* dQh = tile::thread_scratch(5, size_t(T * P));
  float* KV = tile::thread_scratch(6, size_t(2 * bk * P));   // K_j, V_j packed
  float* dKV = tile::thread_scratch(7, size_t(2 * bk * P));  // dK_j, dV_j accumulators
  float *Kj = KV, *Vj = KV + bk * P, *dKj = dKV, *dVj = dKV + bk * P;
  const float* lse_h = lse + (b * s.H + h) * T;
  const int64_t row0 = b * T;
  tile::pack_rows(q + row0 * s.ld_q + h * P, s.ld_q, T, P, Qh);
  tile::pack_rows(dout + row0 * s.ld_o + h * P, s.ld_o, T, P, dOh);
  for (int64_t t = 0; t < T; ++t) D[t] = vec_dot(dOh + t * P, o + (row0 + t) * s.ld_o + h * P, P);
  std::memset(dQh, 0, sizeof(float) * size_t(T * P));
  for (int64_t j0 = 0; j0 < T; j0 += bk) {
    const int64_t nk = std::min(bk, T - j0), j1 = j0 + nk - 1;
    const int64_t t_end = s.window < 0 ? T - 1 : std::min(T - 1, j1 + s.window);  // last query
    tile::pack_rows(k + (row0 + j0) * s.ld_k + h * P, s.ld_k, nk, P, Kj);
    tile::pack_rows(v + (row0 + j0) * s.ld_v + h * P, s.ld_v, nk, P, Vj);
    std::memset(dKV, 0, sizeof(float) * size_t(2 * bk * P));
    for (int64_t t0 = j0; t0 <= t_end; t0 += bq) {
      const int64_t nq = std::min(bq, t_end + 1 - t0);
      // Under a window, keys before first_key(t0) are invisible to the whole query block:
      // the tile starts at key jb = j0 + ka.
      const int64_t ka = std::max<int64_t>(0, first_key(t0, s.window) - j0), jb = j0 + ka;
      const int64_t nke = nk - ka;
      const float* Q = Qh + t0 * P;
      const float* dO = dOh + t0 * P;
      const float *K = Kj + ka * P, *V = Vj + ka * P;
      gemm_small({nq, nke, P, false, true, P, P, bk}, Q, K, S, 0.f);  // S = Q K^T
      for (int64_t r = 0; r < nq; ++r) {
        const int64_t t = t0 + r;
        const int64_t a = std::max(jb, first_key(t, s.window)) - jb;
        const int64_t e = std::min(j1, t) + 1 - jb;
        tile::prob_row(S + r * bk, nke, a, e, scale, lse_h[t]);
      }
      gemm_small({nke, P, nq, true, false, bk, P, P}, S, dO, dVj + ka * P, 1.f);  // dV += P^T dO
      gemm_small({nq, nke, P, false, true, P, P, bk}, dO, V, dS, 0.f);            // dP = dO V^T
      for (int64_t r = 0; r < nq; ++r)
        vec_softmax_grad(S + r * bk, dS + r * bk, nke, D[t0 + r], scale);
      gemm_small({nq, P, nke, false, false, bk, P, P}, dS, K, dQh + t0 * P, 1.f);  // dQ += dS K
      gemm_small({nke, P, nq, true, false, bk, P, P}, dS, Q, dKj + ka * P, 1.f);   // dK += dS^T Q
    }
    tile::unpack_rows(dKj, nk, P, dk + (row0 + j0) * s.ld_k + h * P, s.ld_k, false);
    tile::unpack_rows(dVj, nk, P, dv + (row0 + j0) * s.ld_v + h * P, s.ld_v, false);
  }
  tile::unpack_rows(dQh, T, P, dq + row0 * s.ld_q + h * P, s.ld_q, false);
}

// AttnShape's contract (attention.h): every head fits in each row stride.
[[maybe_unused]] bool attn_shape_ok(const AttnShape& s) {
  const int64_t HP = s.H * s.P;
  return s.B >= 0 && s.T >= 0 && s.H > 0 && s.P > 0 && s.ld_q >= HP && s.ld_k >= HP &&
         s.ld_v >= HP && s.ld_o >= HP;
}

}  // namespace

void attention_forward(const AttnShape& s, const float* q, const float* k, const float* v, float* o,
                       float* lse) {
  RAT_ASSERT(q != nullptr && k != nullptr && v != nullptr && o != nullptr && lse != nullptr);
  RAT_ASSERT(attn_shape_ok(s));
  const int64_t bq = s.block_q > 0 ? s.block_q : kFwdBlockQ;
  const int64_t bk = s.block_k > 0 ? s.block_k : kFwdBlockK;
  const int64_t nqb = (s.T + bq - 1) / bq, BH = s.B * s.H, T = s.T, P = s.P;
  // Keys and values packed head-major [B, H, T, P] (2 B T H P floats, allocated per call:
  // copying costs O(T P) per head against O(T^2 P) of products, see pack_rows).
  // (No value-initialisation: the packing touches each page once.)
  std::unique_ptr<float[]> kvp(new float[size_t(2 * BH * T * P)]);
  float *kp = kvp.get(), *vp = kvp.get() + BH * T * P;
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < BH; ++bh) {
    const int64_t b = bh / s.H, h = bh % s.H;
    tile::pack_rows(k + b * T * s.ld_k + h * P, s.ld_k, T, P, kp + bh * T * P);
    tile::pack_rows(v + b * T * s.ld_v + h * P, s.ld_v, T, P, vp + bh * T * P);
  }
  // Heaviest query blocks (the last ones, under full causal masking) go out first.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t idx = 0; idx < nqb * BH; ++idx) {
    const int64_t qb = nqb - 1 - idx / BH, bh = idx % BH;
    const int64_t t0 = qb * bq;
    forward_block(s, bk, bh / s.H, bh % s.H, t0, std::min(bq, T - t0), q, kp + bh * T * P,
                  vp + bh * T * P, o, lse);
  }
}

void attention_backward(const AttnShape& s, const float* q, const float* k, const float* v,
                        const float* o, const float* lse, const float* dout, float* dq, float* dk,
                        float* dv) {
  RAT_ASSERT(q && k && v && o && lse && dout && dq && dk && dv);
  RAT_ASSERT(attn_shape_ok(s));
  const int64_t bq = s.block_q > 0 ? s.block_q : kBwdBlockQ;
  const int64_t bk = s.block_k > 0 ? s.block_k : kBwdBlockK;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bh = 0; bh < s.B * s.H; ++bh)
    backward_head(s, bq, bk, bh / s.H, bh % s.H, q, k, v, o, lse, dout, dq, dk, dv);
}

// ---- references -----------------------------------------------------------------------

namespace {

// Probabilities of query t over its visible keys [lo, t] (double), returns lse.
double naive_probs(const AttnShape& s, const float* q, const float* k, int64_t b, int64_t h,
                   int64_t t, int64_t lo, std::vector<double>& p) {
  const int64_t P = s.P;
  const double scale = 1.0 / std::sqrt(double(P));
  const float* qt = q + (b * s.T + t) * s.ld_q + h * P;
  p.assign(size_t(t - lo + 1), 0.0);
  double mx = -INFINITY;
  for (int64_t j = lo; j <= t; ++j) {
    const float* kj = k + (b * s.T + j) * s.ld_k + h * P;
    double d = 0;
    for (int64_t i = 0; i < P; ++i) d += double(qt[i]) * kj[i];
    p[size_t(j - lo)] = d * scale;
    mx = std::max(mx, d * scale);
  }
  double sum = 0;
  for (double& x : p) sum += (x = std::exp(x - mx));
  for (double& x : p) x /= sum;
  return mx + std::log(sum);
}

}  // namespace

void attention_forward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                             float* o, float* lse) {
  RAT_ASSERT(q != nullptr && k != nullptr && v != nullptr && o != nullptr && attn_shape_ok(s));
  const int64_t P = s.P;
  std::vector<double> p, acc(static_cast<size_t>(P));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t t = 0; t < s.T; ++t) {
        const int64_t lo = first_key(t, s.window);
        double l = naive_probs(s, q, k, b, h, t, lo, p);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = lo; j <= t; ++j) {
          const float* vj = v + (b * s.T + j) * s.ld_v + h * P;
          for (int64_t i = 0; i < P; ++i) acc[size_t(i)] += p[size_t(j - lo)] * vj[i];
        }
        float* ot = o + (b * s.T + t) * s.ld_o + h * P;
        for (int64_t i = 0; i < P; ++i) ot[i] = float(acc[size_t(i)]);
        if (lse) lse[(b * s.H + h) * s.T + t] = float(l);
      }
}

void attention_backward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                              const float* dout, float* dq, float* dk, float* dv) {
  RAT_ASSERT(q && k && v && dout && dq && dk && dv && attn_shape_ok(s));
  const int64_t P = s.P, T = s.T;
  const double scale = 1.0 / std::sqrt(double(P));
  std::vector<double> p, dp, gq(size_t(T * P)), gk(size_t(T * P)), gv(size_t(T * P));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      std::fill(gq.begin(), gq.end(), 0.0);
      std::fill(gk.begin(), gk.end(), 0.0);
      std::fill(gv.begin(), gv.end(), 0.0);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t lo = first_key(t, s.window);
        naive_probs(s, q, k, b, h, t, lo, p);
        const float* go = dout + (b * T + t) * s.ld_o + h * P;
        const float* qt = q + (b * T + t) * s.ld_q + h * P;
        // dp_j = dO . v_j; D = sum_j p_j dp_j (= dO . o); ds_j = p_j (dp_j - D).
        dp.assign(p.size(), 0.0);
        double D = 0;
        for (int64_t j = lo; j <= t; ++j) {
          const float* vj = v + (b * T + j) * s.ld_v + h * P;
          double d = 0;
          for (int64_t i = 0; i < P; ++i) d += double(go[i]) * vj[i];
          dp[size_t(j - lo)] = d;
          D += p[size_t(j - lo)] * d;
        }
        for (int64_t j = lo; j <= t; ++j) {
          const double pj = p[size_t(j - lo)], ds = pj * (dp[size_t(j - lo)] - D) * scale;
          const float* kj = k + (b * T + j) * s.ld_k + h * P;
          for (int64_t i = 0; i < P; ++i) {
            gq[size_t(t * P + i)] += ds * kj[i];
            gk[size_t(j * P + i)] += ds * qt[i];
            gv[size_t(j * P + i)] += pj * go[i];
          }
        }
      }
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < P; ++i) {
          dq[(b * T + t) * s.ld_q + h * P + i] = float(gq[size_t(t * P + i)]);
          dk[(b * T + t) * s.ld_k + h * P + i] = float(gk[size_t(t * P + i)]);
          dv[(b * T + t) * s.ld_v + h * P + i] = float(gv[size_t(t * P + i)]);
        }
    }
}

}  // namespace rat
