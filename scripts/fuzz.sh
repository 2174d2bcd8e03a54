#!/usr/bin/env bash
# Runs one libFuzzer target of fuzz/ (fuzz/<TARGET>.cc) for SECONDS under ASan+UBSan and
# LeakSanitizer, building it first if needed (fuzz/build.sh, clang).
#
#   scripts/fuzz.sh TARGET SECONDS   fuzz; prints executions and executions per second
#   scripts/fuzz.sh TARGET FILE...   rerun saved inputs (a crash-*, a regression case)
#   scripts/fuzz.sh --list           the targets
#
# Seeds come from fuzz/corpus/TARGET (read only); new corpus entries and crash artifacts go
# to the work folder RAT_FUZZ_WORK/TARGET (default build-fuzz/fuzz-work/TARGET), kept across
# runs; merge them into fuzz/corpus with -merge=1 when asked to. A crash, a leak, an input
# taking over 1 s (-timeout=1) or an exception other than rat::Error fails the run (exit 1).
# Extra libFuzzer flags: RAT_FUZZ_FLAGS (e.g. "-jobs=2 -workers=2", "-runs=10000000").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${RAT_FUZZ_BUILD_DIR:-$root/build-fuzz}"
if [ "${1:-}" = --list ]; then
  for f in "$root"/fuzz/*.cc; do basename "$f" .cc; done
  exit 0
fi
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS | scripts/fuzz.sh TARGET FILE... | scripts/fuzz.sh --list" >&2
  exit 2
fi
target="$1"
shift
if [ ! -f "$root/fuzz/$target.cc" ]; then
  echo "error: no fuzz target '$target' (fuzz/$target.cc); targets: $("$0" --list | tr '\n' ' ')" >&2
  exit 2
fi
RAT_FUZZ_BUILD_DIR="$build" "$root/fuzz/build.sh" "fuzz_$target" >/dev/null
bin="$build/fuzz/fuzz_$target"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
dict=()
[ -f "$root/fuzz/$target.dict" ] && dict=("-dict=$root/fuzz/$target.dict")

if ! [[ "$1" =~ ^[0-9]+$ ]]; then  # rerun the given inputs
  exec "$bin" -timeout=1 -rss_limit_mb=2048 "$@"
fi
seconds="$1"
work="${RAT_FUZZ_WORK:-$build/fuzz-work}/$target"
mkdir -p "$work/corpus"
log="$work/fuzz.log"
# shellcheck disable=SC2086  # RAT_FUZZ_FLAGS is a list of flags
set +e
start=$SECONDS
"$bin" "$work/corpus" "$root/fuzz/corpus/$target" "${dict[@]}" -max_total_time="$seconds" \
  -timeout=1 -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$work/" -print_final_stats=1 \
  ${RAT_FUZZ_FLAGS:-} >"$log" 2>&1
rc=$?
elapsed=$((SECONDS - start))
set -e
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{s += $1} END {print s + 0}')
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | awk '{s += $1} END {print s + 0}')
if [ "$rc" -ne 0 ]; then
  grep -E 'ERROR|WARNING|SUMMARY|runtime error|terminate|Test unit written|error' "$log" | head -20 >&2 || true
  # The input itself, so a failure seen only in a CI log can be replayed:
  # base64 -d > x && scripts/fuzz.sh TARGET x
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
    if [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 8192 ]; then
      echo "$(basename "$f") base64: $(base64 -w0 "$f")" >&2
    fi
  done
  echo "fuzz $target: FAILED after $execs executions (log: $log; inputs: $work/crash-*, leak-*, timeout-*)" >&2
  exit 1
fi
echo "fuzz $target: $execs executions in ${elapsed}s ($rate/s), no crash, leak or hang; new corpus: $work/corpus"
