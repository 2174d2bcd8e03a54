#include "kernels/gemv.h"

#include <algorithm>
#include <vector>

#include "kernels/decode_attention.h"
#include "kernels/gemm.h"
#include "kernels/isa_kernels.h"
#include "util/error.h"

// The row loops are the instruction set's (kernels/isa_avx512.cc; other sets
// have none and leave every shape to oneDNN); here x is packed for them.
namespace rat {

bool gemv_bf16_supported(int64_t M, int64_t K) {
  // Three and four rows: oneDNN's 26-30 GB/s beat this kernel's 18-28.
  return M >= 1 && M <= 2 && gemv_bf16_any_rows(K);
}

bool gemv_bf16_any_rows(int64_t K) {
  return isa_kernels().gemv_bf16 != nullptr && K % 32 == 0 && K > 0;
}

void gemv_bf16(const float* x, int64_t ldx, int64_t M, const uint16_t* W, int64_t ldw, int64_t N,
               int64_t K, float* y, int64_t ldy, float beta) {
  RAT_ASSERT(x != nullptr && W != nullptr && y != nullptr);
  RAT_ASSERT(M >= 1 && gemv_bf16_any_rows(K) && N >= 0 && ldx >= K && ldw >= K && ldy >= N);
  // x rounded to bf16 (as gemm_bf16_weights rounds A), widened, and split into
  // the even/odd lanes that a 32-element block of a weight row widens into.
  thread_local std::vector<float> xs;
  thread_local std::vector<uint16_t> tmp;
  const int64_t nb = K / 32;
  xs.resize(size_t(M * K));
  tmp.resize(size_t(K));
  for (int64_t m = 0; m < M; ++m) {
    to_bf16(x + m * ldx, tmp.data(), K);
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t j = 0; j < 16; ++j) {
        xs[size_t(m * K + 32 * b + j)] = bf16_to_f32(tmp[size_t(32 * b + 2 * j)]);
        xs[size_t(m * K + 32 * b + 16 + j)] = bf16_to_f32(tmp[size_t(32 * b + 2 * j + 1)]);
      }
  }
  isa_kernels().gemv_bf16(xs.data(), M, W, ldw, N, K, y, ldy, beta);
}

bool gemv_f32_supported(int64_t M, int64_t K) { return M >= 1 && M <= 2 && gemv_f32_any_rows(K); }

bool gemv_f32_any_rows(int64_t K) {
  return isa_kernels().gemv_f32 != nullptr && K % 16 == 0 && K > 0;
}

void gemv_f32(const float* x, int64_t ldx, int64_t M, const float* W, int64_t ldw, int64_t N,
              int64_t K, float* y, int64_t ldy, float beta) {
  RAT_ASSERT(x != nullptr && W != nullptr && y != nullptr);
  RAT_ASSERT(M >= 1 && gemv_f32_any_rows(K) && N >= 0 && ldx >= K && ldw >= K && ldy >= N);
  thread_local std::vector<float> xs;  // x packed to [M, K]
  xs.resize(size_t(M * K));
  for (int64_t m = 0; m < M; ++m) std::copy(x + m * ldx, x + m * ldx + K, xs.begin() + m * K);
  isa_kernels().gemv_f32(xs.data(), M, W, ldw, N, K, y, ldy, beta);
}

}  // namespace rat
