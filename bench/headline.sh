#!/usr/bin/env bash
# The issues' headline figures on this machine, each printed with the ceiling
# it is judged against (GEMM rate or read bandwidth, measured by the same
# program in the same run). Run on a quiet machine; the log is
# bench/out/headline_<section>.log.
#   bench/headline.sh [engine|train|decode|mpi|all]    (default all)
#     engine  single layers, train mode (D 1024, P 64, B 1): RAT T 4096 vs the GEMM
#             rate, attention T 16384, RAT vs attention at T 32768 (f32, bf16), RAT T 65536 memory
#     train   MFU of a ~16M-parameter RAT (T 1024) in f32 and bf16; 110M RAT at T 4096 memory
#             (training, and rat eval of its checkpoint)
#     decode  bench/sweep_decode.sh headline (single-layer decode, max throughput, batch 1)
#     mpi     bench/mpi_scaling.sh (1 vs 2 ranks, communication not hidden)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
mkdir -p bench/out
rat=build/rat
layer=(--d-model 1024 --d-head 64 --batch 1 --mode train)

engine() {
  $rat bench gemm
  $rat bench gemm --dtype bf16
  $rat bench layer --layer rat --chunk 16 --seq 4096 "${layer[@]}" --repeats 3
  $rat bench layer --layer attention --seq 16384 "${layer[@]}" --repeats 1 --warmup 1
  for dt in f32 bf16; do
    $rat bench layer --layer rat --chunk 16 --seq 32768 "${layer[@]}" --dtype $dt --repeats 2
    $rat bench layer --layer attention --seq 32768 "${layer[@]}" --dtype $dt --repeats 1 --warmup 0
  done
  $rat bench layer --layer rat --chunk 16 --seq 65536 "${layer[@]}" --repeats 1 --warmup 0
}

train() {
  [ -f data/pydoc/train.bin ] || bash scripts/prepare_corpus.sh data/pydoc
  # ~16M parameters: D 512, 4 layers, FFN 2048, vocab 4096, T 1024, 4 sequences per step.
  for dt in float32 bfloat16; do
    $rat train configs/experiment/pydoc/rat-small.yaml --run-dir bench/out/mfu_$dt \
      data.seq_len=1024 data.batch_size=4 data.global_batch_size=4 model.backbone.d_model=512 \
      model.backbone.hidden_cell.d_ffn=2048 trainer.max_steps=12 trainer.log_interval=4 \
      trainer.eval_interval=0 data.val_samples=0 trainer.save_checkpoint=false trainer.dtype=$dt |
      grep -E "^model:|^MFU|^step|^done"
  done
  /usr/bin/time -f "peak RSS %M KiB, wall %e s" $rat train configs/experiment/pydoc/rat-small.yaml \
    --run-dir bench/out/rat100m data.seq_len=4096 data.batch_size=1 data.global_batch_size=1 \
    data.vocab_size=32000 model.embedding.vocab_size=32000 model.backbone.num_layers=12 \
    model.backbone.d_model=768 model.backbone.hidden_cell.d_ffn=3072 trainer.max_steps=2 \
    trainer.log_interval=1 trainer.eval_interval=0 data.val_samples=0 \
    trainer.save_checkpoint=true trainer.save_interval=1.0 trainer.dtype=bfloat16 |
    grep -E "^model:|^step"
  # Scoring keeps one layer's activations (Model kScore): rat eval's peak RSS on that model at
  # T 4096 against weights + one layer + a logits block (README "Architecture").
  /usr/bin/time -f "rat eval peak RSS %M KiB, wall %e s" $rat eval --model bench/out/rat100m/latest \
    --data data/pydoc/val.bin --seq-len 4096 --batch-size 1 --json | tail -1
}

run() { echo "== $1 ($(date -u +%H:%M), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"; "$@"; }
for s in engine train decode mpi; do
  [ "$what" = all ] || [ "$what" = "$s" ] || continue
  case $s in
    engine) run engine ;;
    train) run train ;;
    decode) run bash bench/sweep_decode.sh headline ;;
    mpi) run bash bench/mpi_scaling.sh 60 ;;
  esac 2>&1 | tee bench/out/headline_$s.log
done
