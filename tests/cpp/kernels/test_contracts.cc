// Kernel shape contracts (RAT_ASSERT, src/util/error.h): in a debug build a caller that breaks
// one (an odd rotary width, H not a multiple of G, a null output) aborts at the kernel's entry
// with a one-line message naming the condition, instead of reading out of bounds. Release
// builds (NDEBUG) compile the checks out, so there the test is skipped.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/gemm.h"
#include "kernels/rat_attention.h"
#include "kernels/rope.h"

namespace rat {
namespace {

TEST(KernelContractsDeathTest, ViolatedShapeContractAbortsNamingIt) {
#ifdef NDEBUG
  GTEST_SKIP() << "RAT_ASSERT is compiled out under NDEBUG";
#else
  // The kernels start OpenMP threads; a fresh process per death test is the safe style.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(RopeTable().build(7, 16, 10000.0), "kernel contract violated: p > 0 && p % 2 == 0");

  // H = 3 heads over G = 2 query groups: head h would read group h % G of a layout that has
  // no such grouping.
  const RatAttnShape s{/*B=*/1,    /*T=*/8,      /*H=*/3,    /*P=*/4, /*L=*/4, /*G=*/2,
                       /*ld_q=*/8, /*ld_kv=*/12, /*ld_o=*/12};
  std::vector<float> q(64), kv(96), o(96), lse(24);
  EXPECT_DEATH(rat_attention_forward(s, q.data(), kv.data(), kv.data(), o.data(), lse.data()),
               "rat_attention_forward: kernel contract violated: rat_attn_shape_ok");

  const std::vector<float> a(6), b(6);
  EXPECT_DEATH(gemm({2, 3, 2}, a.data(), b.data(), nullptr, 0.f),
               "kernel contract violated: C != nullptr");
#endif
}

}  // namespace
}  // namespace rat
