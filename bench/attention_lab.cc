// Lab for the tiled attention kernels (src/kernels/attention.cc, rat_attention.cc).
// 1. Validates forward (o, lse) and backward (dq, dk, dv) of both kernels against their double
//    references on small shapes; exits 1 on a mismatch.
// 2. Measures the oneDNN GEMM rate (gemm(), f32, 2048^3) and the single-threaded sgemm rate on
//    attention-sized tiles run by every thread at once (the ceiling the kernels work under).
// 3. Times forward and forward+backward (median of --reps runs after one warm-up) at the
//    bench shape D 1024, P 64 (H 16), B 1, for several T and tile sizes.
//
// FLOP convention: causal attention forward 4*B*H*P*T^2/2 (Q K^T and P V over the causal
// half; exact visible pairs for a window), RAT forward 4*B*H*P*sum_t chunk(t) (~T*C/2 pairs,
// the own-state term ignored); backward counted as 2.5x forward.
//
// Usage: attention_lab [--reps N] [--attn-T 4096,16384] [--rat-T 4096,16384,65536]
//                      [--sweep-T 4096] [--no-sweep] [--cputime]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/rat_attention.h"

using namespace rat;

namespace {

std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

double max_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

double max_abs(const float* a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i])));
  return m;
}

// --cputime: process CPU time instead of wall time. With OMP_NUM_THREADS=1 this is the time
// the one worker actually ran, so other jobs on the shared cores do not inflate it (they
// still share caches); meaningless with more threads (spinning threads count).
bool g_cputime = false;

double now_ms() {
  if (!g_cputime)
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double median_ms(int reps, const std::function<void()>& f) {
  f();  // warm-up (scratch growth, oneDNN JIT)
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    double t0 = now_ms();
    f();
    ms.push_back(now_ms() - t0);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stoll(item));
  return v;
}

bool report(const char* what, double err, double scale, double tol) {
  bool ok = err <= tol * std::max(1.0, scale);
  std::printf("  %-34s max|diff| %.2e (max|ref| %.2e)  %s\n", what, err, scale, ok ? "ok" : "FAIL");
  return ok;
}

// ---- validation ------------------------------------------------------------------------

bool validate_attention(int64_t T, int64_t window) {
  const int64_t B = 1, H = 2, P = 64, D = H * P;
  AttnShape s{B, T, H, P, window, 3 * D, 3 * D, 3 * D, D};
  auto qkv = random_vec(size_t(B * T * 3 * D), 1), dout = random_vec(size_t(B * T * D), 2);
  const float *v = qkv.data(), *q = v + D, *k = v + 2 * D;
  std::vector<float> o(size_t(B * T * D)), lse(size_t(B * H * T)), o_ref(o.size()),
      lse_ref(lse.size());
  std::vector<float> g(qkv.size()), g_ref(qkv.size());
  attention_forward(s, q, k, v, o.data(), lse.data());
  attention_forward_naive(s, q, k, v, o_ref.data(), lse_ref.data());
  attention_backward(s, q, k, v, o.data(), lse.data(), dout.data(), g.data() + D, g.data() + 2 * D,
                     g.data());
  attention_backward_naive(s, q, k, v, dout.data(), g_ref.data() + D, g_ref.data() + 2 * D,
                           g_ref.data());
  std::printf("attention T %ld window %ld:\n", long(T), long(window));
  bool ok = report("o", max_diff(o.data(), o_ref.data(), o.size()), max_abs(o_ref.data(), o.size()),
                   1e-5);
  ok &= report("lse", max_diff(lse.data(), lse_ref.data(), lse.size()), 1.0, 1e-5);
  ok &= report("dq dk dv", max_diff(g.data(), g_ref.data(), g.size()),
               max_abs(g_ref.data(), g.size()), 2e-5);
  return ok;
}

