#!/usr/bin/env bash
# Builds rat_tests with AddressSanitizer + UBSan in build-asan/ and runs the
# file-format parser tests (config.yaml, safetensors, token files, SFT JSONL) under them.
# Self-contained: configures the tree if needed, builds only rat_tests.
#
#   scripts/sanitize_tests.sh [extra gtest arguments]
#
# Environment: RAT_ASAN_BUILD_DIR (default <repo>/build-asan), RAT_JOBS
# (default 2), RAT_SANITIZE_FILTER (default: the parser, file-writer, prompt, metric and evaluation-input tests).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${RAT_ASAN_BUILD_DIR:-$root/build-asan}"
jobs="${RAT_JOBS:-2}"
filter="${RAT_SANITIZE_FILTER:-Config*:ExperimentConfig*:Safetensors*:Tokens*:SftTest.*:AtomicFile*:PromptIds*:BatchFile*:StopFilter*:QaF1*:QaNormalize*:RougeL*:EditSim*:ExactMatch*:BestScore*:ScorePredictions*:Score.*:Mc.*:ReadGenCases*:TruncateMiddle*:StringMatchAll*:RollingWindows*:MqarRead*:StrictKeys*:WeightsByName*:Compose*:SftPadded*:SftTasks*:YamlErrors*:RunDir*}"

# Debug (-O0 -g): fastest to compile, exact stack traces; the parser tests run
# in well under a second either way.
cmake -S "$root" -B "$build" -DRAT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
      -DRAT_CTEST_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target rat_tests

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$build/tests/rat_tests" --gtest_filter="$filter" "$@"
