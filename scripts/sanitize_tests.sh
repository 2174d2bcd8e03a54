#!/usr/bin/env bash
# The C++ tests under sanitizers.
#
#   scripts/sanitize_tests.sh [gtest args]        the file-format parser tests (and the other
#                                                 input readers, target rat_parser_tests) under
#                                                 ASan+UBSan: seconds
#   scripts/sanitize_tests.sh --all [gtest args]  every test of rat_tests under ASan+UBSan, then
#                                                 rat_check_case on every golden case
#   scripts/sanitize_tests.sh --tsan [gtest args] every test of rat_tests (the overlap scheduler,
#                                                 data parallelism's hooks, every OpenMP kernel)
#                                                 and `rat serve` (tests/serve/serve_check.py)
#                                                 under ThreadSanitizer
#
# ASan+UBSan use the clang tree of the fuzz targets (fuzz/build.sh, build-fuzz/) when clang is
# installed, so the test command compiles the sanitized sources once for both; without clang,
# GCC's -DRAT_SANITIZE=ON in build-asan/. TSan uses clang in build-tsan/ with LLVM's OpenMP
# runtime and its TSan annotations (Archer, OMP_TOOL_LIBRARIES), so OpenMP's own
# synchronisation is visible to TSan instead of reported as races (docs/reliability.md).
#
# Environment: RAT_JOBS (default 2), RAT_SANITIZE_FILTER (the default run's gtest filter),
# RAT_ASAN_BUILD_DIR (GCC fallback, default build-asan), RAT_TSAN_BUILD_DIR (default build-tsan),
# RAT_TSAN_FILTER (the --tsan run's gtest filter).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${RAT_JOBS:-2}"
mode=parsers
case "${1:-}" in
  --all) mode=all; shift ;;
  --tsan) mode=tsan; shift ;;
esac
filter="${RAT_SANITIZE_FILTER:-Config*:ExperimentConfig*:Safetensors*:Tokens*:SftTest.*:AtomicFile*:PromptIds*:BatchFile*:StopFilter*:QaF1*:QaNormalize*:RougeL*:EditSim*:ExactMatch*:BestScore*:ScorePredictions*:Score.*:Mc.*:ReadGenCases*:TruncateMiddle*:StringMatchAll*:RollingWindows*:MqarRead*:StrictKeys*:WeightsByName*:Compose*:SftPadded*:SftTasks*:YamlErrors*:RunDir*:FuzzRegression*}"
clang="$(command -v clang++-14 || command -v clang++ || true)"

if [ "$mode" = tsan ]; then
  [ -n "$clang" ] || { echo "error: --tsan needs clang++ (scripts/install_deps.sh)" >&2; exit 1; }
  build="${RAT_TSAN_BUILD_DIR:-$root/build-tsan}"
  if [ ! -f "$build/CMakeCache.txt" ]; then
    launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$clang" -DCMAKE_BUILD_TYPE=Debug \
          -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
          -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" "${launcher[@]}" >/dev/null
  fi
  cmake --build "$build" -j "$jobs" --target rat_tests rat
  archer="$(dirname "$("$clang" -print-file-name=libomp.so)")/libarcher.so"
  [ -f "$archer" ] || archer="$(ls /usr/lib/llvm-*/lib/libarcher.so 2>/dev/null | head -1)"
  # Without Archer every OpenMP barrier and reduction reads as a race: refuse rather than report.
  [ -f "$archer" ] || { echo "error: --tsan needs LLVM's libarcher.so (libomp-14-dev, scripts/install_deps.sh)" >&2; exit 1; }
  export OMP_TOOL_LIBRARIES="$archer"
  # Two suppressions, for libomp and httplib (not TSan-built; the why in the file).
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$root/scripts/tsan_suppressions.txt}"
  # Every test: OpenMP regions are everywhere in the kernels, and under TSan the whole suite
  # takes about two minutes. The threaded core alone, for a quick look:
  # RAT_TSAN_FILTER='OverlapTasks*:Distributed*:BackwardHook*:Generate*:BatchInvariance*:FixedSums*'
  "$build/tests/rat_tests" --gtest_filter="${RAT_TSAN_FILTER:-*}" "$@"
  # rat serve: the HTTP threads, the scheduler thread and the decode loop, driven by the real
  # OpenAI client, curl and concurrent requests. A report stops the server (halt_on_error), so
  # on failure name the logs that hold one.
  if ! /usr/bin/python3 "$root/tests/serve/serve_check.py" "$build/rat" "$build/serve_check"; then
    grep -l ThreadSanitizer "$build/serve_check"/*.log 2>/dev/null | sed 's/^/TSan report in /' >&2
    exit 1
  fi
  exit 0
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# The default run builds rat_parser_tests: the files of the suites in $filter only
# (tests/CMakeLists.txt; CTest parser_tests_listed checks that list against the filter).
targets=(rat_parser_tests)
[ "$mode" = all ] && targets=(rat_tests rat_check_case)
if [ -n "$clang" ]; then
  build="${RAT_FUZZ_BUILD_DIR:-$root/build-fuzz}"
  RAT_FUZZ_BUILD_DIR="$build" "$root/fuzz/build.sh" "${targets[@]}"
else
  # Debug (-O0 -g): fastest to compile, exact stack traces.
  build="${RAT_ASAN_BUILD_DIR:-$root/build-asan}"
  cmake -S "$root" -B "$build" -DRAT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
        -DRAT_CTEST_SANITIZE=OFF >/dev/null
  cmake --build "$build" -j "$jobs" --target "${targets[@]}"
fi
if [ "$mode" = parsers ]; then
  exec "$build/tests/rat_parser_tests" --gtest_filter="$filter" "$@"
fi
"$build/tests/rat_tests" "$@"
# The golden cases: reuse the main build's (generated by CTest reference_cases), else make them.
cases="${RAT_REFERENCE_CASES:-$root/build/reference_cases}"
if [ -d "$cases" ] && ls "$cases"/*/ >/dev/null 2>&1; then
  "$build/tests/rat_check_case" "$cases"/*/
else
  "$root/tests/python/run_reference_cases.sh" "$build/reference_cases" "$build/tests/rat_check_case"
fi
