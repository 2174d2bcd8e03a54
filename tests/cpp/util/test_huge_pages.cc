// advise_huge_pages (src/util/huge_pages.h) is only a request: data written
// before or after it, at any alignment, reads back unchanged (an advice that
// dropped pages, MADV_DONTNEED say, would read back zeros). zero_and_release
// is that drop, on purpose.
#include <gtest/gtest.h>

#include <sys/mman.h>

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

// Pages of [p, p + bytes) resident now (mincore), p page-aligned.
size_t resident_pages(const void* p, size_t bytes) {
  std::vector<unsigned char> v((bytes + 4095) / 4096);
  if (mincore(const_cast<void*>(p), bytes, v.data()) != 0) return size_t(-1);
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

// zero_and_release: the range reads as zeros (the partial pages at its ends
// zeroed in place, the whole pages inside dropped), the floats around it are
// untouched, the dropped pages take no memory until written, and writing
// them again works.
TEST(HugePages, ZeroAndReleaseZeroesTheRangeAndDropsItsWholePages) {
  const size_t pages = 64, n = pages * 4096 / sizeof(float);
  void* m = mmap(nullptr, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  float* p = static_cast<float*>(m);
  for (size_t i = 0; i < n; ++i) p[i] = 1.f + float(i % 7);
  ASSERT_EQ(resident_pages(p, pages * 4096), pages);
  const size_t lo = 1000 + 3, hi = n - 2000 + 5;  // both inside pages, not on their edges
  zero_and_release(p + lo, int64_t(hi - lo));
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(p[i], i >= lo && i < hi ? 0.f : 1.f + float(i % 7)) << i;
  // Reading the dropped pages above mapped the shared zero page, not memory:
  // count from a fresh release.
  zero_and_release(p + lo, int64_t(hi - lo));
  const size_t first = (lo * 4 + 4095) / 4096, last = hi * 4 / 4096;  // whole pages inside
  EXPECT_EQ(resident_pages(p + first * 1024, (last - first) * 4096), 0u);
  EXPECT_EQ(resident_pages(p, 4096), 1u);  // the partial first page stays
  p[lo + 5000] = 2.f;
  EXPECT_EQ(p[lo + 5000], 2.f);
  EXPECT_EQ(p[lo + 5001], 0.f);
  zero_and_release(p + 10, 0);  // empty: nothing
  EXPECT_EQ(p[10], 1.f + float(10 % 7));
  munmap(m, pages * 4096);
}

}  // namespace
}  // namespace rat
