// The tests' own comparisons must fail on NaN (tests/reference/compare.h says why):
// a NaN injected anywhere in a run of errors survives the fold and fails the check.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "test_util.h"

namespace rat::testing {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Compare, StdMaxDropsNanWhichIsWhyWeDoNotUseIt) {
  // The hole this header closes: std::max keeps the first argument when the second is NaN.
  EXPECT_EQ(std::max(1.0, kNaN), 1.0);
  EXPECT_TRUE(std::isnan(max_or_nan(1.0, kNaN)));
  EXPECT_TRUE(std::isnan(max_or_nan(kNaN, 1.0)));
  EXPECT_EQ(max_or_nan(1.0, 2.0), 2.0);
}

TEST(Compare, WithinFailsOnNan) {
  EXPECT_TRUE(within(1e-6, 1e-5));
  EXPECT_FALSE(within(1e-4, 1e-5));
  EXPECT_FALSE(within(kNaN, 1e-5));
  EXPECT_FALSE(within(1e-6, kNaN));
}

TEST(Compare, MaxAbsErrorKeepsANanAtAnyPosition) {
  const std::vector<double> want = {1.0, -2.0, 3.0, 0.5};
  for (size_t bad = 0; bad < want.size(); ++bad) {
    MaxAbsError m;
    for (size_t i = 0; i < want.size(); ++i) m.add(i == bad ? kNaN : want[i] + 1e-9, want[i]);
    EXPECT_FALSE(m.within_relative(1e-5)) << "NaN at " << bad;
  }
  MaxAbsError ok;
  for (double w : want) ok.add(w + 1e-9, w);
  EXPECT_TRUE(ok.within_relative(1e-5));
  MaxAbsError inf;
  inf.add(std::numeric_limits<double>::infinity(), 1.0);
  EXPECT_FALSE(inf.within_relative(1e-5));
}

TEST(Compare, ElementwiseCloseFailsOnNan) {
  const Vec got = {1.f, float(kNaN), 3.f};
  const DVec want = {1.0, 2.0, 3.0};
  EXPECT_FALSE(close(got, want, 1e-3, 1e-3));
  EXPECT_TRUE(close(Vec{1.f, 2.f, 3.f}, want, 1e-3, 1e-3));
}

}  // namespace
}  // namespace rat::testing
