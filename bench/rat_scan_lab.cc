// Lab for RAT's fused token-wise stage (src/kernels/rat_scan.cc): times it against the unfused
// sequence it replaced (scalar sigmoids, the v scan, one strided scan per head of k, a copy and
// rope_apply for kt and for q; backward: two inverse ropes, zeroing, the v scan and per-head k
// scans, the H/G fold and the gate derivative) at the bench shape D 1024, P 64, L 16, B 1.
// First checks that both give the same results (max |diff| printed; exits 1 above 1e-4).
//
// Timing: process CPU time, minimum over --reps runs after a warm-up. Run it with
// OMP_NUM_THREADS=1 on a shared machine: CPU time then counts only this process's work.
//   OMP_NUM_THREADS=1 ./build/rat_scan_lab [--reps N] [--T 4096,32768] [--G 1]
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/activations.h"
#include "kernels/rat_scan.h"
#include "kernels/rope.h"
#include "kernels/scan.h"

using namespace rat;

namespace {

double cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return 1e3 * double(t.tv_sec) + 1e-6 * double(t.tv_nsec);
}

double min_ms(int reps, const std::function<void()>& f) {
  f();
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const double t0 = cpu_ms();
    f();
    best = std::min(best, cpu_ms() - t0);
  }
  return best;
}

