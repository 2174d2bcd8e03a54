#!/usr/bin/env bash
# The paper's single-layer training sweep (SPEC.md "efficiency protocol"),
# scaled to this machine: D 1024, P 64, B 1, T from 1K to max_T, RAT L 16 vs
# attention vs local attention (window 1024) vs RNN. Writes
# bench/out/layers_<dtype>.csv and a log-log PNG of time against T
# (bench/out/layers_<dtype>.png); when both dtypes' CSVs exist, also
# bench/out/layers.png with f32 (solid) and bf16 (dashed) together.
#   bench/sweep_layers.sh [f32|bf16] [max_T]    run the sweep, then plot
#   bench/sweep_layers.sh plot                  re-plot from the existing CSVs
# Long: attention at T 65536 takes minutes per step on 2 cores (each point is
# one warm-up plus 3 timed steps, 1 from T 16384 on). Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
mkdir -p "$out"

# One PNG from the CSVs given (dtype:csv pairs): time vs T, log-log, and on the right the
# speed-up of every layer over attention at the same T and dtype.
plot() {
  local png=$1 title=$2
  shift 2
  local series="" ratios="" dt csv dash
  for pair in "$@"; do
    dt=${pair%%:*} csv=${pair#*:}
    dash=1; [ "$dt" = bf16 ] && dash=2
    for l in rat attention local_attention rnn; do
      series+="\"< grep '^$l,' $csv\" using 2:3 with linespoints ls $(lsof "$l") dt $dash title '$l $dt', "
      [ "$l" = attention ] && continue
      # attention ms / layer ms at the same T.
      local rf=$out/.ratio_${dt}_$l.csv
      awk -F, -v l="$l" '$1 == "attention" {a[$2] = $3} $1 == l {m[$2] = $3}
        END {for (t in m) if (t in a) print t "," a[t] / m[t]}' "$csv" | sort -t, -k1,1n > "$rf"
      ratios+="\"$rf\" using 1:2 with linespoints ls $(lsof "$l") dt $dash title '$l $dt', "
    done
  done
  gnuplot <<GP
set terminal pngcairo size 1400,650 font ",11" noenhanced
set output "$png"
set datafile separator ","
set style line 1 lc rgb "#d62728" lw 2 pt 7
set style line 2 lc rgb "#1f77b4" lw 2 pt 5
set style line 3 lc rgb "#2ca02c" lw 2 pt 9
set style line 4 lc rgb "#9467bd" lw 2 pt 11
set multiplot layout 1,2 title "$title"
set logscale xy 2
set format x "%.0f"
set grid
set key left top Left reverse box opaque samplen 3
set xlabel "sequence length T (tokens)"
set ylabel "train step (forward + backward), one layer, ms"
set title "time per step (log-log)"
set logscale y 10
plot ${series%, }
set title "speed-up over attention (attention ms / layer ms)"
set ylabel "x faster than attention"
set logscale y 10
set key left top Left reverse box opaque samplen 3
plot ${ratios%, }, 5 with lines lc rgb "gray" dt 3 title "5x"
unset multiplot
GP
  echo "wrote $png"
}
# Line style per layer.
lsof() { case $1 in rat) echo 1 ;; attention) echo 2 ;; local_attention) echo 3 ;; *) echo 4 ;; esac; }

machine_of() { /usr/bin/python3 -c 'import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(r[0]["machine"] if r else "")' "$1"; }
config="D 1024, P 64, B 1, RAT L 16, local window 1024"

if [ "${1:-}" != plot ]; then
  dtype=${1:-f32}
  max_t=${2:-65536}
  csv=$out/layers_$dtype.csv
  echo "layer,seq,ms,gflops,gemm_gflops,gemm_fraction,max_rss_mib,dtype,machine" > "$csv"
  for layer in rat attention local_attention rnn; do
    t=1024
    while [ "$t" -le "$max_t" ]; do
      # Long sequences: one timed run after a warm-up (the first call pays page faults on
      # gigabytes of fresh buffers); attention at T >= 32K skips the warm-up, whose cost is
      # a few percent of its 20-90 s step, to keep the sweep under 10 minutes.
      reps=3; warm=1; [ "$t" -ge 16384 ] && reps=1
      [ "$layer" = attention ] && [ "$t" -ge 32768 ] && warm=0
      build/rat bench layer --layer "$layer" --chunk 16 --window 1024 --d-model 1024 --d-head 64 \
        --seq "$t" --batch 1 --dtype "$dtype" --mode train --repeats $reps --warmup $warm --json |
        /usr/bin/python3 -c 'import csv,json,sys; j=json.loads(sys.stdin.read()); csv.writer(sys.stdout, lineterminator="\n").writerow([j[k] for k in ["layer","seq","ms","gflops","gemm_gflops","gemm_fraction","max_rss_mib","dtype","machine"]])' >> "$csv"
      tail -1 "$csv"
      t=$((t * 2))
    done
  done
fi

have=()
for dt in f32 bf16; do
  csv=$out/layers_$dt.csv
  [ -f "$csv" ] || continue
  have+=("$dt:$csv")
  plot "$out/layers_$dt.png" "Single layer train step, $config, $dt — $(machine_of "$csv")" "$dt:$csv"
done
if [ ${#have[@]} -eq 2 ]; then
  plot "$out/layers.png" "Single layer train step, $config, f32 (solid) and bf16 (dashed) — $(machine_of "$out/layers_f32.csv")" "${have[@]}"
fi
