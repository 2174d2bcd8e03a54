// fp32 -> bf16 rounding of one value, shared by gemm.cc and each instruction
// set's to_bf16 (isa_*.cc). static: every translation unit keeps its own copy,
// compiled for its own instruction set.
#pragma once

#include <cstdint>
#include <cstring>

namespace rat {

// Round to nearest even. NaN stays NaN (quieted); fp32 subnormals flush to
// signed zero, as VCVTNEPS2BF16 (AVX512-BF16) does: otherwise a value's bits
// would depend on its array position, and round_bf16 would not emulate what
// gemm's packing produces.
static inline uint16_t bf16_scalar(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  if ((u & 0x7f800000) == 0) return uint16_t((u >> 16) & 0x8000);
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// to_bf16 of the instruction sets without a conversion instruction (isa_avx2.cc,
// isa_generic.cc); static for the same reason.
static inline void to_bf16_scalar(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_scalar(x[i]);
}

}  // namespace rat
