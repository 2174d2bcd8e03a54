#!/usr/bin/env bash
# The accuracy study (issue 11, item 7): the five families (attention, rat, rnn,
# rat + local attention, attention + local attention) at matched parameter counts,
#   a) trained on the bundled corpus at an equal token budget: validation perplexity
#      (rat eval --data val.bin) and bits per byte (rat eval --text on the validation
#      documents' raw text);
#   b) trained on MQAR (rat tasks mqar) at several (pairs, seq_len) points, the same
#      budget for every family at a point: accuracy on the queried values;
#   c) passkey and single-needle retrieval (rat tasks niah) with the a) models at and
#      beyond their training length, with depth x length heatmaps;
# then writes the report (scripts/accuracy_report.py): docs/accuracy.md for a full run,
# OUT/accuracy.md for --quick.
#
#   scripts/accuracy_study.sh [--quick] [--out DIR] [--report FILE.md] [--jobs N]
#
# Every step is skipped when its output exists (a training run when its train.json
# does), so an interrupted study resumes where it stopped; delete a step's output (or
# the whole OUT dir, default runs/study or runs/study-quick) to redo it. Independent
# trainings run JOBS at a time (default 2), each with OMP_NUM_THREADS=THREADS (default 1).
# A failed step is named on stderr with its command and log, the study goes on with
# what does not depend on it, the report marks what is missing, and the exit status is 1.
# Knobs (environment): RAT (binary, default build/rat), JOBS, THREADS, LM_STEPS,
# MQAR_STEPS, MQAR_POINTS ("pairs:seq_len ..."), MQAR_FILL (zero|random), NIAH_LENGTHS.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

QUICK=0
OUT=
REPORT=
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    --report) REPORT=${2:?--report needs a file}; shift ;;
    --jobs) JOBS=${2:?--jobs needs a number}; shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "accuracy_study: unknown argument '$1' (expected --quick, --out DIR, --report FILE, --jobs N)" >&2; exit 2 ;;
  esac
  shift
done

RAT=${RAT:-build/rat}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
FAMILIES=(attention rat rnn rat_localattention_interleave attention_localattention_interleave)
if [[ $QUICK == 1 ]]; then
  OUT=${OUT:-runs/study-quick}
  REPORT=${REPORT:-$OUT/accuracy.md}
  LM_STEPS=${LM_STEPS:-60}
  LM_VAL_SAMPLES=64          # rat eval --data --max-samples
  VAL_TEXT_BYTES=40000       # the validation text is cut to this many bytes
  MQAR_STEPS=${MQAR_STEPS:-300}
  MQAR_POINTS=${MQAR_POINTS:-"4:32"}
  MQAR_TRAIN=20000
  MQAR_TEST=200
  NIAH_LENGTHS=${NIAH_LENGTHS:-256,512}
  NIAH_DEPTHS=0,0.5,1
  NIAH_SAMPLES=1
else
  OUT=${OUT:-runs/study}
  REPORT=${REPORT:-docs/accuracy.md}
  LM_STEPS=${LM_STEPS:-600}
  LM_VAL_SAMPLES=-1
  VAL_TEXT_BYTES=-1
  MQAR_STEPS=${MQAR_STEPS:-3000}
  # Calibration (attention, 1 thread, batch 64, vocab 128, zero fill, 2026-12-02): lr 1e-3
  # learns (K=4, T=16) by step 1000 and (4, 32) by step 750 (test accuracy 1.000 after 4000
  # steps), lr 1e-2 and 3e-3 stay at the 1/K guess; (8, 32) stays at the guess (0.198) after
  # 4000 steps. So the points vary the pairs and the distance where attention can learn in
  # this budget; MQAR_STEPS buys more.
  MQAR_POINTS=${MQAR_POINTS:-"2:32 4:32 4:64"}
  MQAR_TRAIN=100000
  MQAR_TEST=1000
  NIAH_LENGTHS=${NIAH_LENGTHS:-256,512,1024}  # 128 cannot hold the single-needle prompt + answer
  NIAH_DEPTHS=0,0.25,0.5,0.75,1
  NIAH_SAMPLES=2
fi
MQAR_FILL=${MQAR_FILL:-zero}
MQAR_VOCAB=128
CORPUS=data/pydoc

