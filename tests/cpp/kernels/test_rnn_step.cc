// The rnn mixer's per-token path (src/kernels/rnn_step.h) against its chunked path: the
// sigmoids (vec_sigmoid per row, as the forward's sigmoid_inplace), chunk_scan_forward with
// one chunk, then z * h. Sequences stepped token by token, several rows per step in permuted
// slots whose states start as garbage, must give the same gates, states and outputs bit for
// bit: both paths run the one update (scan.h scan_update). chunk_scan_forward itself is
// checked against a float64 reference in test_kernels.cc.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/rnn_step.h"
#include "kernels/scan.h"
#include "kernels/vec_math.h"

namespace rat {
namespace {

using Vec = std::vector<float>;
constexpr float kGarbage = 12345.f;

Vec randn(int64_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  Vec v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

bool same_bits(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, size_t(n) * sizeof(float)) == 0;
}

struct Case {
  int64_t B, T, D;
};
const Case kCases[] = {
    {2, 13, 24},  // D not a multiple of the vector width
    {1, 7, 40},
    {3, 5, 16},
    {8, 3, 2048},  // n * D past the step's parallel threshold
};

TEST(RnnStep, TokenByTokenEqualsChunkedScan) {
  const int saved = omp_get_max_threads();
  for (const Case& c : kCases)
    for (int threads : {1, 3}) {
      SCOPED_TRACE(::testing::Message()
                   << "B " << c.B << " T " << c.T << " D " << c.D << ", " << threads << " threads");
      omp_set_num_threads(threads);
      const int64_t B = c.B, T = c.T, D = c.D, W = 3 * D, N = B * T;
      Vec proj0 = randn(N * W, 3);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 2 * D; d < 3 * D; ++d) proj0[size_t(n * W + d)] *= 2.f;
      const Vec bias = randn(D, 4, 0.5f);

      // Chunked, as the mixer's forward: one chunk of T tokens per sequence.
      Vec proj = proj0, h(static_cast<size_t>(N * D)), out(static_cast<size_t>(N * D));
      for (int64_t n = 0; n < N; ++n) {
        float* r = proj.data() + n * W;
        vec_sigmoid(r, nullptr, r, D);
        vec_sigmoid(r + 2 * D, bias.data(), r + 2 * D, D);
      }
      chunk_scan_forward(proj.data() + 2 * D, W, proj.data() + D, W, h.data(), D, B, T, T, D);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d)
          out[size_t(n * D + d)] = proj[size_t(n * W + d)] * h[size_t(n * D + d)];

      // Stepped: one row per sequence per step, sequence b in slot S - 1 - b; rows at a
      // stride past 3D.
      const int64_t S = B + 1, ld = W + 3;
      Vec state(static_cast<size_t>(S * D), kGarbage), rows(static_cast<size_t>(B * ld)),
          got(static_cast<size_t>(B * D));
      std::vector<int64_t> slot(static_cast<size_t>(B)), pos(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) slot[size_t(b)] = S - 1 - b;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t b = 0; b < B; ++b) {
          std::memcpy(rows.data() + b * ld, proj0.data() + (b * T + t) * W,
                      size_t(W) * sizeof(float));
          pos[size_t(b)] = t;
        }
        rnn_step(rows.data(), ld, bias.data(), state.data(), slot.data(), pos.data(), got.data(), B,
                 D);
        for (int64_t b = 0; b < B; ++b) {
          SCOPED_TRACE(::testing::Message() << "token " << t << ", sequence " << b);
          const int64_t n = b * T + t;
          ASSERT_TRUE(same_bits(rows.data() + b * ld, proj.data() + n * W, D)) << "z";
          ASSERT_TRUE(same_bits(rows.data() + b * ld + 2 * D, proj.data() + n * W + 2 * D, D))
              << "g";
          ASSERT_TRUE(same_bits(state.data() + slot[size_t(b)] * D, h.data() + n * D, D)) << "h";
          ASSERT_TRUE(same_bits(got.data() + b * D, out.data() + n * D, D)) << "z * h";
        }
      }
      for (int64_t d = 0; d < D; ++d) ASSERT_EQ(state[size_t(d)], kGarbage) << "unused slot 0";
    }
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace rat
