"""`rat tokenize` under SIGKILL: killed at a uniformly random moment (tokenizer
training, encoding, the final writes), into an empty directory or over a
previous complete output made with another vocabulary size, the output
directory is always either complete (tokenize.json present, and train.bin,
val.bin, tokenizer.model and tokenize.json all of one run: the previous one or
the new one, byte for byte as an uninterrupted run writes them) or marked
incomplete (no tokenize.json); temporary files stay bounded and a rerun
completes with none left.

usage: kill9_tokenize.py RAT WORKDIR [--kills N] [--seed X]
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("rat")
ap.add_argument("work")
ap.add_argument("--kills", type=int, default=10)
ap.add_argument("--seed", type=int, default=None)
args = ap.parse_args()
RAT, WORK = os.path.abspath(args.rat), os.path.abspath(args.work)
seed = args.seed if args.seed is not None else random.randrange(1 << 30)
print(f"kill9_tokenize: seed {seed} (rerun with --seed {seed})", flush=True)
rng = random.Random(seed)
ENV = dict(os.environ, OMP_NUM_THREADS="1")
FILES = ["train.bin", "val.bin", "tokenizer.model", "tokenize.json"]
failures = []


def fail(what):
    failures.append(what)
    print("FAIL:", what, flush=True)


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "text"))
os.chdir(WORK)
# 300 documents of made-up words: a second or so of tokenizer training and encoding.
words_rng = random.Random(5)
vocab = ["".join(words_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(words_rng.randint(2, 9)))
         for _ in range(3000)]
for d in range(300):
    with open(f"text/doc{d:03d}.txt", "w") as f:
        f.write(" ".join(words_rng.choice(vocab) for _ in range(400)) + "\n")


def cmd(out, vocab_size):
    return [RAT, "tokenize", "--input", "text", "--out-dir", out, "--vocab-size", str(vocab_size),
            "--val-fraction", "0.1"]


def snapshot(out):
    """The output files' bytes (None when absent), tokenize.json without its timings."""
    snap = {}
    for n in FILES:
        p = os.path.join(out, n)
        if not os.path.exists(p):
            snap[n] = None
        elif n == "tokenize.json":
            with open(p) as f:
                j = json.load(f)
            snap[n] = {k: v for k, v in j.items() if "seconds" not in k and not isinstance(v, str)}
        else:
            with open(p, "rb") as f:
                snap[n] = f.read()
    return snap


def tmps(out):
    return sorted(n for n in os.listdir(out) if ".tmp" in n) if os.path.isdir(out) else []


refs = {}
for name, vs in (("old", 400), ("new", 600)):
    t0 = time.time()
    p = subprocess.run(cmd(f"ref_{name}", vs), env=ENV, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"reference tokenize failed:\n{p.stdout}\n{p.stderr}")
    refs[name] = snapshot(f"ref_{name}")
    ref_s = time.time() - t0
print(f"reference: {ref_s:.2f} s", flush=True)

kills = 0
states = {"absent": 0, "incomplete": 0, "old": 0, "new": 0}
n = 0
while kills < args.kills:  # attempts that finish before their kill time are not counted
    n += 1
    out = f"out{n}"
    over_old = rng.random() < 0.5
    if over_old:
        shutil.copytree("ref_old", out)
    delay = rng.uniform(0, ref_s)
    proc = subprocess.Popen(cmd(out, 600), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        kills += 1
    proc.wait()
    if not os.path.isdir(out):
        state = "absent"
    else:
        snap = snapshot(out)
        state = next((k for k, v in refs.items() if snap == v), None)
        if state is None:
            if snap["tokenize.json"] is not None:
                mixed = {f: [k for k, v in refs.items() if v[f] == snap[f]] for f in FILES}
                fail(f"kill {n} at {delay:.3f} s: tokenize.json present but the files are of "
                     f"different runs: {mixed}")
                state = "mixed"
            else:
                state = "incomplete"
    states[state] = states.get(state, 0) + 1
    left = tmps(out)
    print(f"kill {n} ({'over the old output' if over_old else 'fresh'}) at {delay:.3f} s: "
          f"{state}" + (f", left {left}" if left else ""), flush=True)
    if len(left) > 3:
        fail(f"kill {n}: temporary files pile up: {left}")
    # Rerun to completion: the new output, nothing temporary left.
    p = subprocess.run(cmd(out, 600), env=ENV, capture_output=True, text=True, timeout=600)
    if p.returncode != 0 or snapshot(out) != refs["new"] or tmps(out):
        fail(f"kill {n}: the rerun did not complete cleanly ({p.returncode}, left {tmps(out)})")

print(f"kill9_tokenize: {kills} kills (states after the kill: {states}), seed {seed}: "
      f"{len(failures)} failures", flush=True)
sys.exit(1 if failures else 0)
