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
#include <cstring>

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

// Sets floats [p, p + n) to zero and returns the whole 4 KiB pages inside to
// the kernel (MADV_DONTNEED on private anonymous memory: they read as zeros
// and take memory again only when next written). The partial pages at the
// edges are zeroed in place. For buffers that are only partly needed at a
// time (a sharded gradient's slices owned by other ranks, train/trainer.cc).
inline void zero_and_release(float* p, int64_t n) {
  if (n <= 0) return;
  constexpr uintptr_t kPage = 4096;
  const uintptr_t lo = uintptr_t(p), hi = uintptr_t(p + n);
  const uintptr_t begin = (lo + kPage - 1) & ~(kPage - 1), end = hi & ~(kPage - 1);
  if (end <= begin || ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED) != 0) {
    std::memset(p, 0, size_t(n) * sizeof(float));  // nothing to release, or refused
    return;
  }
  std::memset(p, 0, begin - lo);
  std::memset(reinterpret_cast<void*>(end), 0, hi - end);
}

}  // namespace rat
