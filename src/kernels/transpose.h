// b[c * ldb + r] = a[r * lda + c] for r < rows, c < cols: out-of-place
// transpose in 16 x 16 tiles, so both sides touch whole cache lines.
#pragma once

#include <algorithm>
#include <cstdint>

namespace rat {

inline void transpose(const float* a, int64_t rows, int64_t cols, int64_t lda, float* b,
                      int64_t ldb) {
  constexpr int64_t kT = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kT)
    for (int64_t c0 = 0; c0 < cols; c0 += kT) {
      const int64_t r1 = std::min(rows, r0 + kT), c1 = std::min(cols, c0 + kT);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) b[c * ldb + r] = a[r * lda + c];
    }
}

}  // namespace rat
