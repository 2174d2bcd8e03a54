#!/usr/bin/env bash
# The quick fuzz check: builds every libFuzzer target (fuzz/build.sh) and runs each from its
# seed corpus, two at a time; fails on any crash, leak, hang over 1 s or exception other
# than rat::Error.
#
#   scripts/fuzz_smoke.sh            the test command's run: every target -seed=1 for a fixed
#                                    RAT_FUZZ_RUNS executions (default 20000, about 1-60 s a
#                                    target here). Same binary, same inputs, same verdict:
#                                    a CI run cannot turn red on a mutation nobody saw.
#   scripts/fuzz_smoke.sh SECONDS    exploring: a random seed, SECONDS a target. Run this (or
#                                    scripts/fuzz.sh TARGET SECONDS) to look for new bugs.
#
# Environment: RAT_FUZZ_PARALLEL (default 2): targets run at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
par="${RAT_FUZZ_PARALLEL:-2}"
if [ $# -ge 1 ]; then
  seconds="$1"
  what="${seconds}s"
else
  runs="${RAT_FUZZ_RUNS:-20000}"
  seconds=900  # a safety cap only; the runs end it
  export RAT_FUZZ_FLAGS="-seed=1 -runs=$runs ${RAT_FUZZ_FLAGS:-}"
  what="$runs executions (seed 1)"
fi
"$root/fuzz/build.sh" rat_fuzz >/dev/null
if [ -z "${RAT_FUZZ_WORK:-}" ]; then  # a clean smoke run keeps nothing
  RAT_FUZZ_WORK="$(mktemp -d)"
  tmp_work="$RAT_FUZZ_WORK"
fi
export RAT_FUZZ_WORK
fail=0
mapfile -t targets < <("$root/scripts/fuzz.sh" --list)
for ((i = 0; i < ${#targets[@]}; i += par)); do
  pids=()
  for t in "${targets[@]:i:par}"; do
    "$root/scripts/fuzz.sh" "$t" "$seconds" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
done
if [ "$fail" = 0 ]; then
  echo "fuzz smoke: ${#targets[@]} targets x $what clean"
  [ -n "${tmp_work:-}" ] && rm -rf "$tmp_work"
fi
exit "$fail"
