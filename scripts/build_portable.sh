#!/usr/bin/env bash
# The portable configuration, built in its own tree: -DRAT_NATIVE=OFF (the
# x86-64 baseline, or the compiler's default target elsewhere, plus the
# runtime-dispatched kernels) and -DRAT_MPI=OFF (no MPI: one process). Then
# checks it: which kernels rat picks; that the only vector instructions past
# the baseline are in the dispatched kernels (x86-64: no ymm/zmm register
# outside rat::avx2 / rat::avx512 in rat's own code); that a launch under
# mpirun is refused; and the C++ unit tests on every instruction set this CPU
# has. A full second build: not part of the default test run (README "Build").
#
#   scripts/build_portable.sh [build-dir (default build-portable)] [--ctest]
#
# --ctest also runs the whole CTest suite of that tree (without MPI tests).
# Environment: RAT_JOBS (default: all cores).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-portable}"
ctest_too="${2:-}"
jobs="${RAT_JOBS:-$(nproc)}"
start=$SECONDS
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRAT_NATIVE=OFF -DRAT_MPI=OFF >/dev/null
# --ctest runs every test, so it needs every target (rat_check_case, the man
# page, the Python module); otherwise rat and the unit tests are enough.
if [ "$ctest_too" = --ctest ]; then
  cmake --build "$build" -j "$jobs"
else
  cmake --build "$build" -j "$jobs" --target rat rat_tests
fi
echo "build_portable: built in $((SECONDS - start)) s"
rat="$build/rat"
"$rat" --version

if [ "$(uname -m)" = x86_64 ]; then
  # Functions of rat's own code (not libraries) that touch ymm/zmm registers.
  # rat::decode_generic's helpers (kernels/decode_generic.h) and
  # rat::to_bf16_scalar (kernels/bf16_scalar.h) are `static`, and VecOps is
  # instantiated with each file's own functions: each instruction set's file has
  # its own copy, called only from that file, so the AVX copies are allowed; the
  # copy the portable code calls is baseline.
  bad="$(objdump -d --no-show-raw-insn -C "$rat" | awk '
      /^[0-9a-f]+ <.*>:$/ { fn = $0; next }
      /%[yz]mm[0-9]/ && fn !~ /rat::avx2::|rat::avx512::|rat::decode_generic::|rat::to_bf16_scalar/ { print fn }' |
      sort -u | head -20)"
  if [ -n "$bad" ]; then
    echo "error: AVX code outside the dispatched kernels of a portable build:" >&2
    echo "$bad" >&2
    exit 1
  fi
  echo "build_portable: no AVX outside rat::avx2 / rat::avx512"
fi

# A launcher's environment (as mpirun sets it) must be refused with one line.
if out="$(OMPI_COMM_WORLD_SIZE=2 "$rat" train experiment=pydoc/rat-small 2>&1)"; then
  echo "error: the single-process rat ran under an MPI launcher's environment" >&2
  exit 1
fi
grep -q "built without MPI" <<<"$out" || { echo "error: unexpected refusal: $out" >&2; exit 1; }
echo "build_portable: refuses mpirun: $out"

for isa in avx512 avx2 generic; do
  if RAT_ISA=$isa "$rat" --version >/dev/null 2>&1; then
    RAT_ISA=$isa "$build/tests/rat_tests" --gtest_brief=1
    echo "build_portable: unit tests pass on RAT_ISA=$isa"
  else
    echo "build_portable: this CPU has no $isa"
  fi
done
if [ "$ctest_too" = --ctest ]; then
  (cd "$build" && ctest --output-on-failure --no-tests=error -j"${RAT_JOBS:-2}" --timeout 1500)
fi
echo "build_portable: ok in $((SECONDS - start)) s"
