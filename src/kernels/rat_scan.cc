#include "kernels/rat_scan.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/rat_step.h"
#include "kernels/vec_math.h"
#include "util/error.h"

namespace rat {

namespace {

// RatScanShape's contract (rat_scan.h): P even (rotate-half), P divides D, G divides H = D/P,
// the five projection blocks fit in the row stride, and the table covers every chunk index.
[[maybe_unused]] bool rat_scan_shape_ok(const RatScanShape& s, const RopeTable& rope) {
  if (s.P <= 0 || s.P % 2 != 0 || s.D % s.P != 0 || s.G < 1 || (s.D / s.P) % s.G != 0) return false;
  const int64_t chunks = s.L >= 1 ? (s.T + s.L - 1) / s.L : -1;
  return s.B >= 0 && s.T >= 0 && chunks >= 0 && s.ld >= 3 * s.D + 2 * s.G * s.P && rope.P == s.P &&
         (s.B * s.T == 0 || rope.max_pos >= chunks);
}

}  // namespace

void rat_scan_forward(const RatScanShape& s, const float* gate_bias, const RopeTable& rope,
                      float* proj, float* vt, float* kt, float* ktr, float* qr) {
  RAT_ASSERT(proj != nullptr && gate_bias != nullptr && vt != nullptr && kt != nullptr &&
             ktr != nullptr && qr != nullptr);
  RAT_ASSERT(rat_scan_shape_ok(s, rope));
  const int64_t B = s.B, T = s.T, L = s.L, D = s.D, P = s.P, G = s.G, GP = G * P;
  const int64_t H = D / P, half = P / 2, C = (T + L - 1) / L;
#pragma omp parallel
  {
    std::vector<float> state(size_t(2 * D));
    float *sv = state.data(), *sk = sv + D;
#pragma omp for schedule(static)
    for (int64_t bc = 0; bc < B * C; ++bc) {
      const int64_t b = bc / C, c = bc % C;
      const float* cs = rope_cos(rope, c);  // interrope: the chunk index
      const float* sn = rope_sin(rope, c);
      std::fill(state.begin(), state.end(), 0.f);
      for (int64_t t = c * L; t < std::min(T, (c + 1) * L); ++t) {
        const int64_t n = b * T + t;
        float* z = proj + n * s.ld;
        const float* v = z + D;
        float* g = z + 2 * D;
        const float* q = z + 3 * D;
        const float* k = q + GP;
        vec_sigmoid(z, nullptr, z, D);
        vec_sigmoid(g, gate_bias, g, D);
        // Head by head, the token update the decode step runs (rat_step.h).
        for (int64_t h = 0; h < H; ++h)
          rat_token_head(g + h * P, v + h * P, k + (h % G) * P, sv + h * P, sk + h * P, cs, sn, P,
                         ktr + n * D + h * P);
        std::memcpy(vt + n * D, sv, size_t(D) * sizeof(float));
        std::memcpy(kt + n * D, sk, size_t(D) * sizeof(float));
        for (int64_t j = 0; j < G; ++j)
          rope_rotate(q + j * P, qr + n * GP + j * P, cs, sn, half, 1.f);
      }
    }
  }
}

// Per channel, the reverse sweep of the chunk scan (see scan.cc): a_l = dh_l + g_{l+1} a_{l+1},
// dx_l = (1 - g_l) a_l, dg_l += a_l (h_{l-1} - x_l), once for v and once for the key copy of
// each head; the key copies' dx add onto their group's k. dh of kt is the inverse rotation of
// the gradient of ktr. Sums run in the order of the unfused path (v, then heads 0..H-1).
void rat_scan_backward(const RatScanShape& s, const RopeTable& rope, const float* proj,
                       const float* vt, const float* kt, const float* dvt, const float* dktr,
                       const float* dqr, float* dproj) {
  RAT_ASSERT(proj != nullptr && vt != nullptr && kt != nullptr && dvt != nullptr &&
             dktr != nullptr && dqr != nullptr && dproj != nullptr);
  RAT_ASSERT(rat_scan_shape_ok(s, rope));
  const int64_t B = s.B, T = s.T, L = s.L, D = s.D, P = s.P, G = s.G, GP = G * P;
  const int64_t H = D / P, half = P / 2, C = (T + L - 1) / L;
#pragma omp parallel
  {
    std::vector<float> buf(size_t(4 * D));
    float *cv = buf.data(), *ck = cv + D, *dk_un = ck + D, *zero = dk_un + D;
#pragma omp for schedule(static)
    for (int64_t bc = 0; bc < B * C; ++bc) {
      const int64_t b = bc / C, c = bc % C;
      const float* cs = rope_cos(rope, c);
      const float* sn = rope_sin(rope, c);
      std::fill(buf.begin(), buf.end(), 0.f);
      const int64_t t_begin = c * L;
      for (int64_t t = std::min(T, (c + 1) * L) - 1; t >= t_begin; --t) {
        const int64_t n = b * T + t;
        const float* v = proj + n * s.ld + D;
        const float* g = v + D;
        const float* k = g + D + GP;
        float* dv = dproj + n * s.ld + D;
        float* dg = dv + D;
        float* dq = dg + D;
        float* dk = dq + GP;
        const float* hv = t > t_begin ? vt + (n - 1) * D : zero;
        const float* hk = t > t_begin ? kt + (n - 1) * D : zero;
        const float* dh = dvt + n * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) {
          const float a = dh[d] + cv[d];
          dv[d] = (1.f - g[d]) * a;
          dg[d] = a * (hv[d] - v[d]);
          cv[d] = g[d] * a;
        }
        std::fill(dk, dk + GP, 0.f);
        for (int64_t h = 0; h < H; ++h) {
          const float* gh = g + h * P;
          const float* kg = k + (h % G) * P;
          const float* hkh = hk + h * P;
          float* dkg = dk + (h % G) * P;
          float* dgh = dg + h * P;
          float* ckh = ck + h * P;
          float* dkh = dk_un + h * P;
          rope_rotate(dktr + n * D + h * P, dkh, cs, sn, half, -1.f);
#pragma omp simd
          for (int64_t i = 0; i < P; ++i) {
            const float a = dkh[i] + ckh[i];
            dkg[i] += (1.f - gh[i]) * a;
            dgh[i] += a * (hkh[i] - kg[i]);
            ckh[i] = gh[i] * a;
          }
        }
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) dg[d] = dg[d] * g[d] * (1.f - g[d]);
        for (int64_t j = 0; j < G; ++j)
          rope_rotate(dqr + n * GP + j * P, dq + j * P, cs, sn, half, -1.f);
      }
    }
  }
}

}  // namespace rat
