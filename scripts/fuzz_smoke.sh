#!/usr/bin/env bash
# The quick fuzz check of the test command: builds every libFuzzer target (fuzz/build.sh) and
# runs each for SECONDS (default 20), two at a time, from its seed corpus; fails on any
# crash, leak, hang over 1 s or exception other than rat::Error.
#
#   scripts/fuzz_smoke.sh [SECONDS]
#
# Environment: RAT_FUZZ_PARALLEL (default 2): targets run at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-20}"
par="${RAT_FUZZ_PARALLEL:-2}"
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
  echo "fuzz smoke: ${#targets[@]} targets x ${seconds}s clean"
  [ -n "${tmp_work:-}" ] && rm -rf "$tmp_work"
fi
exit "$fail"
