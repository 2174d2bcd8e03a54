#!/usr/bin/env bash
# Activation recomputation (trainer.activation_checkpointing, docs/scaling.md
# "Activation recomputation"): step time and peak RSS of the same training run
# with none | mixer | block. The model: rat-small widened to 8 layers, D 512,
# FFN 2048, T 2048, one sequence per step, on the bundled corpus. Each mode is
# one process of `steps` optimiser steps; the step time is the best step after
# the first (which also sizes every buffer), peak RSS the process's VmHWM
# (/usr/bin/time's maximum resident set). Run it on a quiet machine.
#   bench/recompute.sh [threads] [steps] [dtype] [extra overrides...]
#   (defaults: 2 threads, 4 steps, float32)
# Prints one table row per mode; the logs are bench/out/recompute_<mode>.{log,jsonl}.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
steps=${2:-4}
dtype=${3:-float32}
shift $(($# < 3 ? $# : 3))
out=bench/out
mkdir -p "$out"
[ -f data/pydoc/train.bin ] || bash scripts/prepare_corpus.sh data/pydoc
T=2048
echo "threads $threads, $steps steps, $dtype, T $T, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| activation_checkpointing | best step (s) | tokens/s | peak RSS (MiB) | loss after $steps steps |"
echo "|---|---|---|---|---|"
for mode in none mixer block; do
  run=$out/recompute_$mode
  /usr/bin/time -f "%M" -o "$run.rss" build/rat train configs/experiment/pydoc/rat-small.yaml \
    --run-dir "$run" --overwrite --threads "$threads" --quiet \
    data.seq_len=$T data.batch_size=1 data.global_batch_size=1 data.val_samples=0 \
    model.backbone.num_layers=8 model.backbone.d_model=512 model.backbone.hidden_cell.d_ffn=2048 \
    trainer.max_steps="$steps" trainer.log_interval=1 trainer.eval_interval=0 \
    trainer.save_checkpoint=false trainer.dtype="$dtype" \
    trainer.activation_checkpointing=$mode "$@" >"$run.log" 2>&1
  cp "$run/metrics.jsonl" "$run.jsonl"
  /usr/bin/python3 - "$run.jsonl" "$run.rss" "$mode" "$T" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
rss_kib = int(open(sys.argv[2]).read().split()[-1])
T = int(sys.argv[4])
later = recs[1:] or recs
best = max(r["tokens_per_s"] for r in later)
print(f"| {sys.argv[3]} | {T / best:.2f} | {best:.0f} | {rss_kib / 1024:.0f} | {recs[-1]['loss']!r} |")
PY
done
