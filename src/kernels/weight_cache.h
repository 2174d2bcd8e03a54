// bf16 copies of weight matrices for inference, converted once per weight
// version instead of on every GEMM call.
//
// With Precision::kBF16 the GEMM wrapper rounds both operands to bf16 on each
// call. In training that is right (the optimizer changes the weights every
// step), but a decode step multiplies a handful of rows by every weight of the
// model: converting the weights each time costs more than the product. An
// owner of frozen weights (generation, evaluation, benchmarks) keeps one of
// these and calls invalidate() whenever the weights change; gemm_bf16_weights (gemm.h)
// then gives bit for bit what gemm(..., kBF16) gives, since both round with
// to_bf16. The copies take half the f32 size of the weights they cover.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/gemm.h"

namespace rat {

class Bf16WeightCache {
 public:
  // The bf16 copy of the n floats at W (converted now if absent or stale).
  // Call from outside parallel regions.
  const uint16_t* get(const float* W, int64_t n);
  // The weights changed: every copy is stale (memory is kept for reuse).
  void invalidate();
  int64_t bytes() const;
  uint64_t conversions() const { return conversions_; }  // for tests
  // Changes on every invalidate(): copies derived from this cache's (a
  // reordered layout, say) are stale once it differs from when they were made.
  uint64_t version() const {
    std::lock_guard<std::mutex> lock(mu_);
    return version_;
  }

 private:
  struct Entry {
    std::vector<uint16_t> bits;
    uint64_t version = 0;
  };
  std::unordered_map<const float*, Entry> entries_;
  uint64_t version_ = 1, conversions_ = 0;
  mutable std::mutex mu_;
};

}  // namespace rat
