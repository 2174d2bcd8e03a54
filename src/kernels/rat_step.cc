#include "kernels/rat_step.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "kernels/decode_attention.h"
#include "kernels/gemm.h"
#include "kernels/vec_math.h"

namespace rat {

void rat_step_head(const RatStepState& st, const float* proj, int64_t h, int64_t s, int64_t t,
                   float* scratch, float* out, uint16_t* out16) {
  const int64_t D = st.D, P = st.P, G = st.G, L = st.L, C = st.C, GP = G * P;
  const int64_t c = t / L, l = t % L;
  assert(P % 2 == 0 && (D / P) % G == 0 && c < C && s < st.S && st.rope && st.rope->P == P);
  float* kr = scratch + C + 1;
  float* qr = kr + P;
  float* gs = qr + P;  // this head's gates, then its output gates z
  float* o = gs + P;
  float* rk = st.run_k + s * D + h * P;
  float* rv = st.run_v + s * D + h * P;
  if (l == 0) {  // a chunk starts: its scans start from zero
    std::fill(rk, rk + P, 0.f);
    std::fill(rv, rv + P, 0.f);
  }
  // vec_sigmoid per lane, as rat_scan_forward: the same bits as the forward.
  vec_sigmoid(proj + 2 * D + h * P, st.gate_bias + h * P, gs, P);
  const float* cs = rope_cos(*st.rope, c);
  const float* sn = rope_sin(*st.rope, c);
  rat_token_head(gs, proj + D + h * P, proj + 3 * D + GP + (h % G) * P, rv, rk, cs, sn, P, kr);
  rope_rotate(proj + 3 * D + (h % G) * P, qr, cs, sn, P / 2, 1.f);
  const int64_t base = (h * st.S + s) * C * P;
  const float scale = 1.f / std::sqrt(float(P));
  if (st.cache_bf16)
    decode_attend(qr, st.k16 + base, st.v16 + base, c, kr, rv, P, scale, scratch, o);
  else
    decode_attend(qr, st.k + base, st.v + base, c, kr, rv, P, scale, scratch, o);
  vec_sigmoid(proj + h * P, nullptr, gs, P);
#pragma omp simd
  for (int64_t j = 0; j < P; ++j) o[j] *= gs[j];  // z * o
  if (out)
    std::memcpy(out, o, size_t(P) * sizeof(float));
  else
    to_bf16(o, out16, P);
  if (l == L - 1) {  // the chunk's final state joins the cache
    const int64_t at = base + c * P;
    if (st.cache_bf16) {
      to_bf16(kr, st.k16 + at, P);
      to_bf16(rv, st.v16 + at, P);
    } else {
      std::memcpy(st.k + at, kr, size_t(P) * sizeof(float));
      std::memcpy(st.v + at, rv, size_t(P) * sizeof(float));
    }
  }
}

}  // namespace rat