bool validate_rat(int64_t T, int64_t L, int64_t G) {
  const int64_t B = 1, H = 4, P = 64, D = H * P;
  RatAttnShape s{B, T, H, P, L, G, G * P, D, D};
  auto q = random_vec(size_t(B * T * G * P), 3), kt = random_vec(size_t(B * T * D), 4),
       vt = random_vec(size_t(B * T * D), 5), dout = random_vec(size_t(B * T * D), 6);
  std::vector<float> o(size_t(B * T * D)), lse(size_t(B * H * T)), o_ref(o.size()),
      lse_ref(lse.size());
  std::vector<float> dq(q.size()), dk(kt.size()), dv(vt.size()), dq_r(q.size()), dk_r(kt.size()),
      dv_r(vt.size());
  rat_attention_forward(s, q.data(), kt.data(), vt.data(), o.data(), lse.data());
  rat_attention_forward_naive(s, q.data(), kt.data(), vt.data(), o_ref.data(), lse_ref.data());
  rat_attention_backward(s, q.data(), kt.data(), vt.data(), o.data(), lse.data(), dout.data(),
                         dq.data(), dk.data(), dv.data());
  rat_attention_backward_naive(s, q.data(), kt.data(), vt.data(), dout.data(), dq_r.data(),
                               dk_r.data(), dv_r.data());
  std::printf("rat T %ld L %ld G %ld:\n", long(T), long(L), long(G));
  bool ok = report("o", max_diff(o.data(), o_ref.data(), o.size()), max_abs(o_ref.data(), o.size()),
                   1e-5);
  ok &= report("lse", max_diff(lse.data(), lse_ref.data(), lse.size()), 1.0, 1e-5);
  ok &= report("dq", max_diff(dq.data(), dq_r.data(), dq.size()), max_abs(dq_r.data(), dq.size()),
               2e-5);
  ok &= report("dkt", max_diff(dk.data(), dk_r.data(), dk.size()), max_abs(dk_r.data(), dk.size()),
               2e-5);
  ok &= report("dvt", max_diff(dv.data(), dv_r.data(), dv.size()), max_abs(dv_r.data(), dv.size()),
               2e-5);
  return ok;
}

// ---- GEMM ceilings -----------------------------------------------------------------------

double gemm_rate(int reps) {
  const int64_t n = 2048;
  auto a = random_vec(size_t(n * n), 7), b = random_vec(size_t(n * n), 8);
  std::vector<float> c(size_t(n * n));
  double ms = median_ms(reps, [&] { gemm({n, n, n}, a.data(), b.data(), c.data(), 0.f); });
  return 2.0 * n * n * n / (ms * 1e6);
}

// Every thread multiplies its own tiles with gemm_small: S = Q K^T [bq x bk x P] then
// O += S V [bq x P x bk], as the forward kernel does, on strided operands.
double tile_rate(int64_t bq, int64_t bk, int reps) {
  const int64_t P = 64, ld = 3072, rows = 4096, iters = 200;
  auto x = random_vec(size_t(rows * ld), 9);
  const int nth = omp_get_max_threads();
  std::vector<std::vector<float>> S(size_t(nth), std::vector<float>(size_t(bq * bk))),
      O(size_t(nth), std::vector<float>(size_t(bq * P)));
  double ms = median_ms(reps, [&] {
#pragma omp parallel
    {
      const int id = omp_get_thread_num();
      for (int64_t it = 0; it < iters; ++it) {
        const int64_t r0 = ((it * 7 + id * 131) * bq) % (rows - bk);
        gemm_small({bq, bk, P, false, true, ld, ld, bk}, x.data() + r0 * ld,
                   x.data() + r0 * ld + 1024, S[size_t(id)].data(), 0.f);
        gemm_small({bq, P, bk, false, false, bk, ld, P}, S[size_t(id)].data(),
                   x.data() + r0 * ld + 2048, O[size_t(id)].data(), 1.f);
      }
    }
  });
  return double(nth) * iters * 4.0 * bq * bk * P / (ms * 1e6);
}

