#include "kernels/weight_cache.h"

#include <algorithm>

#include "util/huge_pages.h"

namespace rat {

const uint16_t* Bf16WeightCache::get(const float* W, int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry& e = entries_[W];
  if (e.version != version_ || int64_t(e.bits.size()) != n) {
    if (e.bits.capacity() < size_t(n)) {
      // Read on every step: huge pages before the first write (util/huge_pages.h).
      std::vector<uint16_t>().swap(e.bits);
      e.bits.reserve(size_t(n));
      advise_huge_pages(e.bits.data(), e.bits.capacity() * sizeof(uint16_t));
    }
    e.bits.resize(size_t(n));
    // Chunks over threads: a model's weights are converted in one pass.
    const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n > 4 * chunk)
    for (int64_t i = 0; i < n; i += chunk)
      to_bf16(W + i, e.bits.data() + i, std::min(chunk, n - i));
    e.version = version_;
    ++conversions_;
  }
  return e.bits.data();
}

void Bf16WeightCache::invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  ++version_;
}

int64_t Bf16WeightCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t b = 0;
  for (const auto& [w, e] : entries_) b += int64_t(e.bits.size() * sizeof(uint16_t));
  return b;
}

}  // namespace rat
