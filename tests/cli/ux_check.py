"""Issue 14's friction points, end to end on a model trained here in seconds:

- run directories: a new run into a previous run's directory is refused (one
  line naming --overwrite and trainer.load_checkpoint=true, nothing written),
  --overwrite replaces it and only a rat run, resuming still works and marks
  metrics.jsonl with {"resumed_at"}; every record carries time and elapsed;
  `train --json` prints JSON only on stdout, every line;
- llama.cpp's flags on generate, eval and score give what the long flags give;
  -f - reads stdin; -t on every command; --version; rat help CMD; sampling
  defaults are llama.cpp's with a printed random seed; bad sampling flags fail
  before any output; a warning past the trained length;
- YAML errors in plain words: a Markdown file, a wrong type, a long key name.

usage: ux_check.py RAT WORKDIR
"""
import json
import os
import re
import shutil
import sys
import time

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402

check = harness.Checks()
failures = check.failures


def rat(*args, ok=True, stdin=None):
    return harness.run(RAT, *args, cwd=WORK, ok=ok, stdin=stdin, timeout=None)


def read(path):
    with open(os.path.join(WORK, path)) as f:
        return f.read()


def records(run):
    return [json.loads(l) for l in read(run + "/metrics.jsonl").splitlines() if l.strip()]


def all_json(text):
    try:
        return [json.loads(l) for l in text.splitlines()]
    except ValueError:
        return None


shutil.rmtree(WORK, ignore_errors=True)
harness.write_docs(os.path.join(WORK, "text"))
harness.tokenize(RAT, WORK, "-t", "1")  # -t: on every command
with open(os.path.join(WORK, "exp.yaml"), "w") as f:
    f.write(harness.experiment(steps=6, log_interval=1, eval_interval=2, save_interval="0.5"))

# --- run directories, metrics time, --json --------------------------------------------
t0 = time.time()
p = rat("train", "exp.yaml", "--json", "-t", "1")
t1 = time.time()
out = all_json(p.stdout)
check(out is not None and len(out) > 0, "train --json: stdout is JSON, every line:\n" + p.stdout)
if out:
    check(any("val_loss" in j for j in out), "train --json: validation records are JSON")
    check("steps" in out[-1] and "latest" in out[-1], "train --json: the summary last")
recs = records("run")
check(all("time" in r and "elapsed" in r for r in recs), f"time and elapsed in every record: {recs[0]}")
check(all(t0 - 1 <= r["time"] <= t1 + 1 for r in recs), "time is Unix seconds of the run")
check(all(0 <= r["elapsed"] <= t1 - t0 + 1 for r in recs), "elapsed: seconds since the start")
el = [r["elapsed"] for r in recs]
check(el == sorted(el), f"elapsed never decreases: {el}")
first = read("run/metrics.jsonl")

# A new run into it: refused, one line, both ways out, nothing written.
p = rat("train", "exp.yaml", "--quiet", ok=False)
err = p.stderr.strip()
check(p.returncode != 0 and len(err.splitlines()) == 1, "rerun refused in one line: " + err)
check("--overwrite" in err and "trainer.load_checkpoint=true" in err and "metrics.jsonl" in err,
      "the refusal says what is there and both ways out: " + err)
check(read("run/metrics.jsonl") == first, "refused run wrote nothing to metrics.jsonl")

# Resuming still works: a marker, then the new steps; stdout stays JSON.
tr0 = time.time()
p = rat("train", "exp.yaml", "--json", "trainer.load_checkpoint=true", "trainer.max_steps=8")
tr1 = time.time()
check(all_json(p.stdout) is not None, "resumed train --json: stdout JSON only:\n" + p.stdout)
check("resumed from" in p.stderr, "resumed --json run says so on stderr: " + p.stderr)
recs = records("run")
marks = [r for r in recs if "resumed_at" in r]
check(len(marks) == 1 and marks[0]["resumed_at"] == 6, f"one resume marker at step 6: {marks}")
after = recs[recs.index(marks[0]):]
el = [r["elapsed"] for r in after]
check(el == sorted(el) and el[-1] <= tr1 - tr0 + 0.01,
      f"elapsed counts from the resumed process's start: {el}, it ran {tr1 - tr0:.2f} s")
steps = [r["step"] for r in recs if "loss" in r]
check(steps == list(range(1, 9)), f"steps 1..8 once each: {steps}")

