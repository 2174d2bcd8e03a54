// Sums whose bits do not depend on the thread count. An OpenMP reduction, or
// per-thread partial sums added at the end, groups the terms by thread, so
// another OMP_NUM_THREADS rounds differently and a training run drifts apart.
// Here the terms are cut into blocks of a fixed size; each block is summed in
// order by whichever thread takes it, and the block sums are added in block
// order: the same additions on 1 thread or 64.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace rat {

inline constexpr int64_t kSumRowBlock = 64;  // rows per partial of a column sum

// out[j] += sum over rows n < N of the terms add_row(n, acc) adds into
// acc[j], j < width. add_row may also write per-row outputs (dx). Call from
// outside parallel regions.
template <class AddRow>
void column_sums_fixed(int64_t N, int64_t width, float* out, const AddRow& add_row) {
  const int64_t nb = (N + kSumRowBlock - 1) / kSumRowBlock;
  // Grown once and reused; thread_local names the caller's copy, so take the
  // pointer here (each worker's own copy would be empty).
  thread_local std::vector<float> partial;
  partial.assign(size_t(nb * width), 0.f);
  float* const part = partial.data();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    float* acc = part + b * width;
    const int64_t end = std::min(N, (b + 1) * kSumRowBlock);
    for (int64_t n = b * kSumRowBlock; n < end; ++n) add_row(n, acc);
  }
#pragma omp parallel for schedule(static) if (nb * width >= 65536)
  for (int64_t j = 0; j < width; ++j) {
    float s = 0.f;
    for (int64_t b = 0; b < nb; ++b) s += part[b * width + j];
    out[j] += s;
  }
}

// sum over i < n of term(i) in double, by blocks of 4096 terms.
template <class Term>
double sum_fixed(int64_t n, const Term& term) {
  constexpr int64_t kBlock = 4096;
  const int64_t nb = (n + kBlock - 1) / kBlock;
  thread_local std::vector<double> partial;
  partial.assign(size_t(nb), 0.0);
  double* const part = partial.data();
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) s += term(i);
    part[b] = s;
  }
  double s = 0;
  for (int64_t b = 0; b < nb; ++b) s += part[b];
  return s;
}

}  // namespace rat
