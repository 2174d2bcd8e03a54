#!/usr/bin/env bash
# Numerical health (a): train the main job's model (rat-small on the bundled
# Python-docs corpus) once in float32 and once in bfloat16 with the same seed,
# data order and schedule, then compare the two loss curves
# (scripts/numerics_compare.py: smoothed train-loss gap, validation-loss gap,
# final perplexities, a PNG of both curves). The runs go one after the other,
# single-threaded and niced, because the build machine is shared.
#   usage: scripts/numerics_long.sh [STEPS] [OUT_DIR]      (defaults 5000, runs/numerics)
# RAT=path/to/rat picks the binary (default build/rat).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5000}
out=${2:-runs/numerics}
rat=${RAT:-build/rat}
mkdir -p "$out"
for dtype in float32 bfloat16; do
  # log_interval=1: every step's train loss goes to metrics.jsonl, so the
  # comparison can smooth it itself; eval every 100 steps on the 64 fixed
  # validation windows; no checkpoints (only the curves are compared).
  OMP_NUM_THREADS=1 nice "$rat" train configs/experiment/pydoc/rat-small.yaml \
    --run-dir "$out/$dtype" data.dir=data/pydoc trainer.max_steps="$steps" \
    trainer.dtype="$dtype" trainer.log_interval=1 trainer.eval_interval=100 \
    trainer.save_checkpoint=false >"$out/$dtype.log" 2>&1
done
/usr/bin/python3 scripts/numerics_compare.py "$out/float32/metrics.jsonl" \
  "$out/bfloat16/metrics.jsonl" --out "$out" --rat "$rat"
