// This machine's ceilings, measured in the same run as the figure they judge:
// the GEMM rate (through the engine's own GEMM wrapper) and the memory read
// bandwidth. Benchmarks and the trainer's MFU are reported against them.
#pragma once

#include <cstdint>

#include "kernels/types.h"

namespace rat {

// GFLOP/s of an n^3 GEMM (all threads), the fastest of the repeats.
double measure_gemm_rate(int64_t n, Precision p, int repeats = 5);
// GB/s reading a buffer far larger than the caches (all threads, software
// prefetch), the fastest of the repeats.
double measure_read_bandwidth(int64_t bytes = int64_t(1) << 30, int repeats = 5);

}  // namespace rat
