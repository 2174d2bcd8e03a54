#!/usr/bin/env bash
# Decode sweeps (SPEC.md "efficiency protocol", issue "Generation"), scaled to
# this machine. Writes bench/out/decode_layers.csv + .png (one layer: latency of
# a step at position T-1 against T, each mixer, batch B) and
# bench/out/decode_model.csv + .png (a 4-layer model: tokens/s against batch).
#   bench/sweep_decode.sh [cache f32|bf16] [max_T] [B]   # products in the same dtype as the cache
#   bench/sweep_decode.sh headline      # just the issue's three figures (below), quiet machine please
# The headline figures (issue "Generation"; --dtype bf16: products in bf16 with the weights
# rounded once, Bf16WeightCache; the step's bound then counts 2 bytes per weight):
#   (a) build/rat bench layer --mode decode --layer rat --chunk 16 --ngroups 2 --d-model 2048 \
#         --d-head 128 --seq 4097 --batch 64 --cache-dtype bf16 --dtype bf16   # and --layer attention
#   (b) build/rat bench model --mode throughput --memory-gib 16 --seq 4096 --mixer attention \
#         --mixer hybrid --cache-dtype bf16 --dtype bf16
#   (c) build/rat bench model --mode decode --config configs/experiment/pydoc/rat-small.yaml \
#         --batch 1 --seq 512 --dtype bf16 --repeats 50 --warmup 5
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = headline ]; then
  for dt in f32 bf16; do
    # RAT and attention alternate three times: the host's memory bandwidth
    # drifts (42-84 GB/s seen on one day), and attention's step follows it.
    # Each pair is summarised in one line (ratio, RAT against its byte bound).
    for round in 1 2 3; do
      for layer in rat attention; do
        build/rat bench layer --mode decode --layer "$layer" --chunk 16 --ngroups 2 --d-model 2048 \
          --d-head 128 --seq 4097 --batch 64 --cache-dtype bf16 --dtype "$dt" --repeats 9 --json |
          tee "bench/out/decode_pair_$layer.json"
      done
      /usr/bin/python3 bench/decode_pair_summary.py "$round ($dt products)"
    done
    build/rat bench model --mode throughput --memory-gib 16 --seq 4096 --mixer attention \
      --mixer hybrid --cache-dtype bf16 --dtype "$dt" --repeats 3
    build/rat bench model --mode decode --config configs/experiment/pydoc/rat-small.yaml \
      --batch 1 --seq 512 --dtype "$dt" --repeats 50 --warmup 5
  done
  exit 0
fi
cache=${1:-bf16}
max_t=${2:-16384}
batch=${3:-16}
out=bench/out
mkdir -p "$out"
csv=$out/decode_layers.csv
echo "layer,position,batch,ms,tokens_per_s,bandwidth_fraction,cache_bytes_per_sequence" > "$csv"
for layer in rat attention local_attention rnn; do
  t=512
  while [ "$t" -le "$max_t" ]; do
    build/rat bench layer --mode decode --layer "$layer" --chunk 16 --window 1024 --d-model 1024 \
      --d-head 64 --seq "$t" --batch "$batch" --cache-dtype "$cache" --dtype "$cache" --repeats 5 --json |
      /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(",".join(str(j[k]) for k in ["layer","position","batch","ms","tokens_per_s","bandwidth_fraction","cache_bytes_per_sequence"]))' >> "$csv"
    tail -1 "$csv"
    t=$((t * 2))
  done
done
mcsv=$out/decode_model.csv
echo "mixer,batch,step_ms,tokens_per_s,cache_bytes_per_sequence" > "$mcsv"
for mixer in rat attention hybrid; do
  for b in 1 4 16 64; do
    build/rat bench model --mode decode --mixer "$mixer" --layers 4 --d-model 1024 --d-head 64 \
      --seq 2048 --batch "$b" --cache-dtype "$cache" --dtype "$cache" --repeats 3 --json |
      /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(",".join(str(j[k]) for k in ["mixer","batch","step_ms","tokens_per_s","cache_bytes_per_sequence"]))' >> "$mcsv"
    tail -1 "$mcsv"
  done
done
gnuplot <<GP
set terminal pngcairo size 900,600 noenhanced
set output "$out/decode_layers.png"
set datafile separator ","
set logscale xy
set xlabel "position of the decoded token"
set ylabel "decode step, one layer (ms)"
set title "Single-layer decode step, D 1024, P 64, B $batch, $cache cache and products ($(nproc) cores)"
set key left top
plot for [l in "rat attention local_attention rnn"] "< grep '^".l.",' $csv" using 2:4 with linespoints title l
set output "$out/decode_model.png"
set xlabel "batch"
set ylabel "tokens/s"
set title "4-layer model decode at position 2047, D 1024, $cache cache and products ($(nproc) cores)"
plot for [m in "rat attention hybrid"] "< grep '^".m.",' $mcsv" using 2:4 with linespoints title m
GP
echo "wrote $csv, $mcsv and their PNGs in $out"
