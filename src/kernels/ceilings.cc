#include "kernels/ceilings.h"

#include <omp.h>

#include <algorithm>
#include <random>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/isa_kernels.h"
#include "util/timer.h"

namespace rat {

// GFLOP/s of an n^3 GEMM in the given precision (the fastest of the repeats).
// For bf16 the B operand is rounded once beforehand (as frozen weights are in
// inference, Bf16WeightCache): the ceiling is the product's, not the per-call
// rounding's.
double measure_gemm_rate(int64_t n, Precision p, int repeats) {
  repeats = std::max(repeats, 1);
  std::vector<float> A(size_t(n * n)), B(size_t(n * n)), C(size_t(n * n));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& x : A) x = u(rng);
  for (auto& x : B) x = u(rng);
  std::vector<uint16_t> b16(B.size());
  to_bf16(B.data(), b16.data(), n * n);
  auto run = [&] {
    if (p == Precision::kBF16)
      gemm_bf16_weights({n, n, n}, A.data(), b16.data(), C.data(), 0.f);
    else
      gemm({n, n, n}, A.data(), B.data(), C.data(), 0.f, p);
  };
  run();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    double t0 = now_seconds();
    run();
    t.push_back(now_seconds() - t0);
  }
  // The fastest run: a ceiling, and on a shared host noise only slows runs
  // down (a median once came out at half the rate when a core was stolen).
  return 2.0 * double(n) * double(n) * double(n) / *std::min_element(t.begin(), t.end()) / 1e9;
}

// GB/s reading a buffer far larger than the caches, all threads, through the
// instruction set's read_sum (kernels/isa_*.cc): eight independent
// accumulators per thread, as a plain `s += a[i]` loop is not vectorised
// under strict FP and measures the adder's latency (about a quarter of the
// real bandwidth), which would make every bound too easy.
double measure_read_bandwidth(int64_t bytes, int repeats) {
  repeats = std::max(repeats, 1);
  int64_t n = bytes / int64_t(sizeof(float));
  n -= n % 128;
  // Distinct values on every page: a buffer of one repeated value could be
  // merged by the hypervisor into one physical page (KSM) and read from cache.
  std::vector<float> a(static_cast<size_t>(n));
  uint32_t x = 2463534242u;
  for (float& f : a) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;  // xorshift32
    f = float(x >> 8) * 0x1p-24f;
  }
  std::vector<double> t;
  volatile float sink = 0;
  const float* p = a.data();
  const auto read = isa_kernels().read_sum;
  for (int r = 0; r < repeats + 1; ++r) {
    double t0 = now_seconds();
    float s = 0;
#pragma omp parallel reduction(+ : s)
    {
      // One contiguous share per thread (n % 128 == 0, and so is each share).
      const int64_t blocks = n / 128, nt = omp_get_num_threads(), me = omp_get_thread_num();
      const int64_t b0 = blocks * me / nt, b1 = blocks * (me + 1) / nt;
      s += read((p + 128 * b0), 128 * (b1 - b0));
    }
    sink = sink + s;
    if (r > 0) t.push_back(now_seconds() - t0);
  }
  return double(n) * sizeof(float) / *std::min_element(t.begin(), t.end()) /
         1e9;  // fastest, as above
}

}  // namespace rat
