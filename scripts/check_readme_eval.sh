#!/usr/bin/env bash
# Runs the README's "Evaluate" block verbatim (the lines between the markers
# `<!-- readme-evaluate: begin -->` and `<!-- readme-evaluate: end -->`, indented
# code, `\` continuations joined) from the repository root, on the main job's
# model runs/rat-small/latest. When that model is missing (CI's clean clone) it
# first prepares the bundled corpus and trains the main job's model briefly
# (TRAIN_STEPS, default 30) with the main job's own command line.
#
#   scripts/check_readme_eval.sh            (CTest readme_evaluate)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TRAIN_STEPS=${TRAIN_STEPS:-30}
die() { echo "check_readme_eval: $*" >&2; exit 1; }

[[ -x build/rat ]] || die "build/rat is missing (bash scripts/build.sh)"
block=$(awk '/<!-- readme-evaluate: begin -->/{on=1; next} /<!-- readme-evaluate: end -->/{on=0} on' README.md)
[[ -n $block ]] || die "README.md has no readme-evaluate block"

if [[ ! -f runs/rat-small/latest/model.safetensors ]]; then
  bash scripts/prepare_corpus.sh data/pydoc >/dev/null
  eos=$(python3 -c 'import json;print(json.load(open("data/pydoc/tokenize.json"))["eos_id"])')
  vocab=$(python3 -c 'import json;print(json.load(open("data/pydoc/tokenize.json"))["vocab_size"])')
  build/rat train configs/experiment/pydoc/rat-small.yaml --run-dir runs/rat-small --overwrite \
    trainer.max_steps="$TRAIN_STEPS" data.ignore_input_index="$eos" data.vocab_size="$vocab" \
    model.embedding.vocab_size="$vocab" >/dev/null
fi

# One command per line once continuations are joined; each must exit 0.
n=0
while IFS= read -r cmd; do
  [[ -z ${cmd// /} ]] && continue
  n=$((n + 1))
  echo "+ $cmd"
  bash -c "set -euo pipefail; $cmd" || die "README command $n failed: $cmd"
done < <(printf '%s\n' "$block" | sed -e 's/^    //' | sed -e ':a' -e '/\\$/N; s/\\\n *//; ta')
[[ $n -ge 5 ]] || die "only $n commands found in the readme-evaluate block"
echo "check_readme_eval: $n README commands ran"
