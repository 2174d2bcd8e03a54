// Transparent huge pages for large, long-lived arrays (weights).
//
// A model's weights are hundreds of MiB touched once at load and read on
// every decode step. In 4 KiB pages that is one page fault per 4 KiB at load
// (on a paravirtualized guest each fault costs microseconds: 6.6 s to zero
// 428 MiB against 0.2 s in 2 MiB pages, measured) and one TLB entry per
// 4 KiB on every step. Kernels set to "madvise" (a common default) give huge
// pages only to ranges marked MADV_HUGEPAGE before they are touched.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace rat {

// Marks the whole 2 MiB pages inside [p, p + bytes) for huge pages, before
// they are first written (e.g. between vector::reserve and assign). Only a
// request: where huge pages are off or unavailable nothing changes, so the
// result is ignored.
inline void advise_huge_pages(const void* p, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = (uintptr_t(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (uintptr_t(p) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace rat