// ---- timing ------------------------------------------------------------------------------

struct Timing {
  double fwd_ms, train_ms, fwd_gf, train_gf;
};

// packed_heads: lay q, k, v out head-major (16 sequences of one head, row stride P) instead of
// the model's [T, 3D] in_proj rows, to show what the 12 KB row stride costs.
Timing time_attention(int64_t T, int64_t window, int64_t bq, int64_t bk, int reps,
                      bool packed_heads = false) {
  const int64_t P = 64, B = packed_heads ? 16 : 1, H = packed_heads ? 1 : 16, D = H * P;
  AttnShape s{B, T, H, P, window, 3 * D, 3 * D, 3 * D, D, bq, bk};
  auto qkv = random_vec(size_t(B * T * 3 * D), 11, 0.5f), dout = random_vec(size_t(B * T * D), 12);
  std::vector<float> o(size_t(B * T * D)), lse(size_t(B * H * T)), g(qkv.size());
  const float *v = qkv.data(), *q = v + D, *k = v + 2 * D;
  double pairs = 0;
  for (int64_t t = 0; t < T; ++t)
    pairs += window < 0 ? double(t + 1) : double(std::min(t, window) + 1);
  if (window < 0) pairs = double(T) * T / 2;  // the convention
  const double fwd_flop = 4.0 * B * H * P * pairs;
  Timing r;
  r.fwd_ms = median_ms(reps, [&] { attention_forward(s, q, k, v, o.data(), lse.data()); });
  r.train_ms = median_ms(reps, [&] {
    attention_forward(s, q, k, v, o.data(), lse.data());
    attention_backward(s, q, k, v, o.data(), lse.data(), dout.data(), g.data() + D,
                       g.data() + 2 * D, g.data());
  });
  r.fwd_gf = fwd_flop / (r.fwd_ms * 1e6);
  r.train_gf = 3.5 * fwd_flop / (r.train_ms * 1e6);
  return r;
}

Timing time_rat(int64_t T, int64_t L, int64_t G, int64_t bq, int64_t bk, int reps) {
  const int64_t B = 1, H = 16, P = 64, D = H * P;
  // q is a slice of the in_proj output [z v g q k] (ld 3D + 2GP); kt, vt come from the scan.
  const int64_t ldq = 3 * D + 2 * G * P;
  RatAttnShape s{B, T, H, P, L, G, ldq, D, D, bq, bk};
  auto u = random_vec(size_t(B * T * ldq), 13, 0.5f), kt = random_vec(size_t(B * T * D), 14, 0.5f),
       vt = random_vec(size_t(B * T * D), 15), dout = random_vec(size_t(B * T * D), 16);
  const float* q = u.data() + 3 * D;
  std::vector<float> o(size_t(B * T * D)), lse(size_t(B * H * T)), du(u.size()), dk(kt.size()),
      dv(vt.size());
  double pairs = 0;
  for (int64_t t = 0; t < T; ++t) pairs += double(t / L);
  const double fwd_flop = 4.0 * B * H * P * pairs;
  Timing r;
  r.fwd_ms = median_ms(
      reps, [&] { rat_attention_forward(s, q, kt.data(), vt.data(), o.data(), lse.data()); });
  r.train_ms = median_ms(reps, [&] {
    rat_attention_forward(s, q, kt.data(), vt.data(), o.data(), lse.data());
    rat_attention_backward(s, q, kt.data(), vt.data(), o.data(), lse.data(), dout.data(),
                           du.data() + 3 * D, dk.data(), dv.data());
  });
  r.fwd_gf = fwd_flop / (r.fwd_ms * 1e6);
  r.train_gf = 3.5 * fwd_flop / (r.train_ms * 1e6);
  return r;
}

