#!/usr/bin/env bash
# The cost of --batch-invariant decoding (docs/reliability.md "Batch-invariant decoding"):
# `rat bench model --mode decode` with and without --batch-invariant, for the RAT and
# attention presets, at several batch sizes, the two sides alternating in one session
# (default first, then invariant, per round) so the machine's drift hits both alike.
# Each cell: the median of `rounds` medians of `rat bench model --repeats 5`.
#   bench/batch_invariant.sh [rounds] [dtype] [batches...]   (defaults: 3, f32, 1 8 64)
# Shape: D 1024, d_head 128, 4 layers, vocab 32000, step at position 1023.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
dtype=${2:-f32}
shift $(($# < 2 ? $# : 2))
batches=("${@:-1 8 64}")
[ $# -gt 0 ] || batches=(1 8 64)
shape=(--d-model 1024 --d-head 128 --layers 4 --vocab 32000 --seq 1024 --repeats 5 --dtype "$dtype" --json)
echo "machine: $(build/rat --version | head -1); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| mixer | batch | default ms/step (tokens/s) | --batch-invariant ms/step (tokens/s) | cost |"
echo "|---|---|---|---|---|"
for mixer in rat attention; do
  for b in "${batches[@]}"; do
    def=() inv=()
    for ((r = 0; r < rounds; r++)); do
      def+=("$(build/rat bench model --mixer "$mixer" --batch "$b" "${shape[@]}" |
               /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.readlines()[-1])["step_ms"])')")
      inv+=("$(build/rat bench model --mixer "$mixer" --batch "$b" --batch-invariant "${shape[@]}" |
               /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.readlines()[-1])["step_ms"])')")
    done
    /usr/bin/python3 - "$mixer" "$b" "${def[*]}" "${inv[*]}" <<'PY'
import statistics, sys
mixer, b, d, i = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
d, i = statistics.median(map(float, d)), statistics.median(map(float, i))
print(f"| {mixer} | {b} | {d:.2f} ({b / d * 1e3:.0f}) | {i:.2f} ({b / i * 1e3:.0f}) | {i / d:.2f}x |")
PY
  done
done
