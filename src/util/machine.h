// Facts about this machine and process that benchmarks print beside their
// figures. Measured ceilings (GEMM rate, bandwidth) are kernels/ceilings.h.
#pragma once

#include <string>

namespace rat {

// Peak resident set size of this process so far, MiB.
double max_rss_mib();
// "AMD EPYC ..., 2 threads".
std::string machine_description();

}  // namespace rat
