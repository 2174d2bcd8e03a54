// Lab for the decode attend (src/kernels/decode_attention.h), the memory-bound
// part of a decode step: every (sequence, head) query against its cached rows,
// at the shape (B 64, D 2048 = 16 heads of P 128, RAT L 16 at
// position 4096: 256 cached rows; --rows 4096 for attention). Checks the
// unrolled kernel against the generic one (max |diff| printed; exits 1 above
// 1e-5 relative), then times both, and a plain read of the same bytes, on 1
// and on all threads (median wall time of --reps).
//   ./build/decode_lab [--rows 256] [--P 128] [--reps 9] [--f32]
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/decode_attention.h"
#include "kernels/gemm.h"
#include "util/timer.h"

using namespace rat;

namespace {

template <class KV>
struct Lab {
  int64_t S = 64, H = 16, P = 128, C = 256;
  std::vector<KV> k, v;
  std::vector<float> q, ke, ve, out;
  Lab(int64_t P_, int64_t C_) : P(P_), C(C_) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> tmp(size_t(S * H * C * P));
    for (auto* dst : {&k, &v}) {
      for (float& f : tmp) f = nd(rng);
      dst->resize(tmp.size());
      if constexpr (sizeof(KV) == 2)
        to_bf16(tmp.data(), reinterpret_cast<uint16_t*>(dst->data()), int64_t(tmp.size()));
      else
        std::memcpy(dst->data(), tmp.data(), tmp.size() * sizeof(float));
    }
    for (auto* x : {&q, &ke, &ve}) {
      x->resize(size_t(S * H * P));
      for (float& f : *x) f = nd(rng);
    }
    out.resize(size_t(S * H * P));
  }
  double bytes() const { return 2.0 * double(k.size()) * sizeof(KV); }
  template <bool kGeneric>
  void run(int threads) {
    const float scale = 1.f / std::sqrt(float(P));
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> sc(size_t(C + 1));
#pragma omp for schedule(static)
      for (int64_t b = 0; b < S * H; ++b) {
        const KV* kb = k.data() + b * C * P;
        const KV* vb = v.data() + b * C * P;
        const float* qb = q.data() + b * P;
        if (kGeneric)
          decode_attend_generic(qb, kb, vb, C, ke.data() + b * P, ve.data() + b * P, P, scale,
                                sc.data(), out.data() + b * P);
        else
          decode_attend(qb, kb, vb, C, ke.data() + b * P, ve.data() + b * P, P, scale, sc.data(),
                        out.data() + b * P);
      }
    }
  }
  float read(int threads) {
    const int64_t n = int64_t(k.size() * sizeof(KV) / sizeof(float));
    const float* a[2] = {reinterpret_cast<const float*>(k.data()),
                         reinterpret_cast<const float*>(v.data())};
    float s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
    {
      __m512 acc[8];
      for (auto& x : acc) x = _mm512_setzero_ps();
      for (const float* p : a) {
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n; i += 128)
          for (int t = 0; t < 8; ++t)
            acc[t] = _mm512_add_ps(acc[t], _mm512_loadu_ps(p + i + 16 * t));
      }
      for (int t = 1; t < 8; ++t) acc[0] = _mm512_add_ps(acc[0], acc[t]);
      s += avx512::hsum16(acc[0]);
    }
    return s;
  }
};

template <class KV>
int lab(int64_t P, int64_t C, int reps) {
  Lab<KV> L(P, C);
  L.template run<true>(1);
  std::vector<float> ref = L.out;
  L.template run<false>(1);
  double e = 0, m = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    e = std::max(e, double(std::fabs(ref[i] - L.out[i])));
    m = std::max(m, double(std::fabs(ref[i])));
  }
  std::printf(
      "%s cache, S %lld x H %lld, %lld rows of P %lld: %.1f MB; unrolled vs generic max|diff| %.2e "
      "(max|o| %.2f)\n",
      sizeof(KV) == 2 ? "bf16" : "f32", (long long)L.S, (long long)L.H, (long long)C, (long long)P,
      L.bytes() / 1e6, e, m);
  if (e > 1e-5 * m) return 1;
  volatile float sink = 0;
  for (int th : {1, omp_get_max_threads()}) {
    const double tr = median_seconds([&] { sink = sink + L.read(th); }, 1, reps);
    const double tg = median_seconds([&] { L.template run<true>(th); }, 1, reps);
    const double tu = median_seconds([&] { L.template run<false>(th); }, 1, reps);
    std::printf(
        "  %d thread(s): read %.3f ms (%.1f GB/s)  generic %.3f ms (%.1f GB/s)  unrolled %.3f ms "
        "(%.1f GB/s)\n",
        th, tr * 1e3, L.bytes() / tr / 1e9, tg * 1e3, L.bytes() / tg / 1e9, tu * 1e3,
        L.bytes() / tu / 1e9);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t P = 128, C = 256;
  int reps = 9;
  bool f32 = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rows" && i + 1 < argc)
      C = std::stoll(argv[++i]);
    else if (a == "--P" && i + 1 < argc)
      P = std::stoll(argv[++i]);
    else if (a == "--reps" && i + 1 < argc)
      reps = std::stoi(argv[++i]);
    else if (a == "--f32")
      f32 = true;
    else {
      std::fprintf(stderr, "usage: decode_lab [--rows N] [--P N] [--reps N] [--f32]\n");
      return 2;
    }
  }
  return f32 ? lab<float>(P, C, reps) : lab<uint16_t>(P, C, reps);
}
