"""Issue 14 item 1, "own data in two commands": each friction point of the issue, end to end
through the `rat` binary (every check here fails on the main branch before the fix):

- one big text file goes wholly to validation ("leaves none of the 1 documents"): now split
  into documents at blank lines (named file, positional input, stdin) or at --doc-separator;
- a JSONL file is swallowed raw, JSON syntax included: now its "text" records (--text-key),
  the same token files as the plain texts, a bad line named FILE:LINE;
- a too-small vocab gives sentencepiece's message about a `--character_coverage` flag rat lacks:
  now rat's flags and the size that works;
- training one's own data took 14 overrides (both vocab sizes among them): now
  `rat train CONFIG data.dir=DIR` takes paths, vocab, id width and eos from tokenize.json;
- data paths resolved against the current directory only, so run from elsewhere rat printed a
  48-line config and then failed: now relative paths are also found next to the config and in
  its project, and a missing one is an error (key, path, places tried) before anything is printed.

usage: own_data_check.py RAT WORKDIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "experiment", "pydoc", "rat-small.yaml")
failures = []
# A tiny model and run, so each training takes a second; none of them is about the data.
TINY = ["model.backbone.num_layers=1", "model.backbone.d_model=32", "model.backbone.seq_cell.d_head=16",
        "model.backbone.hidden_cell.d_ffn=64", "data.seq_len=32", "data.batch_size=2",
        "data.global_batch_size=2", "data.val_samples=2", "trainer.max_steps=2", "--quiet"]


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def rat(*args, cwd=WORK, stdin=None):
    return subprocess.run([RAT, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          input=stdin, env=dict(os.environ, OMP_NUM_THREADS="1"))


def ids(path):
    b = open(path, "rb").read()
    return [int.from_bytes(b[i:i + 2], "little") for i in range(0, len(b), 2)]


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
rng = random.Random(14)
WORDS = "the a rat model chunk state token gate query key value layer of and is to in for".split()
paragraphs = [" ".join(rng.choice(WORDS) for _ in range(30 + rng.randrange(30))) + "."
              for _ in range(40)]
with open(os.path.join(WORK, "book.txt"), "w") as f:
    f.write("\n\n".join(paragraphs) + "\n")

# 1. One big text file: 40 paragraphs, 2 of them (ceil(40 * 0.05)) held out.
p = rat("tokenize", "--input", "book.txt", "--out-dir", "book", "--vocab-size", 350)
check(p.returncode == 0, "tokenize --input book.txt: " + p.stderr)
rep = json.load(open(os.path.join(WORK, "book", "tokenize.json"))) if p.returncode == 0 else {}
check((rep.get("train_documents"), rep.get("val_documents")) == (38, 2),
      "book.txt is 40 documents, 38 train / 2 val: %s" % rep)
check("data.dir=book" in p.stdout, "tokenize says how to train on it: " + p.stdout)
# A tokenizer from a directory of whole files (as main has always read them) for what follows.
os.makedirs(os.path.join(WORK, "plain"))
for i, t in enumerate(paragraphs[:8]):
    with open(os.path.join(WORK, "plain", "p%d.txt" % i), "w") as g:
        g.write(t + "\nsecond line")
p = rat("tokenize", "--input", "plain", "--out-dir", "plain_tok", "--vocab-size", 300, "--val-fraction", 0.25)
check(p.returncode == 0, "tokenize a directory: " + p.stderr)
tok = os.path.join(WORK, "plain_tok", "tokenizer.model")
# The same book positionally, through stdin, and at a separator.
q = rat("tokenize", "book.txt", "--out-dir", "pos", "--tokenizer", tok)
r = rat("tokenize", "-", "--out-dir", "stdin", "--tokenizer", tok, stdin=open(os.path.join(WORK, "book.txt")).read())
check(q.returncode == 0 and r.returncode == 0, "positional / stdin: " + q.stderr + r.stderr)
if q.returncode == 0 and r.returncode == 0:
    check(json.load(open(os.path.join(WORK, "stdin", "tokenize.json")))["train_documents"] == 38,
          "stdin is split like the file")
    check(open(os.path.join(WORK, "stdin", "train.bin"), "rb").read() ==
          open(os.path.join(WORK, "pos", "train.bin"), "rb").read(), "stdin: the same train.bin")
with open(os.path.join(WORK, "sep.txt"), "w") as f:
    f.write("<|endoftext|>".join(paragraphs[:10]))
q = rat("tokenize", "--input", "sep.txt", "--doc-separator", "<|endoftext|>", "--out-dir", "sep", "--tokenizer", tok)
check(q.returncode == 0 and json.load(open(os.path.join(WORK, "sep", "tokenize.json")))["train_documents"] == 9,
      "--doc-separator: 10 documents: " + q.stderr)

# 2. JSON lines: the records' texts, the same ids as the same texts as whole files.
with open(os.path.join(WORK, "hf.jsonl"), "w") as f:
    for i, t in enumerate(paragraphs[:8]):
        f.write(json.dumps({"id": i, "text": t + "\nsecond line"}) + "\n")
# (--val-fraction 0: every document in train.bin, whatever the reader makes of the file.)
q = rat("tokenize", "--input", "hf.jsonl", "--out-dir", "hf", "--tokenizer", tok, "--val-fraction", 0)
r = rat("tokenize", "--input", "plain", "--out-dir", "plain_ids", "--tokenizer", tok, "--val-fraction", 0)
check(q.returncode == 0 and r.returncode == 0, "tokenize hf.jsonl / plain: " + q.stderr + r.stderr)
if q.returncode == 0 and r.returncode == 0:
    check(ids(os.path.join(WORK, "hf", "train.bin")) == ids(os.path.join(WORK, "plain_ids", "train.bin")),
          "hf.jsonl's train.bin holds the 8 texts only, not the JSON around them")
with open(os.path.join(WORK, "bad.jsonl"), "w") as f:
    f.write('{"text": "fine"}\n{"content": "no text key"}\n')
q = rat("tokenize", "--input", "bad.jsonl", "--out-dir", "bad", "--tokenizer", tok)
check(q.returncode != 0 and 'bad.jsonl:2: no "text" field (the record has "content")' in q.stderr
      and "--text-key" in q.stderr and not os.path.exists(os.path.join(WORK, "bad", "tokenize.json")),
      "a record without text: FILE:LINE, --text-key, nothing written: " + q.stderr)
q = rat("tokenize", "--input", "bad.jsonl", "--out-dir", "bad", "--tokenizer", tok, "--text-key", "content")
check(q.returncode != 0 and 'bad.jsonl:1: no "content" field' in q.stderr, "--text-key content: " + q.stderr)

# 3. A vocabulary too small for the text's characters: rat's flags, not sentencepiece's.
p = rat("tokenize", "--input", "plain", "--out-dir", "small", "--vocab-size", 50, "--val-fraction", 0)
check(p.returncode != 0 and "--character_coverage" not in p.stderr and "--vocab-size 50 is too small" in p.stderr
      and "use --vocab-size" in p.stderr and "--character-coverage" in p.stderr,
      "tiny vocab: rat's flags: " + p.stderr)
check(not os.path.exists(os.path.join(WORK, "small", "tokenize.json")), "tiny vocab: no tokenize.json")
# A single paragraph cannot be split into train and val: the error says what to do.
with open(os.path.join(WORK, "one.txt"), "w") as f:
    f.write(paragraphs[0] + "\n")
p = rat("tokenize", "--input", "one.txt", "--out-dir", "one", "--vocab-size", 300)
check(p.returncode != 0 and "holds out all 1 document" in p.stderr and "--val-fraction" in p.stderr,
      "one document: " + p.stderr)

# 4. Two commands: the bundled experiment on this data with data.dir alone (plus the tiny model).
p = rat("train", CONFIG, "data.dir=book", "--print-config")
check(p.returncode == 0, "print-config with data.dir: " + p.stderr)
if p.returncode == 0 and rep:
    import yaml
    cfg = yaml.safe_load(p.stdout)
    book = os.path.join(WORK, "book")
    want = {"vocab_size": rep["vocab_size"], "num_bytes": 2, "ignore_input_index": rep["eos_id"]}
    check({k: cfg["data"][k] for k in want} == want, "data keys from tokenize.json: %s" % cfg["data"])
    check(cfg["model"]["embedding"]["vocab_size"] == rep["vocab_size"], "embedding vocab from tokenize.json")
    for split in ("train", "val"):  # relative paths are to WORK, rat's current directory
        check(os.path.samefile(os.path.join(WORK, cfg["data"][split]["tokenized_file_path"]),
                               os.path.join(book, split + ".bin")),
              "%s.bin from data.dir: %s" % (split, cfg["data"][split]))
p = rat("train", CONFIG, "data.dir=book", "--run-dir", "run", *TINY)
check(p.returncode == 0, "rat train CONFIG data.dir=book: " + p.stderr)
check(os.path.exists(os.path.join(WORK, "run", "latest", "tokenizer.model")), "the checkpoint carries book's tokenizer")

# 5. From another directory: a project of its own (configs/ and data/), run from elsewhere.
proj = os.path.join(WORK, "proj")
os.makedirs(os.path.join(proj, "configs"))
if os.path.isdir(os.path.join(WORK, "book")):
    shutil.copytree(os.path.join(WORK, "book"), os.path.join(proj, "data", "mine"))
text = open(CONFIG).read().replace("  seq_len: 256\n", "  seq_len: 256\n  dir: data/mine\n")
open(os.path.join(proj, "configs", "mine.yaml"), "w").write(text)
os.makedirs(os.path.join(WORK, "elsewhere"))
p = rat("train", "../proj/configs/mine.yaml", "--run-dir", "run2", *TINY, cwd=os.path.join(WORK, "elsewhere"))
check(p.returncode == 0, "from another directory, data.dir relative to the project: " + p.stderr)
# A relative path found nowhere: key, path, places tried, and nothing printed first.
p = rat("train", CONFIG, "data.train.tokenized_file_path=data/nowhere/train.bin", "--run-dir", "run3",
        cwd=os.path.join(WORK, "elsewhere"))
check(p.returncode != 0 and p.stdout == "" and
      "data.train.tokenized_file_path: data/nowhere/train.bin not found" in p.stderr and
      os.path.join(ROOT, "data", "nowhere", "train.bin") in p.stderr and "current directory" in p.stderr,
      "missing data file from elsewhere: %r / %r" % (p.stdout[:200], p.stderr))

if failures:
    sys.exit("%d failure(s)" % len(failures))
print("own_data_check: all checks passed")
