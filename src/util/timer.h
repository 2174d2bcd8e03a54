// Wall-clock timing and the median of repeated measurements.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace rat {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median wall seconds of `repeats` calls of f, after `warmup` untimed calls.
template <class F>
double median_seconds(F&& f, int warmup, int repeats) {
  for (int r = 0; r < warmup; ++r) f();
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_seconds();
    f();
    times.push_back(now_seconds() - t0);
  }
  return median(times);
}

}  // namespace rat