# --overwrite: a fresh history.
rat("train", "exp.yaml", "--quiet", "--overwrite")
recs = records("run")
check([r["step"] for r in recs if "loss" in r] == list(range(1, 7)) and
      not any("resumed_at" in r for r in recs), "--overwrite starts a fresh metrics.jsonl")
check(os.path.exists(os.path.join(WORK, "run", "latest", "model.safetensors")), "overwrite saved")

# load_checkpoint=true with nothing to resume from: refused too.
os.makedirs(os.path.join(WORK, "half"))
shutil.copy(os.path.join(WORK, "run", "metrics.jsonl"), os.path.join(WORK, "half"))
p = rat("train", "exp.yaml", "--quiet", "--run-dir", "half", "trainer.load_checkpoint=true",
        ok=False)
check(p.returncode != 0 and "--overwrite" in p.stderr, "no latest to resume: refused: " + p.stderr)
# A directory that is no rat run is never emptied.
os.makedirs(os.path.join(WORK, "mine"))
with open(os.path.join(WORK, "mine", "notes.txt"), "w") as f:
    f.write("keep me\n")
p = rat("train", "exp.yaml", "--quiet", "--run-dir", "mine", "--overwrite", ok=False)
check(p.returncode != 0 and "not a rat run directory" in p.stderr, "--overwrite on a foreign "
      "directory refused: " + p.stderr)
check(os.listdir(os.path.join(WORK, "mine")) == ["notes.txt"], "foreign directory untouched")

# --- familiar flags -------------------------------------------------------------------
M = "run/latest"
long_form = rat("generate", "--model", M, "--prompt", "The pass key", "--max-new-tokens", "6",
                "--seed", "3", "--temperature", "0.7", "--top-k", "20", "--top-p", "0.9",
                "--min-p", "0.02", "--repetition-penalty", "1.1", "--json")
short = rat("generate", "-m", M, "-p", "The pass key", "-n", "6", "-s", "3", "--temp", "0.7",
            "--top-k", "20", "--top-p", "0.9", "--min-p", "0.02", "--repeat-penalty", "1.1",
            "-t", "1", "--json")
ids = lambda p: json.loads(p.stdout)["outputs"][0]["ids"]
check(ids(short) == ids(long_form), "generate: llama.cpp flags = long flags")
stdin = rat("generate", "-m", M, "-f", "-", "-n", "6", "-s", "3", "--temp", "0.7", "--top-k",
            "20", "--top-p", "0.9", "--min-p", "0.02", "--repeat-penalty", "1.1", "--json",
            stdin="The pass key")
check(ids(stdin) == ids(long_form), "generate -f - reads the prompt from stdin")
# Defaults: llama.cpp's sampling, a random seed printed (and reproducible with -s).
p = rat("generate", "-m", M, "-p", "The pass key", "-n", "8", "--json")
m = re.search(r"seed: (\d+)", p.stderr)
check(m is not None, "a random seed is printed: " + p.stderr)
if m:
    again = rat("generate", "-m", M, "-p", "The pass key", "-n", "8", "-s", m.group(1), "--json")
    check(ids(again) == ids(p), "the printed seed reproduces the output")
    explicit = rat("generate", "-m", M, "-p", "The pass key", "-n", "8", "-s", m.group(1),
                   "--temp", "0.8", "--top-k", "40", "--top-p", "0.95", "--min-p", "0.05",
                   "--repeat-penalty", "1", "--json")
    check(ids(explicit) == ids(p), "default sampling = temp 0.8, top-k 40, top-p 0.95, min-p 0.05")
# Bad flags fail before the prompt is echoed.
for bad in (["--top-p", "2"], ["--temp", "-1"], ["--min-p", "1.5"], ["--top-k", "-3"],
            ["--repeat-penalty", "0"], ["-s", "-5"], ["-c", "-1"]):
    p = rat("generate", "-m", M, "-p", "The pass key", *bad, ok=False)
    check(p.returncode != 0 and p.stdout == "" and bad[0] in p.stderr,
          f"generate {bad}: refused before any output: {p.stdout!r} {p.stderr!r}")
# -c caps prompt + new tokens; past data.seq_len (64) a warning.
p = rat("generate", "-m", M, "-p", "The pass key", "-n", "100", "-c", "20", "--greedy", "--json",
        "--ignore-eos")
