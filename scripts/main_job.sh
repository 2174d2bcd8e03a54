#!/usr/bin/env bash
# The main job: install, build, prepare the bundled corpus (Python 3.11 docs
# from Debian's python3.11-doc), train the small RAT model, report validation
# perplexity against the corpus's unigram perplexity, evaluate, and generate a sample.
# --quick trains 200 steps (about a minute) instead of 1000 (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=1000
if [ "${1:-}" = "--quick" ]; then steps=200; fi
bash scripts/install_deps.sh
bash scripts/build.sh
bash scripts/prepare_corpus.sh data/pydoc
rm -rf runs/rat-small
# data.dir takes the token files, vocab size, id width and end-of-document id
# from data/pydoc/tokenize.json (README "Train on your own text").
build/rat train configs/experiment/pydoc/rat-small.yaml --run-dir runs/rat-small \
  trainer.max_steps=$steps data.dir=data/pydoc
echo
echo "unigram perplexity of the validation split (train unigram, add-one):" \
  "$(python3 -c 'import json;print(round(json.load(open("data/pydoc/tokenize.json"))["val_unigram_ppl"],2))')"
build/rat eval --model runs/rat-small/latest --data data/pydoc/val.bin --max-samples 256
echo
echo "sample (greedy continuation from runs/rat-small/latest, which carries tokenizer.model):"
build/rat generate --model runs/rat-small/latest --prompt "The Python interpreter" \
  --max-new-tokens 48 --greedy --repetition-penalty 1.2
