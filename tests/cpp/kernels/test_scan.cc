// The chunked gated scan (src/kernels/scan.h) against a float64 reference, the per-token
// scan_step against the chunked path, and the backward against central finite differences.
// Cases hit ragged last chunks, L = 1, L >= T (the rnn case), B > 1, widths that are not
// multiples of the 64-wide column blocks, and strides larger than the width.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/scan.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

// Chunked gated scan (SPEC.md "rat"/"rnn"): h_l = g_l h_{l-1} + (1 - g_l) x_l,
// h = 0 before each chunk of L tokens.

DVec ref_scan(const DVec& g, const DVec& x, int64_t B, int64_t T, int64_t L, int64_t D) {
  DVec h(size_t(B * T * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      double s = 0;
      for (int64_t t = 0; t < T; ++t) {
        if (t % L == 0) s = 0;
        const size_t i = size_t((b * T + t) * D + d);
        s = g[i] * s + (1 - g[i]) * x[i];
        h[i] = s;
      }
    }
  return h;
}

struct ScanCase {
  int64_t B, T, L, D;
};
const ScanCase kScanCases[] = {
    {2, 37, 8, 70},     // ragged last chunk, a 64-block plus a 6-wide block
    {1, 9, 1, 5},       // L = 1: every token its own chunk
    {3, 20, 20, 64},    // L = T, exactly one column block
    {2, 23, 100, 130},  // L > T (the rnn case), three column blocks
    {1, 16, 4, 129},    // T a multiple of L
};

TEST(Scan, ChunkedForwardMatchesReference) {
  for (const ScanCase& sc : kScanCases) {
    SCOPED_TRACE(::testing::Message()
                 << "B " << sc.B << " T " << sc.T << " L " << sc.L << " D " << sc.D);
    const int64_t N = sc.B * sc.T, D = sc.D;
    const Vec g = uniform(N * D, 91, 0.05f, 0.95f), x = randn(N * D, 92);
    const DVec want = ref_scan(to_d(g), to_d(x), sc.B, sc.T, sc.L, D);
    const int64_t ld_g = D + 3, ld_x = D + 7, ld_h = D + 1;
    const Vec gs = to_strided(g, N, D, ld_g, 0.5f), xs = to_strided(x, N, D, ld_x, 0.f);
    for_threads([&] {
      Vec hs(size_t(N * ld_h), kGarbage);
      chunk_scan_forward(gs.data(), ld_g, xs.data(), ld_x, hs.data(), ld_h, sc.B, sc.T, sc.L, D);
      // Each h is a convex combination: fp32 error <= ~2 ulp per step of |x|max.
      EXPECT_TRUE(close(from_strided(hs, N, D, ld_h), want, 2e-6, 1e-5));
      EXPECT_TRUE(pad_untouched(hs, N, D, ld_h, kGarbage));
      // In place (h aliases x, as the header allows).
      Vec inplace = xs;
      chunk_scan_forward(gs.data(), ld_g, inplace.data(), ld_x, inplace.data(), ld_x, sc.B, sc.T,
                         sc.L, D);
      EXPECT_TRUE(close(from_strided(inplace, N, D, ld_x), want, 2e-6, 1e-5)) << "in place";
    });
  }
}

// STYLE.md: the chunked path and the per-token (decoding) path share one state
// definition. Decode token by token with scan_step, resetting the state at
// every chunk start, and compare with the chunked forward.
TEST(Scan, ChunkedForwardAgreesWithScanStep) {
  for (const ScanCase& sc : kScanCases) {
    SCOPED_TRACE(::testing::Message() << "T " << sc.T << " L " << sc.L << " D " << sc.D);
    const int64_t N = sc.B * sc.T, D = sc.D;
    const Vec g = uniform(N * D, 93, 0.0f, 1.0f), x = randn(N * D, 94);
    Vec chunked(size_t(N * D));
    chunk_scan_forward(g.data(), D, x.data(), D, chunked.data(), D, sc.B, sc.T, sc.L, D);
    DVec stepped(size_t(N * D));
    for (int64_t b = 0; b < sc.B; ++b) {
      Vec state(size_t(D), 0.f);
      for (int64_t t = 0; t < sc.T; ++t) {
        if (t % sc.L == 0) std::fill(state.begin(), state.end(), 0.f);
        const int64_t n = b * sc.T + t;
        scan_step(g.data() + n * D, x.data() + n * D, state.data(), D);
        std::copy(state.begin(), state.end(), stepped.begin() + n * D);
      }
    }
    // Same fp32 operations; only FMA contraction may differ between the loops.
    EXPECT_TRUE(close(chunked, stepped, 1e-6, 1e-6));
  }
}

TEST(Scan, BackwardMatchesFiniteDifferences) {
  for (const ScanCase& sc : kScanCases) {
    SCOPED_TRACE(::testing::Message()
                 << "B " << sc.B << " T " << sc.T << " L " << sc.L << " D " << sc.D);
    const int64_t N = sc.B * sc.T, D = sc.D;
    const Vec g = uniform(N * D, 95, 0.05f, 0.95f), x = randn(N * D, 96), R = randn(N * D, 97);
    DVec gd = to_d(g), xd = to_d(x);
    const DVec Rd = to_d(R);
    auto loss = [&] { return dot(ref_scan(gd, xd, sc.B, sc.T, sc.L, D), Rd); };
    const DVec want_dg = fd_grad(gd, loss), want_dx = fd_grad(xd, loss);
    // Distinct strides for every operand, as the mixers use them: g and x are
    // views into the projection, the gradients compact buffers or other views.
    const int64_t ld_g = D + 3, ld_x = D + 7, ld_h = D + 1, ld_dx = D + 2, ld_dg = D + 5;
    const Vec gs = to_strided(g, N, D, ld_g, 0.5f), xs = to_strided(x, N, D, ld_x, 0.f);
    Vec hs(size_t(N * ld_h));
    chunk_scan_forward(gs.data(), ld_g, xs.data(), ld_x, hs.data(), ld_h, sc.B, sc.T, sc.L, D);
    const Vec dhs = to_strided(R, N, D, ld_h, kGarbage);
    const Vec dg0 = randn(N * D, 98);  // dg is ACCUMULATED
    for_threads([&] {
      Vec dx(size_t(N * ld_dx), kGarbage);  // dx is WRITTEN
      Vec dg = to_strided(dg0, N, D, ld_dg, kGarbage);
      chunk_scan_backward(gs.data(), ld_g, xs.data(), ld_x, hs.data(), dhs.data(), ld_h, dx.data(),
                          ld_dx, dg.data(), ld_dg, sc.B, sc.T, sc.L, D);
      EXPECT_TRUE(close(from_strided(dx, N, D, ld_dx), want_dx, kGradAtol, kGradRtol)) << "dx";
      EXPECT_TRUE(close(from_strided(dg, N, D, ld_dg), plus(dg0, want_dg), kGradAtol, kGradRtol))
          << "dg";
      EXPECT_TRUE(pad_untouched(dx, N, D, ld_dx, kGarbage)) << "dx";
      EXPECT_TRUE(pad_untouched(dg, N, D, ld_dg, kGarbage)) << "dg";
    });
  }
}

}  // namespace
}  // namespace rat