die() { echo "accuracy_study: $*" >&2; exit 2; }
[[ -x $RAT ]] || die "$RAT not found: build first (cmake -B build && cmake --build build -j2 --target rat)"
[[ $MQAR_FILL == zero || $MQAR_FILL == random ]] || die "MQAR_FILL=$MQAR_FILL: expected zero or random"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "--jobs/JOBS '$JOBS': expected a positive integer"
command -v python3 >/dev/null || die "python3 not found (the report and the setup need it, stdlib only)"
mkdir -p "$OUT"/{times,failed,logs} || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/failed/*  # failures are those of this invocation

# ---- step: one command, skipped when its output exists ------------------------
# step PART NAME OUTPUT LOG CMD...: runs CMD with stdout to OUTPUT.tmp and stderr to
# LOG, renames OUTPUT.tmp to OUTPUT on success; on failure names the command. The
# command line and start/end times go to OUT/times/NAME.json for the report.
step() {
  local part=$1 name=$2 output=$3 log=$4
  shift 4
  if [[ -s $output ]]; then return 0; fi
  mkdir -p "$(dirname "$output")" "$(dirname "$log")"
  local t0 t1 rc
  t0=$(date +%s.%N)
  echo "[$(date -u +%H:%M:%S)] $part $name: $*" >&2
  OMP_NUM_THREADS=$THREADS "$@" >"$output.tmp" 2>"$log"
  rc=$?
  t1=$(date +%s.%N)
  python3 - "$OUT/times/$name.json" "$part" "$name" "$t0" "$t1" "$rc" "$@" <<'EOF'
import json, sys, os
path, part, name, t0, t1, rc, *cmd = sys.argv[1:]
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump({"part": part, "name": name, "start": float(t0), "end": float(t1),
               "seconds": float(t1) - float(t0), "rc": int(rc), "command": cmd}, f)
os.replace(tmp, path)
EOF
  if [[ $rc -ne 0 ]]; then
    local last
    last=$(tail -n 1 "$log" 2>/dev/null)
    printf '%s: exit %d: %s\n  log %s: %s\n' "$name" "$rc" "$*" "$log" "$last" >"$OUT/failed/$name.txt"
    echo "accuracy_study: FAILED $part $name (exit $rc): $*" >&2
    echo "accuracy_study:   $log: $last" >&2
    rm -f "$output.tmp"
    return 1
  fi
  mv "$output.tmp" "$output"
}

# A training run is done when its train.json (the --json summary) exists; a run dir
# without it is an interrupted run and is started again from scratch.
train() {
  local part=$1 name=$2 dir=$3 cfg=$4
  shift 4
  if [[ -s $dir/train.json ]]; then return 0; fi
  rm -rf "$dir/run"
  step "$part" "$name" "$dir/train.json" "$dir/train.log" \
    nice "$RAT" train "$cfg" --run-dir "$dir/run" --json "$@" || return 1
  # Ctrl-C makes rat train save and exit 0 with "interrupted":true: not a finished run.
  if tail -n 1 "$dir/train.json" | grep -q '"interrupted":true'; then
    mv "$dir/train.json" "$dir/train.interrupted.json"
    echo "accuracy_study: $name was interrupted; rerun the study to train it again" >&2
    return 1
  fi
}

# At most JOBS background units at a time.
throttle() { while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n; done; }

T_START=$(date +%s)

# ---- setup: corpus, validation text, task files --------------------------------
if [[ ! -f $CORPUS/train.bin || ! -f $CORPUS/tokenize.json ]]; then
  bash scripts/prepare_corpus.sh "$CORPUS" || die "scripts/prepare_corpus.sh $CORPUS failed"
fi
VOCAB=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["vocab_size"])' "$CORPUS/tokenize.json")
EOS=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["eos_id"])' "$CORPUS/tokenize.json")
mkdir -p "$OUT/data"
# The validation documents: rat tokenize sorts the documents by path and sends
# document i to val.bin when ceil((i+1) f) > ceil(i f), f = val_fraction
# (src/data/corpus.cc is_val_document); their raw bytes, concatenated in that order.
if [[ ! -s $OUT/data/val.txt ]]; then
  python3 - "$CORPUS" "$OUT/data/val.txt" "$VAL_TEXT_BYTES" <<'EOF' || die "cannot write $OUT/data/val.txt"
import json, math, os, sys
corpus, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = json.load(open(os.path.join(corpus, "tokenize.json")))
f = meta["val_fraction"]
docs = []
for d, _, files in os.walk(os.path.join(corpus, "text")):
    docs += [os.path.join(d, n) for n in files if n.endswith(".txt")]
docs.sort(key=lambda p: p.encode())
val = [p for i, p in enumerate(docs) if f > 0 and math.ceil((i + 1) * f) > math.ceil(i * f)]
data = b"".join(open(p, "rb").read() for p in val)
if len(val) != meta["val_documents"] or len(data) != meta["val_text_bytes"]:
    sys.exit(f"validation split mismatch: {len(val)} documents / {len(data)} bytes here, "
             f"tokenize.json says {meta['val_documents']} / {meta['val_text_bytes']}")
if limit > 0:
    data = data[:limit].decode("utf-8", "ignore").encode()
with open(out + ".tmp", "wb") as fh:
    fh.write(data)
os.replace(out + ".tmp", out)
print(f"{len(val)} validation documents, {len(data)} bytes -> {out}")
EOF
fi
for kind in passkey single; do
  hay=()
  [[ $kind == single ]] && hay=(--haystack "$OUT/data/val.txt")
  mnt=8
  [[ $kind == single ]] && mnt=12
  step c "niah-data-$kind" "$OUT/c/data/$kind.jsonl.log" "$OUT/logs/niah-data-$kind.log" \
    "$RAT" tasks niah --tokenizer "$CORPUS/tokenizer.model" --lengths "$NIAH_LENGTHS" \
    --depths "$NIAH_DEPTHS" --kind "$kind" --samples "$NIAH_SAMPLES" --max-new-tokens $mnt \
    "${hay[@]}" --out "$OUT/c/data/$kind.jsonl"
done
fill=()
[[ $MQAR_FILL == zero ]] && fill=(--zero-fill)
for pt in $MQAR_POINTS; do
  k=${pt%%:*} t=${pt##*:}
  step b "mqar-data-k${k}_t$t" "$OUT/b/data/k${k}_t$t.log" "$OUT/logs/mqar-data-k${k}_t$t.log" \
    "$RAT" tasks mqar --vocab $MQAR_VOCAB --pairs "$k" --seq-len "$t" --train $MQAR_TRAIN \
    --test $MQAR_TEST --seed 0 "${fill[@]}" --out "$OUT/b/data/k${k}_t$t"
done

# ---- a + c: one unit per family (train, then its evaluations) -------------------
lm_unit() {
  local fam=$1 d=$OUT/a/$fam ok=0
  train a "lm-train-$fam" "$d" "configs/study/lm-$fam.yaml" trainer.max_steps="$LM_STEPS" \
    data.vocab_size="$VOCAB" model.embedding.vocab_size="$VOCAB" data.ignore_input_index="$EOS" \
    data.train.tokenized_file_path="$CORPUS/train.bin" data.val.tokenized_file_path="$CORPUS/val.bin" \
    trainer.save_dir="$d/run" || return 1
  local m=$d/run/latest
  step a "lm-evaldata-$fam" "$d/eval_data.json" "$d/eval_data.log" \
    "$RAT" eval --model "$m" --data "$CORPUS/val.bin" --max-samples "$LM_VAL_SAMPLES" --json || ok=1
  step a "lm-evaltext-$fam" "$d/eval_text.json" "$d/eval_text.log" \
    "$RAT" eval --model "$m" --text "$OUT/data/val.txt" --json || ok=1
  local kind
  for kind in passkey single; do
    [[ -s $OUT/c/data/$kind.jsonl ]] || { ok=1; continue; }
    step c "niah-$kind-$fam" "$OUT/c/$fam/$kind.json" "$OUT/c/$fam/$kind.log" \
      "$RAT" eval --model "$m" --task niah "$OUT/c/data/$kind.jsonl" \
      --out "$OUT/c/$fam/$kind.preds.jsonl" --heatmap "$OUT/c/$fam/$kind.png" --json || ok=1
  done
  return $ok
}

mqar_unit() {
  local fam=$1 k=$2 t=$3 p=k${2}_t$3
  local d=$OUT/b/$p/$fam prefix=$OUT/b/data/$p
  [[ -s $prefix.log ]] || return 1
  train b "mqar-train-$p-$fam" "$d" "configs/study/mqar-$fam.yaml" trainer.max_steps="$MQAR_STEPS" \
    data.seq_len="$t" data.vocab_size=$MQAR_VOCAB model.embedding.vocab_size=$MQAR_VOCAB \
    data.train.tokenized_input_path="$prefix.train.inputs.bin" \
    data.train.tokenized_label_path="$prefix.train.labels.bin" \
    data.val.tokenized_input_path="$prefix.test.inputs.bin" \
    data.val.tokenized_label_path="$prefix.test.labels.bin" trainer.save_dir="$d/run" || return 1
  step b "mqar-eval-$p-$fam" "$d/eval.json" "$d/eval.log" \
    "$RAT" eval --model "$d/run/latest" --task mqar "$prefix" --json
}

# The longest units first (the language models), then MQAR, so the JOBS slots stay
# busy; each unit is sequential inside.
for fam in "${FAMILIES[@]}"; do
  throttle
  lm_unit "$fam" &
done
for pt in $MQAR_POINTS; do
  for fam in "${FAMILIES[@]}"; do
    throttle
    mqar_unit "$fam" "${pt%%:*}" "${pt##*:}" &
  done
done
wait

# ---- figures that need every run ------------------------------------------------
runs=()
for fam in "${FAMILIES[@]}"; do
  [[ -s $OUT/a/$fam/train.json ]] && runs+=("$OUT/a/$fam/run")
done
if [[ ${#runs[@]} -gt 0 ]]; then
  # rat plot labels each curve by its run directory's name: link them by family.
  mkdir -p "$OUT/fig/runs"
  labels=()
  for r in "${runs[@]}"; do
    fam=$(basename "$(dirname "$r")")
    ln -sfn "$r" "$OUT/fig/runs/$fam"
    labels+=("$OUT/fig/runs/$fam")
  done
  rm -f "$OUT/fig/lm_loss.png" "$OUT/fig/lm_val_ppl.png"
  step a "plot-loss" "$OUT/fig/lm_loss.png.log" "$OUT/logs/plot-loss.log" \
    "$RAT" plot "${labels[@]}" --out "$OUT/fig/lm_loss.png" --title "training loss (bundled corpus)"
  step a "plot-valppl" "$OUT/fig/lm_val_ppl.png.log" "$OUT/logs/plot-valppl.log" \
    "$RAT" plot "${labels[@]}" --metric val_ppl --log-y --out "$OUT/fig/lm_val_ppl.png" \
    --title "validation perplexity"
  rm -f "$OUT/fig/lm_loss.png.log" "$OUT/fig/lm_val_ppl.png.log"  # replotted every time
fi

# ---- settings, machine, report --------------------------------------------------
T_END=$(date +%s)
python3 - "$OUT/study.json" <<EOF
import json, os, subprocess, sys
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
out = sys.argv[1]
prev = {}
if os.path.exists(out):
    try:
        prev = json.load(open(out))
    except ValueError:
        prev = {}
inv = prev.get("invocations", [])
inv.append({"start": $T_START, "end": $T_END, "seconds": $T_END - $T_START})
s = {
    "quick": $QUICK == 1, "out": "$OUT", "jobs": $JOBS, "threads": $THREADS,
    "families": "${FAMILIES[*]}".split(),
    "lm": {"steps": $LM_STEPS, "corpus": "$CORPUS", "vocab": $VOCAB, "val_samples": $LM_VAL_SAMPLES,
           "val_text_bytes_limit": $VAL_TEXT_BYTES},
    "mqar": {"steps": $MQAR_STEPS, "points": [[int(x) for x in p.split(":")] for p in "$MQAR_POINTS".split()],
             "vocab": $MQAR_VOCAB, "train": $MQAR_TRAIN, "test": $MQAR_TEST, "fill": "$MQAR_FILL"},
    "niah": {"lengths": [int(x) for x in "$NIAH_LENGTHS".split(",")], "depths": "$NIAH_DEPTHS",
             "samples": $NIAH_SAMPLES},
    "invocations": inv,
    "date": sh("date -u '+%Y-%m-%d %H:%M UTC'"),
    "git": sh("git rev-parse --short HEAD"),
    "cpu": sh("lscpu | sed -n 's/^Model name: *//p' | head -n 1"),
    "nproc": sh("nproc"),
    "command": "scripts/accuracy_study.sh" + (" --quick" if $QUICK == 1 else ""),
}
with open(out + ".tmp", "w") as f:
    json.dump(s, f, indent=1)
os.replace(out + ".tmp", out)
EOF
python3 scripts/accuracy_report.py "$OUT" --out "$REPORT" || { echo "accuracy_study: the report failed (python3 scripts/accuracy_report.py $OUT --out $REPORT)" >&2; exit 1; }
echo "accuracy_study: report $REPORT; wall $((T_END - T_START)) s this run" >&2
if compgen -G "$OUT/failed/*.txt" >/dev/null; then
  echo "accuracy_study: these steps failed (the report marks what they would have given):" >&2
  cat "$OUT"/failed/*.txt >&2
  exit 1
fi
