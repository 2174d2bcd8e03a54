#!/usr/bin/env bash
# Peak resident memory (VmHWM, and VmRSS / RssFile polled from /proc) of
# `rat generate` loading a model and greedily decoding 8 tokens, for
# random-weight models of 110M (12 layers, D 768) and 1.3B (24 layers, D 2048,
# the authors' xl width) parameters, vocab 32000, stored as F32, as BF16 and
# as F32 with the tied head too (as a torch state_dict keeps it), run with --dtype f32 and --dtype bf16. Several binaries can be compared
# (before/after a change); the generated ids are printed so that equal output
# can be checked across binaries.
#
#   bench/load_rss.sh [MODELS_DIR=/tmp/rat_load_rss] [NAME=BINARY ...]
#   bench/load_rss.sh /tmp/rat_load_rss before=/tmp/rat_old after=build/rat
#   SIZES=110m FILES=F32+head bench/load_rss.sh   # some sizes / file kinds only
#
# Models are written by bench/load_rss.py on first use (the 1.3B F32 file is
# 5.2 GB; writing it takes minutes). Runs one at a time, OMP_NUM_THREADS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/rat_load_rss}
shift || true
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("rat=build/rat")
sizes=${SIZES:-"110m 1.3b"}
py=/usr/bin/python3

echo "machine: $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
  "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
# VmHWM: the kernel's high-water mark (sampled at unmaps and exit); polled:
# the largest VmRSS / RssFile read from /proc every 0.5 ms (RssFile includes
# the binary and its libraries, about 18 MiB).
printf '%-6s %-8s %7s %8s %-7s %-5s %6s %6s %7s  %s\n' model file params file_MiB binary dtype \
  VmHWM polled RssFile "ids (MiB columns)"
for size in $sizes; do
  case $size in
    110m) shape="--layers 12 --d-model 768" ;;
    1.3b) shape="--layers 24 --d-model 2048 --d-head 128 --chunk 16" ;;
    *) echo "unknown size $size (110m, 1.3b)" >&2; exit 2 ;;
  esac
  for fdt in ${FILES:-F32 BF16 F32+head}; do
    # F32+head: also stores head.lm_head.weight (= the embedding), as a tied
    # model's torch state_dict does; the loader compares it with the embedding.
    m=$dir/$size-${fdt,,}
    m=${m/+/-}
    if [ ! -f "$m/model.safetensors" ]; then
      extra=""
      [ "${fdt#*+}" = head ] && extra=--write-head
      # shellcheck disable=SC2086
      $py bench/load_rss.py --out "$m" $shape --dtype ${fdt%+*} $extra >&2
    fi
    params=$(awk '/num_layers/ {L=$2} /d_model/ {D=$2} /vocab_size/ {V=$2} /d_head/ {P=$2}
      END {printf "%.0fM", (L * (D * (3*D + 4*P) + D*D + 8*D*D + 3*D) + V*D + D) / 1e6}' \
      "$m/config.yaml")
    fmib=$(($(stat -c %s "$m/model.safetensors") / 1048576))
    for b in "${bins[@]}"; do
      name=${b%%=*} exe=${b#*=}
      for dt in f32 bf16; do
        t=$(mktemp)
        ids=$(OMP_NUM_THREADS=1 $py bench/load_rss.py poll "$exe" generate --model "$m" \
          --prompt-ids "5 17 9 33 41 7 100 200" --greedy -n 8 --ignore-eos --dtype $dt 2>"$t" |
          grep '^ids:' | cut -d' ' -f2- || true)
        read -r hwm rss rssf < <(awk '/^rss / {printf "%d %d %d\n", $2/1024, $3/1024, $4/1024}' "$t")
        [ -n "$ids" ] || { echo "FAILED: $exe on $m" >&2; cat "$t" >&2; }
        rm -f "$t"
        printf '%-6s %-8s %7s %8s %-7s %-5s %6s %6s %7s  %s\n' "$size" "$fdt" "$params" "$fmib" \
          "$name" "$dt" "$hwm" "$rss" "$rssf" "$ids"
      done
    done
  done
done
