#include "kernels/rnn_step.h"

#include "kernels/scan.h"
#include "kernels/vec_math.h"

namespace rat {

void rnn_step(float* proj, int64_t ld, const float* gate_bias, float* h, const int64_t* slot,
              const int64_t* pos, float* out, int64_t n, int64_t D) {
  // A few rows of a decode step are not worth a parallel region.
#pragma omp parallel for schedule(static) if (n * D >= 16384)
  for (int64_t i = 0; i < n; ++i) {
    float* z = proj + i * ld;
    const float* v = z + D;
    float* g = z + 2 * D;
    vec_sigmoid(z, nullptr, z, D);
    vec_sigmoid(g, gate_bias, g, D);
    float* hs = h + slot[i] * D;
    const bool first = pos[i] == 0;  // h_{-1} = 0
    float* o = out + i * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) {
      hs[d] = scan_update(g[d], first ? 0.f : hs[d], v[d]);
      o[d] = z[d] * hs[d];
    }
  }
}

}  // namespace rat