j = json.loads(p.stdout)["outputs"][0]
check(len(j["prompt_ids"]) + len(j["ids"]) == 20, f"-c 20: {len(j['prompt_ids'])} + {len(j['ids'])}")
check("warning" not in p.stderr, "no warning within the trained length: " + p.stderr)
p = rat("generate", "-m", M, "-p", "The pass key", "-n", "80", "--greedy", "--ignore-eos")
check("warning:" in p.stderr and "data.seq_len" in p.stderr, "warning past seq_len: " + p.stderr)
# eval and score.
val_text = read("text/doc5.txt")
a = rat("eval", "--model", M, "--text", "text/doc5.txt", "--seq-len", "32", "--batch-size", "2",
        "--json")
b = rat("eval", "-m", M, "-f", "-", "-c", "32", "-b", "2", "-t", "1", "--json", stdin=val_text)
ja, jb = json.loads(a.stdout.splitlines()[-1]), json.loads(b.stdout.splitlines()[-1])
for k in ("ppl", "loss", "bits_per_byte"):
    if k in ja:
        check(ja[k] == jb.get(k), f"eval -m -f - -c -b: {k} {ja[k]} vs {jb.get(k)}")
with open(os.path.join(WORK, "req.jsonl"), "w") as f:
    f.write('{"context": "The pass key is", "continuation": " 10000"}\n'
            '{"context": "The grass", "continuation": " is green."}\n')
a = rat("score", "--model", M, "--requests", "req.jsonl", "--batch-size", "2", "--ctx", "32")
b = rat("score", "-m", M, "--requests", "req.jsonl", "-b", "2", "-c", "32", "-t", "2")
check(a.stdout == b.stdout and a.stdout.count("loglikelihood") == 2, "score: short flags")
p = rat("score", "-m", M, "--requests", "req.jsonl", "-t", "0", ok=False)
check(p.returncode != 0 and "--threads" in p.stderr, "-t 0 refused: " + p.stderr)
# -b: the prompt prefilled in pieces of 3 tokens continues the same state.
whole = rat("generate", "-m", M, "-p", "The pass key is 1234. The grass", "-n", "8", "--greedy",
            "--json")
pieces = rat("generate", "-m", M, "-p", "The pass key is 1234. The grass", "-n", "8", "--greedy",
             "-b", "3", "--json")
check(json.loads(whole.stdout)["outputs"][0]["ids"] == json.loads(pieces.stdout)["outputs"][0]["ids"],
      "generate -b 3 == one prefill pass")
p = rat("generate", "-m", M, "-p", "x", "-b", "-1", ok=False)
check(p.returncode != 0 and "--batch-size" in p.stderr, "generate -b -1 refused: " + p.stderr)
for flag, name in (("-np", "--parallel"), ("-ub", "--ubatch")):
    p = rat("serve", "-m", M, flag, "abc", ok=False)
    check(p.returncode != 0 and name in p.stderr, f"serve {flag} is {name}: " + p.stderr)
p = rat("--version")
check(re.match(r"rat \d+\.\d+\.\d+", p.stdout) is not None, "--version: " + p.stdout)
check(rat("help", "generate").stdout == rat("generate", "--help").stdout, "rat help generate")
check(rat("help").stdout == rat("--help").stdout, "rat help")
p = rat("help", "nosuch", ok=False)
check(p.returncode != 0 and "nosuch" in p.stderr, "rat help nosuch: " + p.stderr)

# --- YAML errors ----------------------------------------------------------------------
with open(os.path.join(WORK, "README.md"), "w") as f:
    f.write("# My model\n\n* trains fast\n* small\n")
p = rat("train", "README.md", ok=False)
check(p.returncode != 0 and "anchor is not defined" not in p.stderr and
      "README.md:3:" in p.stderr and "expected an experiment config" in p.stderr and
      "YAML file?" in p.stderr, "rat train README.md: " + p.stderr)
p = rat("train", "exp.yaml", "trainer.max_steps=abc", ok=False)
check("trainer.max_steps: got 'abc', expected an integer" in p.stderr, "max_steps=abc: " + p.stderr)
p = rat("train", "exp.yaml", "optim.optimizer.learning_rate=1", ok=False)
check("did you mean 'optim.optimizer.lr'" in p.stderr, "learning_rate suggests lr: " + p.stderr)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("ux_check: all checks passed")
