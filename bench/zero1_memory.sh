#!/usr/bin/env bash
# Sharded training's memory per rank (issue 16): the authors' rat-xl width (D
# 2048, d_head 128, vocab 32000, bf16 as their file sets) cut to LAYERS blocks,
# sequences of T tokens, micro-batch 1 and ACCUM micro-steps per optimiser step,
# a few steps on random tokens, trained by 1, 2 and 3 local ranks (mpirun
# --oversubscribe) with trainer.fsdp.sharding_strategy NO_SHARD, ZERO1 and
# SHARD_GRAD_OP. Prints each run's peak RSS per rank (VmHWM, from
# /usr/bin/time), the optimiser state and the gradient the trainer reports per
# rank, and the seconds per step (meaningful on a quiet machine only).
#
#   bench/zero1_memory.sh [LAYERS (default 2)] [T (default 512)] [STEPS (default 3)] [ACCUM (default 1)]
#
# RANKS="2 3" and STRATEGIES="SHARD_GRAD_OP" in the environment run only those rows.
set -euo pipefail
cd "$(dirname "$0")/.."
layers=${1:-2}
T=${2:-512}
steps=${3:-3}
accum=${4:-1}
out=bench/out/sharding
rm -rf "$out"
mkdir -p "$out"
# Random LLaMA-vocabulary tokens: 3 ranks x steps sequences of T + 1, twice over.
/usr/bin/python3 - "$out" "$T" "$steps" "$accum" <<'PY'
import random, struct, sys
out, T, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
accum = int(sys.argv[4])
for split, n in (("train", 6 * accum * steps * (T + 1)), ("val", 2 * (T + 1))):
    with open(f"{out}/{split}.bin", "wb") as f:
        f.write(struct.pack(f"<{n}H", *(rng.randrange(3, 32000) for _ in range(n))))
PY
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rat-xl width, $layers layers, T $T, micro-batch 1 per rank, accumulation $accum, $steps steps"
printf "%-6s %-13s %28s %18s %18s %12s\n" ranks strategy "peak RSS per rank (MiB)" \
  "optimizer/rank MiB" "gradient/rank MiB" "s per step"
for n in ${RANKS:-1 2 3}; do
  for strategy in ${STRATEGIES:-NO_SHARD ZERO1 SHARD_GRAD_OP}; do
    run="$out/$n-$strategy"
    args=(build/rat train experiment=fineweb_edu/rat-xl --run-dir "$run" --threads 1
          model.backbone.num_layers="$layers" data.seq_len="$T" data.batch_size=1
          data.global_batch_size="$((n * accum))" data.train.tokenized_file_path="$out/train.bin"
          data.val.tokenized_file_path="$out/val.bin" data.val_samples=0
          trainer.max_steps="$steps" trainer.log_interval=1 trainer.save_checkpoint=false
          trainer.load_checkpoint=false trainer.fsdp.sharding_strategy="$strategy")
    launch=(/usr/bin/time -f "peak_rss_kib %M" -o "$run.rss")
    mkdir -p "$run"
    if [ "$n" = 1 ]; then
      "${launch[@]}" "${args[@]}" >"$run.log" 2>&1
    else
      # Each rank writes its own file: time -o under mpirun, one per rank.
      mpirun --oversubscribe --allow-run-as-root -np "$n" bash -c \
        'exec /usr/bin/time -f "peak_rss_kib %M" -o "$0.rss.$OMPI_COMM_WORLD_RANK" "$@"' \
        "$run" "${args[@]}" >"$run.log" 2>&1
    fi
    rss=$(cat "$run".rss* | sed -n 's/^peak_rss_kib //p' | awk '{printf "%s%.0f", sep, $1 / 1024; sep = " "}')
    optim=$(sed -n 's/.*(\(ZeRO-1\|SHARD_GRAD_OP\)): \([0-9.e+]*\) MiB on rank 0.*/\2/p' "$run.log")
    params=$(sed -n 's/^model: \([0-9.]*\)M parameters.*/\1/p' "$run.log" | head -1)
    if [ -z "$optim" ]; then  # unsharded: AdamW's two f32 moments of every parameter
      optim=$(awk -v p="$params" 'BEGIN {printf "%.4g", p * 1e6 * 8 / 1048576}')
    fi
    grad=$(sed -n 's/.*per step): \([0-9.e+]*\) MiB kept on rank 0.*/\1/p' "$run.log")
    if [ -z "$grad" ]; then  # unsharded: one f32 gradient of every parameter
      grad=$(awk -v p="$params" 'BEGIN {printf "%.4g", p * 1e6 * 4 / 1048576}')
    fi
    step_s=$(/usr/bin/python3 -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if "\"loss\"" in l]
print("%.2f" % ((r[-1]["elapsed"] - r[0]["elapsed"]) / (r[-1]["step"] - r[0]["step"]))
      if len(r) > 1 else "-")' \
      "$run/metrics.jsonl" 2>/dev/null || echo -)
    printf "%-6s %-13s %28s %18s %18s %12s\n" "$n" "$strategy" "$rss" "$optim" "$grad" "$step_s"
  done
done
