// Token embedding (src/kernels/embedding.h): the forward gathers rows, the backward (with
// repeated ids) against central finite differences.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/embedding.h"
#include "test_util.h"

namespace rat {
namespace {

using namespace rat::testing;

// Embedding (SPEC.md: x = wte[ids]).

TEST(Embedding, ForwardGathersRows) {
  const int64_t V = 11, D = 7, N = 23;
  const Vec wte = randn(V * D, 141);
  const auto ids = random_ids(N, V, 142);
  for_threads([&] {
    Vec x(size_t(N * D), kGarbage);
    embedding_forward(ids.data(), wte.data(), x.data(), N, D);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d)
        ASSERT_EQ(x[size_t(n * D + d)], wte[size_t(ids[size_t(n)] * D + d)]) << n << ", " << d;
  });
}

// Repeated ids must add up; D = 2 leaves the third thread with no columns.
TEST(Embedding, BackwardMatchesFiniteDifferences) {
  for (int64_t D : {2, 70}) {
    SCOPED_TRACE(::testing::Message() << "D " << D);
    const int64_t V = 11, N = 23;
    const auto ids = random_ids(N, V, 151);
    const Vec R = randn(N * D, 152);
    DVec wd = to_d(randn(V * D, 153));
    const DVec Rd = to_d(R);
    auto loss = [&] {
      double s = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d)
          s += wd[size_t(ids[size_t(n)] * D + d)] * Rd[size_t(n * D + d)];
      return s;
    };
    const DVec g = fd_grad(wd, loss);
    const Vec dw0 = randn(V * D, 154);  // ACCUMULATED
    for_threads([&] {
      Vec dw = dw0;
      embedding_backward(ids.data(), R.data(), dw.data(), N, D);
      EXPECT_TRUE(close(dw, plus(dw0, g), kGradAtol, kGradRtol));
    });
  }
}

}  // namespace
}  // namespace rat
