#!/usr/bin/env bash
# Configures (once) and builds the clang sanitizer tree shared by the fuzz targets and the
# sanitized test runs: -DRAT_FUZZ=ON, every layer with ASan+UBSan and libFuzzer's coverage
# instrumentation, -O1 -g with asserts on. One tree, so CI compiles the sources once for
# scripts/fuzz_smoke.sh and scripts/sanitize_tests.sh.
#
#   fuzz/build.sh TARGET...      e.g. fuzz/build.sh rat_fuzz rat_tests
#
# Environment: RAT_FUZZ_BUILD_DIR (default <repo>/build-fuzz), RAT_FUZZ_CXX (default clang++-14,
# else clang++), RAT_JOBS (default 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${RAT_FUZZ_BUILD_DIR:-$root/build-fuzz}"
cxx="${RAT_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}"
if [ -z "$cxx" ]; then
  echo "error: clang++ not found; install clang-14 and libclang-rt-14-dev (scripts/install_deps.sh)" >&2
  exit 1
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$root" -B "$build" -DRAT_FUZZ=ON -DCMAKE_CXX_COMPILER="$cxx" \
        -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DRAT_CTEST_SANITIZE=OFF \
        "${launcher[@]}" >/dev/null
fi
cmake --build "$build" -j "${RAT_JOBS:-2}" --target "$@"
