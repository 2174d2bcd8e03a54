#!/usr/bin/env bash
# The project's default corpus: the reStructuredText sources of the Python 3.11
# documentation (Debian package python3.11-doc, ~500 documents, ~11 MB), one
# document per source file, tokenized with a BPE tokenizer trained on them.
#
#   scripts/prepare_corpus.sh [OUT_DIR] [VOCAB_SIZE]     (default data/pydoc 4096)
#
# Writes OUT_DIR/text/**/*.txt (the sources, unchanged), then OUT_DIR/train.bin,
# val.bin, tokenizer.model and tokenize.json via `build/rat tokenize` (each file one
# document); train on it with `rat train CONFIG data.dir=OUT_DIR`.
# Idempotent: finished steps (text/ copied, train.bin + tokenize.json present) are
# skipped; delete OUT_DIR to start over. RAT=path/to/rat overrides build/rat.
set -euo pipefail

OUT_DIR=${1:-data/pydoc}
VOCAB_SIZE=${2:-4096}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RAT=${RAT:-$ROOT/build/rat}
SRC=/usr/share/doc/python3.11/html/_sources

die() { echo "prepare_corpus: $*" >&2; exit 1; }

if [[ -f $OUT_DIR/train.bin && -f $OUT_DIR/tokenize.json ]]; then
  echo "prepare_corpus: $OUT_DIR is already tokenized (delete it to redo)"
else
  # 1. The documents.
  if [[ ! -f $OUT_DIR/text/.complete ]]; then
    if [[ ! -d $SRC ]]; then
      if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "prepare_corpus: installing python3.11-doc" >&2
        apt-get install -y python3.11-doc >/dev/null ||
          { apt-get update >/dev/null && apt-get install -y python3.11-doc >/dev/null; } ||
          die "apt-get install python3.11-doc failed"
      else
        die "$SRC not found: install the Debian package python3.11-doc (apt-get install python3.11-doc, as root)"
      fi
    fi
    [[ -d $SRC ]] || die "$SRC still missing after installing python3.11-doc"
    rm -rf "$OUT_DIR/text"
    mkdir -p "$OUT_DIR/text" || die "cannot create $OUT_DIR/text"
    # foo/bar.rst.txt -> text/foo/bar.txt, contents untouched.
    (cd "$SRC" && find . -type f -name '*.rst.txt' -print0) |
      while IFS= read -r -d '' f; do
        dst=$OUT_DIR/text/${f#./}
        dst=${dst%.rst.txt}.txt
        mkdir -p "$(dirname "$dst")"
        cp "$SRC/$f" "$dst"
      done
    touch "$OUT_DIR/text/.complete"
  fi
  ndocs=$(find "$OUT_DIR/text" -type f -name '*.txt' | wc -l)
  echo "prepare_corpus: $ndocs documents in $OUT_DIR/text ($(du -sh "$OUT_DIR/text" | cut -f1))"

  # 2. Tokenizer and token files.
  [[ -x $RAT ]] || die "$RAT not found: build first (cmake -B build && cmake --build build -j2)"
  "$RAT" tokenize --input "$OUT_DIR/text" --out-dir "$OUT_DIR" --vocab-size "$VOCAB_SIZE" \
    --glob '*.txt'
fi

# The counts, from tokenize.json.
python3 - "$OUT_DIR/tokenize.json" "$OUT_DIR" <<'EOF' || cat "$OUT_DIR/tokenize.json"
import json, sys
j = json.load(open(sys.argv[1]))
print(f"documents: train {j['train_documents']}, val {j['val_documents']}")
print(f"tokens:    train {j['train_tokens']}, val {j['val_tokens']} "
      f"(vocab {j['vocab_size']}, uint{8 * j['num_bytes']})")
print(f"val unigram perplexity: {j['val_unigram_ppl']:.2f}")
print(f"data: {{vocab_size: {j['vocab_size']}, num_bytes: {j['num_bytes']}, "
      f"ignore_input_index: {j['ignore_input_index']}}} (rat train CONFIG data.dir={sys.argv[2]})")
EOF
