#include "kernels/isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/isa_kernels.h"

namespace rat {

namespace {

bool cpu_has(Isa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kAvx512:
      // The subsets isa_avx512.cc is compiled with (x86-64-v4).
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kGeneric: return true;
  }
  return false;
#else
  return isa == Isa::kGeneric;
#endif
}

const IsaKernels& table(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512) return kIsaAvx512Kernels;
  if (isa == Isa::kAvx2) return kIsaAvx2Kernels;
#endif
  return kIsaGenericKernels;
}

struct Choice {
  Isa isa;
  bool from_env;
};

// RAT_ISA, else the best the CPU has. Bad input ends the process here, at
// start (a static initializer below runs this before main): no kernel has run.
Choice decide() {
  const char* env = std::getenv("RAT_ISA");
  if (!env || !*env) {
    for (Isa isa : {Isa::kAvx512, Isa::kAvx2})
      if (cpu_has(isa)) return {isa, false};
    return {Isa::kGeneric, false};
  }
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2, Isa::kGeneric}) {
    if (std::strcmp(env, isa_name(isa)) != 0) continue;
    if (!cpu_has(isa)) {
      std::fprintf(stderr, "error: RAT_ISA=%s: this CPU lacks %s; use %s or unset RAT_ISA\n", env,
                   isa == Isa::kAvx512 ? "AVX-512 (F, BW, DQ, VL)" : "AVX2 with FMA",
                   isa == Isa::kAvx512 && cpu_has(Isa::kAvx2) ? "avx2, generic" : "generic");
      std::exit(2);
    }
    // oneDNN reads ONEDNN_MAX_CPU_ISA at its first primitive, after this.
    const char* dnnl_cap = isa == Isa::kAvx2 ? "AVX2" : isa == Isa::kGeneric ? "SSE41" : nullptr;
    if (dnnl_cap) setenv("ONEDNN_MAX_CPU_ISA", dnnl_cap, /*overwrite=*/0);
    return {isa, true};
  }
  std::fprintf(stderr, "error: RAT_ISA=%s: expected avx512, avx2 or generic\n", env);
  std::exit(2);
}

const Choice& choice() {
  static const Choice c = decide();
  return c;
}

// Chooses before main, so a bad RAT_ISA stops every program (rat, the tests)
// before any work, and the hot paths find the pointer set.
[[maybe_unused]] const bool g_chosen_at_start = (isa_detail::choose(), true);

}  // namespace

namespace isa_detail {

std::atomic<const IsaKernels*> g_kernels{nullptr};

const IsaKernels& choose() {
  const IsaKernels& k = table(choice().isa);
  g_kernels.store(&k, std::memory_order_relaxed);
  return k;
}

}  // namespace isa_detail

Isa active_isa() { return choice().isa; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kGeneric: return "generic";
  }
  return "?";
}

bool isa_supported(Isa isa) { return cpu_has(isa); }

const IsaKernels& isa_table(Isa isa) { return table(isa); }

std::string isa_description() {
  const Choice& c = choice();
  return std::string(isa_name(c.isa)) + (c.from_env ? " (RAT_ISA)" : " (cpu)");
}

}  // namespace rat
