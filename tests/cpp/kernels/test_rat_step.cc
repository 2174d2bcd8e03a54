// RAT's per-token path (src/kernels/rat_step.h) against its chunked path (rat_scan.h): a
// sequence fed token by token through rat_step_head must leave exactly the running states
// (kt, vt) and the cache rows (each finished chunk's rotated kt and its vt) that
// rat_scan_forward computes for the same in_proj rows. Bit for bit: both paths run the one
// token update (rat_token_head: scan_update, rope_rotate) on the same vec_sigmoid gates, so
// any difference is a state bug (a reset one token off, a wrong angle row, a group mix-up),
// not rounding.
//
// The step's output z * o is checked against a float64 attention written here from SPEC.md
// ("rat": the query of chunk c, rotated by c, attends to the final states of chunks 0 .. c-1
// plus its own running state, scaled by 1/sqrt(P)) over the chunked outputs. float32 dot
// products of P terms and a softmax of <= C + 1 O(1) scores: 1e-5 absolute + 1e-5 relative;
// bf16 outputs add one rounding, 2^-8 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/rat_scan.h"
#include "kernels/rat_step.h"
#include "kernels/rope.h"

namespace rat {
namespace {

using Vec = std::vector<float>;
constexpr float kGarbage = 12345.f;

Vec randn(int64_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  Vec v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

bool same_bits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, size_t(n) * sizeof(float)) == 0;
}

float bf16_round(float x) {
  uint16_t h;
  to_bf16(&x, &h, 1);
  float y;
  from_bf16(&h, &y, 1);
  return y;
}

struct Case {
  int64_t B, T, L, P, H, G;
};
const Case kCases[] = {
    {2, 37, 8, 16, 4, 2},   // ragged last chunk, two sequences, two heads per group
    {1, 9, 1, 8, 2, 1},     // L = 1: every token ends its chunk
    {1, 11, 32, 12, 3, 3},  // one unfinished chunk, G = H, P / 2 not a vector width
    {2, 21, 4, 128, 2, 2},  // P 128: the unrolled attend
    {1, 40, 16, 64, 4, 1},  // P 64, every head reads one key group
};

void check_case(const Case& c, bool cache_bf16) {
  const int64_t B = c.B, T = c.T, L = c.L, P = c.P, H = c.H, G = c.G;
  const int64_t D = H * P, GP = G * P, W = 3 * D + 2 * GP, N = B * T, C = (T + L - 1) / L;
  // in_proj rows, pre-activation; gates spread wide so some channels keep and some forget.
  Vec proj0 = randn(N * W, 7);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 2 * D; d < 3 * D; ++d) proj0[size_t(n * W + d)] *= 2.f;
  const Vec bias = randn(D, 8, 0.5f);
  RopeTable rope;
  rope.build(P, C, 10000.0);

  // Chunked: z and g become their sigmoids in proj.
  Vec proj = proj0, vt(static_cast<size_t>(N * D)), kt(vt.size()), ktr(vt.size()),
      qr(static_cast<size_t>(N * GP));
  rat_scan_forward(RatScanShape{B, T, L, D, P, G, W}, bias.data(), rope, proj.data(), vt.data(),
                   kt.data(), ktr.data(), qr.data());

