// advise_huge_pages (src/util/huge_pages.h) is only a request: data written
// before or after it, at any alignment, reads back unchanged (an advice that
// dropped pages, MADV_DONTNEED say, would read back zeros).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "util/huge_pages.h"

namespace rat {
namespace {

TEST(HugePages, ContentsSurviveTheAdvice) {
  const size_t n = (size_t(9) << 20) / sizeof(float) + 123;  // 9 MiB + a tail: several 2 MiB pages
  std::vector<float> v;
  v.reserve(n);
  advise_huge_pages(v.data(), v.capacity() * sizeof(float));
  v.resize(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(i % 1000) + 0.5f;
  // Advised again after the writes, from an unaligned start inside the block.
  advise_huge_pages(v.data() + 7, (n - 7) * sizeof(float));
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], float(i % 1000) + 0.5f) << i;
}

TEST(HugePages, RangesSmallerThanAHugePageAreLeftAlone) {
  std::vector<float> v(1000, 3.f);
  advise_huge_pages(v.data(), v.size() * sizeof(float));
  advise_huge_pages(v.data(), 0);
  for (float x : v) ASSERT_EQ(x, 3.f);
}

}  // namespace
}  // namespace rat