struct Problem {
  int64_t B = 1, T, L = 16, D = 1024, P = 64, G, GP, H, W, N, C;
  std::vector<float> proj0, proj, vt, kt, ktr, qr, dproj, dvt, dktr, dqr, bias;
  std::vector<float> dktile, dg, dq, dkt;  // unfused backward only
  RopeTable rope;
  Problem(int64_t T_, int64_t G_) : T(T_), G(G_) {
    GP = G * P, H = D / P, W = 3 * D + 2 * GP, N = B * T, C = (T + L - 1) / L;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    proj0.resize(size_t(N * W));
    for (float& x : proj0) x = nd(rng);
    bias.resize(size_t(D));
    for (float& x : bias) x = nd(rng);
    proj = proj0;
    vt.resize(size_t(N * D)), kt = vt, ktr = vt, qr.resize(size_t(N * GP));
    dvt.resize(size_t(N * D)), dktr = dvt, dqr.resize(size_t(N * GP));
    for (auto* v : {&dvt, &dktr, &dqr})
      for (float& x : *v) x = nd(rng);
    dproj.assign(size_t(N * W), 0.f), dktile.resize(size_t(N * D)), dg.resize(size_t(N * D));
    dq = dqr, dkt = dktr;
    rope.build(P, C, 10000.0);
  }
  void fused_forward() {
    std::copy(proj0.begin(), proj0.end(), proj.begin());
    rat_scan_forward({B, T, L, D, P, G, W}, bias.data(), rope, proj.data(), vt.data(), kt.data(),
                     ktr.data(), qr.data());
  }
  // What mixer_rat.cc ran before the fused kernel (sigmoid_inplace was scalar then).
  void unfused_forward() {
    std::copy(proj0.begin(), proj0.end(), proj.begin());
    float *z = proj.data(), *v = z + D, *g = z + 2 * D, *q = z + 3 * D, *k = q + GP;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t d = 0; d < D; ++d) z[n * W + d] = sigmoidf(z[n * W + d]);
      for (int64_t d = 0; d < D; ++d) g[n * W + d] = sigmoidf(g[n * W + d] + bias[size_t(d)]);
    }
    chunk_scan_forward(g, W, v, W, vt.data(), D, B, T, L, D);
    for (int64_t h = 0; h < H; ++h)
      chunk_scan_forward(g + h * P, W, k + (h % G) * P, W, kt.data() + h * P, D, B, T, L, P);
    std::memcpy(ktr.data(), kt.data(), sizeof(float) * size_t(N * D));
    rope_apply(rope, ktr.data(), B, T, 0, H, D, L, +1);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      std::memcpy(qr.data() + n * GP, q + n * W, sizeof(float) * size_t(GP));
    rope_apply(rope, qr.data(), B, T, 0, G, GP, L, +1);
  }
  void fused_backward() {
    rat_scan_backward({B, T, L, D, P, G, W}, rope, proj.data(), vt.data(), kt.data(), dvt.data(),
                      dktr.data(), dqr.data(), dproj.data());
  }
  void unfused_backward() {
    const float *v = proj.data() + D, *g = v + D, *k = g + D + GP;
    // dq, dkt: the attention's output buffers, rotated in place as the mixer did. Repeated
    // timing runs rotate them again; harmless (orthogonal), and only the first run is checked.
    rope_apply(rope, dq.data(), B, T, 0, G, GP, L, -1);
    rope_apply(rope, dkt.data(), B, T, 0, H, D, L, -1);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      std::memcpy(dproj.data() + n * W + 3 * D, dq.data() + n * GP, sizeof(float) * size_t(GP));
      std::memset(dg.data() + n * D, 0, sizeof(float) * size_t(D));
    }
    chunk_scan_backward(g, W, v, W, vt.data(), dvt.data(), D, dproj.data() + D, W, dg.data(), D, B,
                        T, L, D);
    for (int64_t h = 0; h < H; ++h)
      chunk_scan_backward(g + h * P, W, k + (h % G) * P, W, kt.data() + h * P, dkt.data() + h * P,
                          D, dktile.data() + h * P, D, dg.data() + h * P, D, B, T, L, P);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      float* dk = dproj.data() + n * W + 3 * D + GP;
      std::memcpy(dk, dktile.data() + n * D, sizeof(float) * size_t(GP));
      for (int64_t r = 1; r < H / G; ++r)
        for (int64_t j = 0; j < GP; ++j) dk[j] += dktile[size_t(n * D + r * GP + j)];
      for (int64_t d = 0; d < D; ++d) {
        const float gg = g[n * W + d];
        dproj[size_t(n * W + 2 * D + d)] = dg[size_t(n * D + d)] * gg * (1.f - gg);
      }
    }
  }
};

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stoll(item));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5;
  int64_t G = 1;
  std::vector<int64_t> Ts = {4096, 32768};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc)
      reps = std::stoi(argv[++i]);
    else if (a == "--T" && i + 1 < argc)
      Ts = parse_list(argv[++i]);
    else if (a == "--G" && i + 1 < argc)
      G = std::stoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: rat_scan_lab [--reps N] [--T 4096,32768] [--G 1]\n");
      return 2;
    }
  }
  std::printf("threads %d, D 1024, P 64, L 16, B 1, G %ld; CPU ms, min of %d\n",
              omp_get_max_threads(), long(G), reps);
  bool ok = true;
  for (int64_t T : Ts) {
    Problem p(T, G);
    p.unfused_forward();
    const std::vector<float> proj_u = p.proj, vt_u = p.vt, kt_u = p.kt, ktr_u = p.ktr, qr_u = p.qr;
    p.unfused_backward();
    const std::vector<float> dproj_u = p.dproj;
    p.fused_forward();
    p.dproj.assign(p.dproj.size(), 0.f);
    p.fused_backward();
    const double diff =
        std::max({max_diff(p.proj, proj_u), max_diff(p.vt, vt_u), max_diff(p.kt, kt_u),
                  max_diff(p.ktr, ktr_u), max_diff(p.qr, qr_u), max_diff(p.dproj, dproj_u)});
    ok = ok && diff <= 1e-4;
    const double uf = min_ms(reps, [&] { p.unfused_forward(); });
    const double ff = min_ms(reps, [&] { p.fused_forward(); });
    const double ub = min_ms(reps, [&] { p.unfused_backward(); });
    const double fb = min_ms(reps, [&] { p.fused_backward(); });
    std::printf(
        "T %6ld | forward unfused %8.1f fused %8.1f (%.2fx) | backward unfused %8.1f "
        "fused %8.1f (%.2fx) | max|diff| %.1e\n",
        long(T), uf, ff, uf / ff, ub, fb, ub / fb, diff);
  }
  return ok ? 0 : 1;
}
