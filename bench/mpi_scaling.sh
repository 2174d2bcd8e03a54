#!/usr/bin/env bash
# Data parallel on one machine (issue 5): the small RAT model at the same
# global batch (8 x 256 tokens), trained as
#   1 rank  x 1 thread,  1 rank x 2 threads           (no mpirun)
#   2 ranks x 1 thread   (overlapped all-reduce, then --no-overlap)
# Prints tokens/s over the last log interval, and for 2 ranks the seconds per
# step spent waiting for communication that backward did not hide
# (comm_wait_s) and its share of the step (comm_fraction). Needs data/pydoc
# (scripts/prepare_corpus.sh data/pydoc). Run on a quiet machine.
#   bench/mpi_scaling.sh [steps]          (default 60; logs every steps/3)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-60}
log=$((steps / 3))
cfg=configs/experiment/pydoc/rat-small.yaml
common=(trainer.max_steps=$steps trainer.log_interval=$log trainer.eval_interval=0
        trainer.save_checkpoint=false data.val_samples=0 --quiet)
out=bench/out/mpi
rm -rf "$out"
mkdir -p "$out"
mpirun=(mpirun --oversubscribe --allow-run-as-root)

last() {  # the last training record of a run's metrics.jsonl, as one line
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl") if '"loss"' in l]
j = recs[-1]
extra = ""
if "comm_wait_s" in j:
    extra = "  comm_wait_s %.4f  comm_fraction %.3f" % (j["comm_wait_s"], j["comm_fraction"])
print("%-28s %8.0f tok/s  loss %.4f%s" % (sys.argv[1], j["tokens_per_s"], j["loss"], extra))
PY
}

build/rat train "$cfg" --run-dir "$out/1x1" --threads 1 "${common[@]}"
last "1 rank x 1 thread" "$out/1x1"
build/rat train "$cfg" --run-dir "$out/1x2" --threads 2 "${common[@]}"
last "1 rank x 2 threads" "$out/1x2"
"${mpirun[@]}" -np 2 --bind-to core build/rat train "$cfg" --run-dir "$out/2x1" --threads 1 \
  data.batch_size=4 "${common[@]}"
last "2 ranks x 1 thread" "$out/2x1"
"${mpirun[@]}" -np 2 --bind-to core build/rat train "$cfg" --run-dir "$out/2x1-no-overlap" \
  --threads 1 --no-overlap data.batch_size=4 "${common[@]}"
last "2 ranks x 1 thread, blocking" "$out/2x1-no-overlap"
