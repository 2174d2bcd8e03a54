// Which instruction set the vector kernels run on, chosen once at start.
//
// The kernels with intrinsics (vec_math.h, decode_attention.h, gemv, gelu,
// to_bf16, the bandwidth probe) exist once per instruction set, each compiled
// for it in its own translation unit (isa_avx512.cc, isa_avx2.cc,
// isa_generic.cc); a table of function pointers (isa_kernels.h) selects one
// set for the whole process: the best the CPU supports (cpuid), or the one the
// environment names, RAT_ISA=avx512|avx2|generic (tests and CI run the AVX2
// and portable paths on an AVX-512 machine this way). A value the CPU lacks,
// or an unknown one, stops the process at start with one line. With RAT_ISA
// set, oneDNN is capped to the same level (ONEDNN_MAX_CPU_ISA AVX2 / SSE41)
// unless ONEDNN_MAX_CPU_ISA is already set, so a RAT_ISA=avx2 run multiplies
// with AVX2 too. What the rest of the program was compiled for is the build's
// choice (RAT_NATIVE, README "Build"): RAT_ISA selects kernels, it does not
// make an -march=native binary portable.
#pragma once

#include <string>

namespace rat {

enum class Isa { kGeneric, kAvx2, kAvx512 };

// The instruction set in use (the first call chooses it).
Isa active_isa();
const char* isa_name(Isa isa);
// "avx512 (cpu)" or "avx2 (RAT_ISA)": for `rat --version` and bench output.
std::string isa_description();
// Whether this CPU (and this build's architecture) can run that set's kernels.
bool isa_supported(Isa isa);

}  // namespace rat
