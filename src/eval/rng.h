// The task generators' random numbers: SplitMix64 (Steele, Lea, Flood 2014)
// with our own bounded and real draws, so a seed gives the same task files on
// every platform (std:: distributions are implementation-defined).
#pragma once

#include <cstdint>

namespace rat {

class TaskRng {
 public:
  TaskRng(uint64_t seed, uint64_t stream) : s_(mix(seed ^ mix(stream + 0x632be59bd9b4e019ULL))) {}

  uint64_t next() { return mix(s_ += 0x9e3779b97f4a7c15ULL); }
  // Uniform in [0, n), n > 0: Lemire's multiply-shift with rejection (unbiased).
  uint64_t below(uint64_t n) {
    for (;;) {
      const unsigned __int128 m = (unsigned __int128)next() * n;
      const uint64_t lo = uint64_t(m);
      if (lo >= n || lo >= (0 - n) % n) return uint64_t(m >> 64);
    }
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  static uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }
  uint64_t s_;
};

}  // namespace rat
