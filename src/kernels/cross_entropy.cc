#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace rat {

namespace {
constexpr int64_t kLogitBlockFloats = int64_t(8) << 20;  // 32 MB of logits at a time
}

CeResult lm_head_cross_entropy(const float* hf, const float* W, const int32_t* labels, int64_t N,
                               int64_t D, int64_t V, int64_t ignore_index, Precision prec,
                               float scale, float* dhf, float* dW) {
  RAT_ASSERT(hf != nullptr && W != nullptr && labels != nullptr && (!dhf || dW != nullptr));
  RAT_ASSERT(N >= 0 && D > 0 && V > 0);
  const int64_t nb = std::max<int64_t>(1, std::min<int64_t>(N, kLogitBlockFloats / V));
  thread_local std::vector<float> logits;
  logits.resize(size_t(nb * V));
  // thread_local names the calling thread's copy: the parallel loop below
  // must use this pointer, not `logits` (each worker's own, empty, vector).
  float* const lg = logits.data();
  // Each row's loss, added in row order after the parallel loop: an OpenMP
  // reduction would group the rows by thread, and the logged loss would
  // change with the thread count.
  thread_local std::vector<double> row_losses;
  row_losses.assign(size_t(nb), 0.0);
  double* const rl = row_losses.data();
  CeResult res;
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t m = std::min(nb, N - n0);
    gemm({m, V, D, false, true}, hf + n0 * D, W, lg, 0.f, prec);
    int64_t cnt = 0;
#pragma omp parallel for schedule(static) reduction(+ : cnt)
    for (int64_t i = 0; i < m; ++i) {
      float* row = lg + i * V;
      const int32_t y = labels[n0 + i];
      if (y == ignore_index) {
        if (dhf) std::fill(row, row + V, 0.f);
        rl[i] = 0;
        continue;
      }
      float mx = row[0];
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
      double se = 0;
      for (int64_t v = 0; v < V; ++v) se += std::exp(double(row[v] - mx));
      double lse = double(mx) + std::log(se);
      rl[i] = lse - double(row[y]);
      ++cnt;
      if (dhf) {
        // d(-log softmax_y)/dlogit_v = p_v - [v == y]
        for (int64_t v = 0; v < V; ++v) row[v] = float(std::exp(double(row[v]) - lse)) * scale;
        row[y] -= scale;
      }
    }
    double loss = 0;
    for (int64_t i = 0; i < m; ++i) loss += rl[i];
    res.loss_sum += loss;
    res.count += cnt;
    if (dhf) {
      gemm({m, D, V}, lg, W, dhf + n0 * D, 0.f, prec);
      gemm({V, D, m, true, false}, lg, hf + n0 * D, dW, 1.f, prec);
    }
  }
  return res;
}

void lm_head_logits(const float* hf, const float* W, float* logits, int64_t N, int64_t D, int64_t V,
                    Precision prec, const uint16_t* W16) {
  RAT_ASSERT(hf != nullptr && W != nullptr && logits != nullptr);
  RAT_ASSERT(N >= 0 && D > 0 && V > 0);
  if (prec == Precision::kBF16 && W16)
    gemm_bf16_weights({N, V, D, false, true}, hf, W16, logits, 0.f);
  else
    gemm({N, V, D, false, true}, hf, W, logits, 0.f, prec);
}

}  // namespace rat