  // Stepped: sequence b in slot S - 1 - b of S = B + 1; states and cache start as garbage (a
  // first token must not read them, nor an attend a row not yet written).
  const int64_t S = B + 1;
  Vec run_k(static_cast<size_t>(S * D), kGarbage), run_v(run_k.size(), kGarbage);
  Vec k(static_cast<size_t>(H * S * C * P), kGarbage), v(k.size(), kGarbage);
  std::vector<uint16_t> k16(k.size(), 0x4640), v16(k.size(), 0x4640);  // bf16 12288
  const RatStepState st{
      D,           P,        G,        L,          S,          C,          bias.data(),
      &rope,       k.data(), v.data(), k16.data(), v16.data(), cache_bf16, run_k.data(),
      run_v.data()};
  Vec scratch(static_cast<size_t>(rat_step_scratch(C, P)), kGarbage), out(static_cast<size_t>(D));
  std::vector<uint16_t> out16(static_cast<size_t>(D));
  const double scale = 1.0 / std::sqrt(double(P));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = S - 1 - b;
    for (int64_t t = 0; t < T; ++t) {
      SCOPED_TRACE(::testing::Message() << "sequence " << b << ", token " << t);
      const int64_t n = b * T + t, ch = t / L;
      for (int64_t h = 0; h < H; ++h)
        rat_step_head(st, proj0.data() + n * W, h, s, t, scratch.data(),
                      cache_bf16 ? nullptr : out.data() + h * P, out16.data() + h * P);
      ASSERT_TRUE(same_bits(run_k.data() + s * D, kt.data() + n * D, D)) << "running kt";
      ASSERT_TRUE(same_bits(run_v.data() + s * D, vt.data() + n * D, D)) << "running vt";
      for (int64_t h = 0; h < H; ++h) {
        // The cache: rows of finished chunks, each the chunk's last token.
        for (int64_t cc = 0; cc <= ch && cc < C; ++cc) {
          const int64_t last = cc * L + L - 1;
          if (last > t) break;
          const int64_t at = ((h * S + s) * C + cc) * P, m = (b * T + last) * D + h * P;
          if (cache_bf16) {
            std::vector<uint16_t> wk(static_cast<size_t>(P)), wv(static_cast<size_t>(P));
            to_bf16(ktr.data() + m, wk.data(), P);
            to_bf16(vt.data() + m, wv.data(), P);
            ASSERT_EQ(std::memcmp(k16.data() + at, wk.data(), size_t(P) * 2), 0) << "k row " << cc;
            ASSERT_EQ(std::memcmp(v16.data() + at, wv.data(), size_t(P) * 2), 0) << "v row " << cc;
          } else {
            ASSERT_TRUE(same_bits(k.data() + at, ktr.data() + m, P)) << "k row " << cc;
            ASSERT_TRUE(same_bits(v.data() + at, vt.data() + m, P)) << "v row " << cc;
          }
        }
        // z * o in float64 from the chunked outputs.
        const float* q = qr.data() + n * GP + (h % G) * P;
        std::vector<double> sc(static_cast<size_t>(ch + 1));
        std::vector<const float*> keys(static_cast<size_t>(ch + 1)),
            vals(static_cast<size_t>(ch + 1));
        for (int64_t j = 0; j < ch; ++j) {
          const int64_t m = (b * T + j * L + L - 1) * D + h * P;
          keys[size_t(j)] = ktr.data() + m, vals[size_t(j)] = vt.data() + m;
        }
        keys[size_t(ch)] = ktr.data() + n * D + h * P, vals[size_t(ch)] = vt.data() + n * D + h * P;
        auto cached = [&](const float* x, int64_t j, int64_t i) {  // a cached row's element
          return double(cache_bf16 && j < ch ? bf16_round(x[i]) : x[i]);
        };
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j <= ch; ++j) {
          double d = 0;
          for (int64_t i = 0; i < P; ++i) d += double(q[i]) * cached(keys[size_t(j)], j, i);
          sc[size_t(j)] = d * scale, mx = std::max(mx, sc[size_t(j)]);
        }
        for (double& x : sc) sum += (x = std::exp(x - mx));
        for (int64_t i = 0; i < P; ++i) {
          double o = 0;
          for (int64_t j = 0; j <= ch; ++j)
            o += sc[size_t(j)] / sum * cached(vals[size_t(j)], j, i);
          const double want = double(proj[size_t(n * W + h * P + i)]) * o;  // z * o
          float got = out[size_t(h * P + i)];
          double tol = 1e-5 + 1e-5 * std::fabs(want);
          if (cache_bf16) {
            from_bf16(out16.data() + h * P + i, &got, 1);
            tol += std::fabs(want) / 256;
          }
          ASSERT_LE(std::fabs(double(got) - want), tol) << "z * o, head " << h << ", lane " << i;
        }
      }
    }
  }
}

TEST(RatStep, TokenByTokenEqualsChunkedScan) {
  for (const Case& c : kCases)
    for (bool bf16 : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << "B " << c.B << " T " << c.T << " L " << c.L << " P " << c.P << " H " << c.H
                   << " G " << c.G << (bf16 ? " bf16 cache" : " f32 cache"));
      check_case(c, bf16);
    }
}

}  // namespace
}  // namespace rat
