#!/usr/bin/env bash
# Reruns an existing build's whole CTest suite on the AVX2+FMA kernels
# (RAT_ISA=avx2, which also caps oneDNN at AVX2; src/kernels/isa.h), then the
# C++ unit tests on the portable kernels (RAT_ISA=generic). The default run
# (scripts/test.sh) tests the best kernels this CPU has, usually AVX-512; this
# one tests the paths every other x86-64 CPU takes. Build first
# (scripts/build.sh).
#
#   scripts/test_isa.sh [build-dir] [extra ctest arguments, e.g. -E 'mpi|fault']
#
# Environment: RAT_JOBS (ctest -j, default 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
shift || true
[ -x "$build/rat" ] && [ -x "$build/tests/rat_tests" ] ||
  { echo "error: $build/rat or $build/tests/rat_tests missing; run scripts/build.sh" >&2; exit 1; }
if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
  echo "test_isa: this CPU has no AVX2+FMA; only the generic unit tests run"
else
  version="$(RAT_ISA=avx2 "$build/rat" --version)"
  grep -q "kernels: avx2 (RAT_ISA)" <<<"$version" ||
    { echo "error: RAT_ISA=avx2 did not select the AVX2 kernels: $version" >&2; exit 1; }
  start=$SECONDS
  # threads_invariance is left out: oneDNN's AVX2 sgemm splits its sums by the
  # thread count (measured: losses and weights differ on 2 and 3 threads), so
  # bit-identity across thread counts holds on the AVX-512 path only
  # (docs/reliability.md, "Thread and batch invariance").
  (cd "$build" && RAT_ISA=avx2 ctest --output-on-failure --no-tests=error -j"${RAT_JOBS:-2}" \
     --timeout 1500 -E '^threads_invariance$' "$@")
  echo "test_isa: the suite on RAT_ISA=avx2 passed in $((SECONDS - start)) s"
fi
start=$SECONDS
RAT_ISA=generic "$build/tests/rat_tests" --gtest_brief=1
echo "test_isa: the unit tests on RAT_ISA=generic passed in $((SECONDS - start)) s"