void print_row(const char* what, int64_t T, int64_t a, int64_t bq, int64_t bk, const Timing& t,
               double ref) {
  std::printf(
      "%-10s T %6ld %4ld  bq %3ld bk %3ld | fwd %9.2f ms %6.1f GF/s %4.0f%% | fwd+bwd %9.2f ms "
      "%6.1f GF/s %4.0f%%\n",
      what, long(T), long(a), long(bq), long(bk), t.fwd_ms, t.fwd_gf, 100 * t.fwd_gf / ref,
      t.train_ms, t.train_gf, 100 * t.train_gf / ref);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  std::vector<int64_t> attn_T = {4096, 16384}, rat_T = {4096, 16384, 65536}, sweep_T = {4096};
  bool sweep = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] {
      return i + 1 < argc
                 ? argv[++i]
                 : (std::fprintf(stderr, "%s needs a value\n", a.c_str()), std::exit(2), "");
    };
    if (a == "--reps")
      reps = std::atoi(next());
    else if (a == "--attn-T")
      attn_T = parse_list(next());
    else if (a == "--rat-T")
      rat_T = parse_list(next());
    else if (a == "--sweep-T")
      sweep_T = parse_list(next());
    else if (a == "--no-sweep")
      sweep = false;
    else if (a == "--cputime")
      g_cputime = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  std::printf(
      "threads %d, reps %d (median of %s time)\n\n== validation (tiled vs double reference) ==\n",
      omp_get_max_threads(), reps, g_cputime ? "process CPU" : "wall");
  bool ok = validate_attention(300, -1) && validate_attention(300, 37) &&
            validate_rat(300, 16, 2) && validate_rat(301, 4, 1);
  if (!ok) {
    std::printf("VALIDATION FAILED\n");
    return 1;
  }

  const double ref = gemm_rate(reps);
  std::printf("\n== GEMM ceilings ==\noneDNN gemm f32 2048^3 (all threads): %.1f GFLOP/s\n", ref);
  for (auto [bq, bk] : {std::pair<int64_t, int64_t>{128, 128}, {128, 256}, {256, 256}})
    std::printf(
        "gemm_small tiles QK^T+PV bq %ld bk %ld P 64 (per-thread, all threads): %.1f GFLOP/s\n",
        long(bq), long(bk), tile_rate(bq, bk, reps));
  std::printf("(percentages below are of the 2048^3 gemm rate)\n");

  if (sweep) {
    std::printf("\n== tile sweep (attention full causal, RAT L16 G2) ==\n");
    for (int64_t T : sweep_T) {
      for (auto [bq, bk] :
           {std::pair<int64_t, int64_t>{64, 128}, {128, 128}, {128, 256}, {256, 256}, {128, 512}})
        print_row("attention", T, -1, bq, bk, time_attention(T, -1, bq, bk, reps), ref);
      for (auto [bq, bk] :
           {std::pair<int64_t, int64_t>{128, 128}, {256, 128}, {128, 256}, {256, 256}, {512, 256}})
        print_row("rat L16", 4 * T, 16, bq, bk, time_rat(4 * T, 16, 2, bq, bk, reps), ref);
    }
  }

  std::printf("\n== default tiles (bq/bk 0 = kernel defaults) ==\n");
  std::printf("(attention: 3rd column is the window, -1 full; rat: the chunk size L, G 2)\n");
  for (int64_t T : attn_T)
    print_row("attention", T, -1, 0, 0, time_attention(T, -1, 0, 0, reps), ref);
  print_row("attn-hmaj", attn_T[0], -1, 0, 0, time_attention(attn_T[0], -1, 0, 0, reps, true), ref);
  for (int64_t T : attn_T)
    print_row("local", T, 1024, 0, 0, time_attention(T, 1024, 0, 0, reps), ref);
  for (int64_t T : rat_T) print_row("rat", T, 16, 0, 0, time_rat(T, 16, 2, 0, 0, reps), ref);
  return 0;
}
