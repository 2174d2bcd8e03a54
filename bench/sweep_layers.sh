#!/usr/bin/env bash
# The paper's single-layer training sweep (SPEC.md "efficiency protocol"),
# scaled to this machine: D 1024, P 64, B 1, T from 1K to 64K, RAT L 16 vs
# attention vs local attention vs RNN. Writes bench/out/layers_<dtype>.csv and
# a log-log PNG of time against T.
#   bench/sweep_layers.sh [f32|bf16] [max_T]
set -euo pipefail
cd "$(dirname "$0")/.."
dtype=${1:-f32}
max_t=${2:-65536}
out=bench/out
mkdir -p "$out"
csv=$out/layers_$dtype.csv
echo "layer,seq,ms,gflops,gemm_gflops,gemm_fraction,max_rss_mib" > "$csv"
for layer in rat attention local_attention rnn; do
  t=1024
  while [ "$t" -le "$max_t" ]; do
    reps=3; [ "$t" -ge 16384 ] && reps=1
    build/rat bench layer --layer "$layer" --chunk 16 --window 1024 --d-model 1024 --d-head 64 \
      --seq "$t" --batch 1 --dtype "$dtype" --mode train --repeats $reps --warmup 1 --json |
      /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(",".join(str(j[k]) for k in ["layer","seq","ms","gflops","gemm_gflops","gemm_fraction","max_rss_mib"]))' >> "$csv"
    tail -1 "$csv"
    t=$((t * 2))
  done
done
gnuplot <<GP
set terminal pngcairo size 900,600
set output "$out/layers_$dtype.png"
set datafile separator ","
set logscale xy
set xlabel "sequence length T (tokens)"
set ylabel "train step time, one layer (ms)"
set title "Single layer forward+backward, D 1024, P 64, B 1, $dtype ($(nproc) cores)"
set key left top
plot for [l in "rat attention local_attention rnn"] "< grep '^".l.",' $csv" using 2:3 with linespoints title l
GP
echo "wrote $csv and $out/layers_$dtype.png"
