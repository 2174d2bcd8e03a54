#include "kernels/rat_scan.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/vec_math.h"
#include "util/error.h"

namespace rat {

namespace {

// Rotate-half by one angle table row (cos c, sin sn; sign +1 forward, -1 inverse), as
// rope_apply computes it, for one head of width P: src and dst may alias.
inline void rotate_head(const float* src, float* dst, const float* c, const float* sn,
                        int64_t half, float sign) {
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    const float a = src[i], b = src[i + half];
    dst[i] = a * c[i] - sign * b * sn[i];
    dst[i + half] = b * c[i] + sign * a * sn[i];
  }
}

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
      const float* cs = rope.cos.data() + c * half;  // interrope: the chunk index
      const float* sn = rope.sin.data() + c * half;
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
        float* vr = vt + n * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) {
          sv[d] = g[d] * sv[d] + (1.f - g[d]) * v[d];
          vr[d] = sv[d];
        }
        for (int64_t h = 0; h < H; ++h) {
          const float* gh = g + h * P;
          const float* kg = k + (h % G) * P;
          float* skh = sk + h * P;
          float* kr = kt + n * D + h * P;
#pragma omp simd
          for (int64_t i = 0; i < P; ++i) {
            skh[i] = gh[i] * skh[i] + (1.f - gh[i]) * kg[i];
            kr[i] = skh[i];
          }
          rotate_head(skh, ktr + n * D + h * P, cs, sn, half, 1.f);
        }
        for (int64_t j = 0; j < G; ++j) rotate_head(q + j * P, qr + n * GP + j * P, cs, sn, half, 1.f);
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
      const float* cs = rope.cos.data() + c * half;
      const float* sn = rope.sin.data() + c * half;
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
          rotate_head(dktr + n * D + h * P, dkh, cs, sn, half, -1.f);
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
          rotate_head(dqr + n * GP + j * P, dq + j * P, cs, sn, half, -1.f);
      }
    }
  }
}

}  // namespace rat
