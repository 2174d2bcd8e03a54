#!/usr/bin/env bash
# The memory plan (`rat train --dry-run`, docs/scaling.md "Memory plan: --dry-run")
# against measured peak RSS on the authors' rat-xl width (D 2048, d_head 128,
# vocab 32000) cut to LAYERS blocks, T tokens, micro-batch 1, a few steps on
# random tokens: f32; bf16 (the file's dtype); bf16 with block recomputation;
# and ZERO1 over 2 local ranks (mpirun --oversubscribe), without and with a
# checkpoint at the end. Peak RSS is each
# process's VmHWM from /usr/bin/time; memory figures hold on a busy machine.
#
#   bench/memory_plan.sh [LAYERS (default 2)] [T (default 256)] [STEPS (default 2)]
set -euo pipefail
cd "$(dirname "$0")/.."
layers=${1:-2}
T=${2:-256}
steps=${3:-2}
out=bench/out/memory_plan
rm -rf "$out"
mkdir -p "$out"
/usr/bin/python3 - "$out" "$T" "$steps" <<'PY'
import random, struct, sys
out, T, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
for split, n in (("train", 4 * steps * (T + 1)), ("val", 2 * (T + 1))):
    with open(f"{out}/{split}.bin", "wb") as f:
        f.write(struct.pack(f"<{n}H", *(rng.randrange(3, 32000) for _ in range(n))))
PY
echo "rat-xl width, $layers layers, T $T, micro-batch 1 per rank, $steps steps"
printf "| %-34s | %10s | %26s | %8s |\n" case "plan per rank (MiB)" "peak RSS per rank (MiB)" "plan - RSS"
printf "|%s|%s|%s|%s|\n" "---" "---" "---" "---"
run_case() {  # name ranks overrides...
  local name=$1 n=$2
  shift 2
  local run="$out/${name// /_}"
  local args=(train experiment=fineweb_edu/rat-xl --run-dir "$run" --threads 1
              model.backbone.num_layers="$layers" data.seq_len="$T" data.batch_size=1
              data.global_batch_size="$n" data.train.tokenized_file_path="$out/train.bin"
              data.val.tokenized_file_path="$out/val.bin" data.val_samples=0 trainer.max_steps="$steps" trainer.log_interval=1
              trainer.save_checkpoint="${ckpt:-false}" trainer.load_checkpoint=false "$@")
  local plan
  plan=$(build/rat "${args[@]}" --dry-run --json --ranks "$n" |
         /usr/bin/python3 -c 'import json,sys; print(",".join(str(p["total_bytes"]) for p in json.load(sys.stdin)["plans"]))')
  if [ "$n" = 1 ]; then
    /usr/bin/time -f "%M" -o "$run.rss" build/rat "${args[@]}" --quiet >"$run.log" 2>&1
  else
    mpirun --oversubscribe --allow-run-as-root -np "$n" bash -c \
      'exec /usr/bin/time -f "%M" -o "$0.rss.$OMPI_COMM_WORLD_RANK" "$@"' \
      "$run" build/rat "${args[@]}" --quiet >"$run.log" 2>&1
  fi
  /usr/bin/python3 - "$name" "$plan" "$run" <<'PY'
import glob, sys
name, run = sys.argv[1], sys.argv[3]
plans = [int(b) for b in sys.argv[2].split(",")]  # per rank, rank 0 first
rss = [int(open(f).read().split()[-1]) * 1024 for f in sorted(glob.glob(run + ".rss*"))]
mib = lambda xs: ", ".join(f"{x / 2**20:.0f}" for x in xs)
err = ", ".join(f"{100 * (p - r) / r:+.1f}%" for p, r in zip(plans, rss))
print(f"| {name:34} | {mib(plans):>10} | {mib(rss):>26} | {err} |")
PY
}
run_case "f32" 1 trainer.dtype=float32
run_case "bf16" 1
run_case "bf16, activation_checkpointing block" 1 trainer.activation_checkpointing=block
run_case "bf16, ZERO1, 2 ranks" 2 trainer.fsdp.sharding_strategy=ZERO1
# Rank 0 gathers the whole optimizer state for the checkpoint at the end.
ckpt=true run_case "bf16, ZERO1, 2 ranks, checkpoint" 2 trainer.fsdp.sharding_strategy=ZERO1 \
  trainer.save_interval=1.0
