#!/usr/bin/env bash
# Runs the README's "Train on your own text" block verbatim (the lines between the markers
# `<!-- readme-own-data: begin -->` and `<!-- readme-own-data: end -->`, indented code, `\`
# continuations joined) from the repository root: a plain text file -> `rat tokenize` ->
# `rat train CONFIG data.dir=...` -> perplexity -> generation. Each command must exit 0; then
# the outputs the block promises are checked (documents on both sides of the split, a model
# directory with the text's tokenizer, a perplexity line).
#
#   scripts/check_readme_own_data.sh            (CTest readme_own_data)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
die() { echo "check_readme_own_data: $*" >&2; exit 1; }

[[ -x build/rat ]] || die "build/rat is missing (bash scripts/build.sh)"
block=$(awk '/<!-- readme-own-data: begin -->/{on=1; next} /<!-- readme-own-data: end -->/{on=0} on' README.md)
[[ -n $block ]] || die "README.md has no readme-own-data block"

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
n=0
while IFS= read -r cmd; do
  [[ -z ${cmd// /} ]] && continue
  n=$((n + 1))
  echo "+ $cmd"
  bash -c "set -euo pipefail; $cmd" 2>&1 | tee -a "$log" || die "README command $n failed: $cmd"
done < <(printf '%s\n' "$block" | sed -e 's/^    //' | sed -e ':a' -e '/\\$/N; s/\\\n *//; ta')
[[ $n -ge 4 ]] || die "only $n commands found in the readme-own-data block"

# What the block's text says it produces.
data=$(printf '%s\n' "$block" | grep -o -- '--out-dir [^ ]*' | head -1 | cut -d' ' -f2)
model=$(printf '%s\n' "$block" | grep -o -- '--model [^ ]*' | head -1 | cut -d' ' -f2)
python3 - "$data/tokenize.json" <<'PY' || die "$data/tokenize.json: expected documents on both sides of the split"
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["train_documents"] > 1 and j["val_documents"] >= 1 else 1)
PY
[[ -f $model/model.safetensors && -f $model/tokenizer.model ]] ||
  die "$model: expected a model directory with the text's tokenizer.model"
cmp -s "$model/tokenizer.model" "$data/tokenizer.model" || die "$model/tokenizer.model is not $data's"
grep -qi 'ppl' "$log" || die "no perplexity in the output"
echo "check_readme_own_data: $n README commands ran"
