"""The Python module `rat` (src/python) against the `rat` commands, on a model trained here
in a second from a few KB of text with its own tokenizer:

- Model.load: properties, config dict, tokenize/detokenize round trip, docstrings;
- generate == `rat generate --greedy` (text and ids, a batch of two) and with a fixed seed;
- score == `rat score` (text and id requests, single and batched);
- eval == `rat eval --data` (a path, and numpy arrays of uint16, int32 and int64);
- logits of a 2-row batch: log_softmax in float64 summed over a continuation == `rat score`
  (prefill + decode steps, another code path), each row independent of its batch mate;
  written into `out` (the same array, np.shares_memory) or a new array;
- rat.train == `rat train` with the same overrides (losses step by step), the returned dicts
  and the on_record calls == the run's metrics.jsonl;
- errors: the same one-line message as the command, as rat.Error (ValueError) or
  rat.FileNotFoundError (FileNotFoundError).

usage: bindings_check.py RAT MODULE_DIR WORKDIR
"""
import json
import math
import os
import shutil
import sys

import numpy as np

RAT, MODULE_DIR, WORK = (os.path.abspath(a) for a in sys.argv[1:4])
sys.path.insert(0, MODULE_DIR)
import rat  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402


check = harness.Checks()
failures = check.failures


def run_rat(*args, ok=True):
    return harness.run(RAT, *args, cwd=WORK, ok=ok, timeout=None)


def cli_error(*args):
    """The one-line message `rat ARGS` fails with (after 'error: ')."""
    p = run_rat(*args, ok=False)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
    assert p.returncode != 0 and lines, f"rat {args} was expected to fail: {p.stderr}"
    return lines[-1][len("error: "):]


def raises(exc, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - reported as a failure below
        return f"<{type(e).__name__}: {e}>"
    return "<no exception>"


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


shutil.rmtree(WORK, ignore_errors=True)
harness.write_docs(os.path.join(WORK, "text"),
                   line=lambda k: f"The pass key is {10000 + 37 * k}. Remember it. The grass is "
                   "green. The sky is blue.\n")
os.chdir(WORK)
harness.tokenize(RAT, WORK)
EXP = os.path.join(WORK, "exp.yaml")
harness.train(RAT, WORK)
MODEL = os.path.join(WORK, "run", "latest")

# --- the module and Model.load ----------------------------------------------------------
check(isinstance(rat.__doc__, str) and "rat.Model.load" in rat.__doc__, "module docstring")
for name in ["load", "config", "vocab_size", "seq_len", "n_params", "n_layers", "dtype", "dir",
             "has_tokenizer", "eos_id", "tokenize", "detokenize", "logits", "eval", "score",
             "generate"]:
    doc = getattr(rat.Model, name).__doc__
    check(doc is not None and len(doc.strip()) > 10, f"rat.Model.{name} has a docstring")
check(rat.train.__doc__ and "metrics.jsonl" in rat.train.__doc__, "rat.train docstring")
check(issubclass(rat.Error, ValueError) and issubclass(rat.FileNotFoundError, FileNotFoundError),
      "exception types")

model = rat.Model.load(MODEL, threads=1)
cfg = model.config
check(isinstance(cfg, dict) and cfg["data"]["seq_len"] == 64 and
      cfg["model"]["backbone"]["num_layers"] == 2, f"config dict {cfg}")
check(model.vocab_size == 300 and model.seq_len == 64 and model.n_layers == 2, "properties")
# Tied: embedding 300x32; per layer RAT and FFN weights; the final norm. Counted by hand from
# SPEC.md would tie this to the layout; the checkpoint's tensor sizes are the independent count.
with open(os.path.join(MODEL, "model.safetensors"), "rb") as f:
    header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
n_file = sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
check(model.n_params == n_file, f"n_params {model.n_params} vs {n_file} in the checkpoint")
check(model.has_tokenizer and model.eos_id == 2 and model.dtype == "f32", "tokenizer, eos, dtype")
text = "The pass key is 10037. Remember it."
ids = model.tokenize(text)
check(isinstance(ids, list) and len(ids) > 3 and model.detokenize(ids) == text,
      f"tokenize/detokenize round trip: {ids}")
check(model.detokenize(np.array(ids, dtype=np.int64)) == text, "detokenize of an array")

# --- generate == rat generate ---------------------------------------------------------
prompt = "The pass key is"
p = run_rat("generate", "--model", MODEL, "--prompt", prompt, "--greedy", "-n", "16")
out = model.generate(prompt, max_new_tokens=16, greedy=True)
check(isinstance(out, str) and p.stdout == prompt + out + "\n",
      f"greedy text: {out!r} vs {p.stdout!r}")
p = run_rat("generate", "--model", MODEL, "--prompt-ids", "5 17 9; 40 8", "--greedy", "-n", "12",
            "--ignore-eos")
cli_ids = [[int(x) for x in ln.split()[1:]] for ln in p.stdout.splitlines()
           if ln.startswith("ids:")]
py_ids = model.generate([[5, 17, 9], [40, 8]], max_new_tokens=12, greedy=True, ignore_eos=True)
check(py_ids == cli_ids and len(cli_ids) == 2, f"greedy ids batch: {py_ids} vs {cli_ids}")
one = model.generate(np.array([5, 17, 9], dtype=np.int32), max_new_tokens=12, greedy=True,
                     ignore_eos=True)
check(one == cli_ids[0], "a 1-D array prompt alone decodes as in the batch")
four = [[5, 17, 9], [40, 8], [3, 3, 3, 3, 3], [61]]
inv = model.generate(four, max_new_tokens=12, greedy=True, ignore_eos=True, batch_invariant=True)
check(inv == [model.generate(q, max_new_tokens=12, greedy=True, ignore_eos=True) for q in four],
      "batch_invariant=True: each of 4 prompts as generated alone")
p = run_rat("generate", "--model", MODEL, "--prompt-ids", "5 17 9", "--seed", "3", "--temp",
            "1.3", "--top-k", "50", "-n", "20", "--ignore-eos")
cli_sampled = [int(x) for x in p.stdout.splitlines()[-1].split()[1:]]
py_sampled = model.generate([5, 17, 9], max_new_tokens=20, seed=3, temperature=1.3, top_k=50,
                            ignore_eos=True)
check(py_sampled == cli_sampled, f"sampled with seed 3: {py_sampled} vs {cli_sampled}")
p = run_rat("generate", "--model", MODEL, "--prompt", prompt, "--greedy", "-n", "24", "--stop",
            "Remember")
out = model.generate(prompt, max_new_tokens=24, greedy=True, stop="Remember")
check(p.stdout == prompt + out + "\n" and "Remember" not in out, f"stop string: {out!r}")

# --- score == rat score --------------------------------------------------------------------
reqs = [("The pass key is", " 10037. Remember it."), ("The grass is", " green."),
        ("The grass is", " blue."), ("", "The sky is blue.")]
id_reqs = [([5, 17, 9, 30], [41, 7]), (list(range(3, 80)), [11, 12, 13])]
with open("requests.jsonl", "w") as f:
    for c, x in reqs:
        f.write(json.dumps({"context": c, "continuation": x}) + "\n")
    for c, x in id_reqs:
        f.write(json.dumps({"context_ids": c, "continuation_ids": x}) + "\n")
p = run_rat("score", "--model", MODEL, "--requests", "requests.jsonl")
cli_scores = [json.loads(ln) for ln in p.stdout.splitlines()]
py_scores = model.score(reqs + id_reqs)
check(len(py_scores) == len(cli_scores) == 6, "score: one result per request")
for (ll, greedy), c in zip(py_scores, cli_scores):
    check(ll == c["loglikelihood"] and greedy == c["is_greedy"], f"score {ll, greedy} vs {c}")
single = model.score(*reqs[0])  # alone: decode steps of one row instead of up to 8
check(abs(single[0] - py_scores[0][0]) < 1e-5 * abs(single[0]) and single[1] == py_scores[0][1],
      f"single score {single} vs {py_scores[0]}")
p = run_rat("score", "--model", MODEL, "--requests", "requests.jsonl", "--ctx", "16")
short = model.score(reqs + id_reqs, ctx=16)
check([s[0] for s in short] == [json.loads(ln)["loglikelihood"] for ln in p.stdout.splitlines()],
      "score with ctx 16 (cut from the left) == rat score --ctx 16")

# --- eval == rat eval --data --------------------------------------------------------------
p = run_rat("eval", "--model", MODEL, "--data", "data/val.bin", "--max-samples", "6", "--json")
cli_eval = json.loads(p.stdout)
py_eval = model.eval("data/val.bin", max_samples=6)
check(all(py_eval[k] == cli_eval[k] for k in ["loss", "ppl", "tokens", "samples", "seq_len"]),
      f"eval {py_eval} vs {cli_eval}")
tokens = np.fromfile("data/val.bin", dtype=np.uint16)
for arr in [tokens, tokens.astype(np.int32), tokens.astype(np.int64)]:
    r = model.eval(arr, max_samples=6)
    check(r == py_eval, f"eval of a {arr.dtype} array: {r}")
p = run_rat("eval", "--model", MODEL, "--data", "data/val.bin", "--max-samples", "6", "--dtype",
            "bf16", "--json")
m16 = rat.Model.load(MODEL, dtype="bf16")
check(m16.dtype == "bf16" and m16.eval(tokens, max_samples=6)["loss"] == json.loads(p.stdout)["loss"],
      "bf16 eval == rat eval --dtype bf16")
p = run_rat("eval", "--model", MODEL, "--data", "data/val.bin", "--seq-len", "32", "--json")
check(model.eval(tokens, seq_len=32)["loss"] == json.loads(p.stdout)["loss"], "eval seq_len 32")

# --- logits ---------------------------------------------------------------------------------
T = 40
batch = np.stack([tokens[100:100 + T], tokens[300:300 + T]]).astype(np.int32)
buf = np.empty((2, T, model.vocab_size), dtype=np.float32)
res = model.logits(batch, out=buf)
check(res is buf and np.shares_memory(res, buf), "logits(out=buf) returns buf itself")
fresh = model.logits(batch.astype(np.int64))
check(fresh.dtype == np.float32 and fresh.shape == (2, T, 300) and fresh.flags.writeable and
      fresh.flags.c_contiguous and np.array_equal(fresh, buf), "logits of an int64 copy")
check(np.allclose(model.logits(batch[1]), buf[1], rtol=1e-5, atol=1e-5),
      "row 1 alone == row 1 in the batch")
K = 25  # context batch[r, :K], continuation batch[r, K:]
with open("logit_reqs.jsonl", "w") as f:
    for r in range(2):
        f.write(json.dumps({"context_ids": batch[r, :K].tolist(),
                            "continuation_ids": batch[r, K:].tolist()}) + "\n")
p = run_rat("score", "--model", MODEL, "--requests", "logit_reqs.jsonl")
for r, line in enumerate(p.stdout.splitlines()):
    want = json.loads(line)
    lg = buf[r].astype(np.float64)
    logp = lg - lg.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    ll = sum(logp[t - 1, batch[r, t]] for t in range(K, T))
    greedy = all(int(np.argmax(lg[t - 1])) == batch[r, t] for t in range(K, T))
    check(abs(ll - want["loglikelihood"]) < 1e-3 * max(1.0, abs(ll)),
          f"row {r}: log_softmax(logits) sum {ll} vs rat score {want['loglikelihood']}")
    check(greedy == want["is_greedy"], f"row {r}: argmax vs is_greedy")
msg = raises(rat.Error, model.logits, np.array([[1, 300]]))
check("token id 300" in msg and "[0, 300)" in msg, "logits: id out of range: " + msg)
msg = raises(rat.Error, model.logits, batch, out=np.empty((2, T, 300), dtype=np.float64))
check("out: expected a writeable C-contiguous float32 array of shape [2, 40, 300]" in msg,
      "logits: bad out: " + msg)
check("dtype float32" in raises(TypeError, model.logits, np.zeros((1, 3), np.float32)),
      "logits of float ids: TypeError")

# --- train == rat train ------------------------------------------------------------------
over = {"trainer.max_steps": 6, "trainer.log_interval": 2, "trainer.eval_interval": 3,
        "optim.optimizer.lr": 3e-3}
seen = []
recs = rat.train("exp.yaml", over, run_dir="pyrun", on_record=seen.append, threads=1)
run_rat("train", "exp.yaml", *[f"{k}={v}" for k, v in over.items()], "--run-dir", "clirun",
        "--quiet")
file_recs = read_jsonl(os.path.join("pyrun", "metrics.jsonl"))
check(recs == file_recs == seen and any("val_loss" in r for r in recs) and
      [r["step"] for r in recs if "loss" in r][-1] == 6,
      f"train records == metrics.jsonl == on_record calls: {recs}")
cli_recs = read_jsonl(os.path.join("clirun", "metrics.jsonl"))
keys = ["step", "loss", "lr", "grad_norm", "val_loss", "val_ppl", "val_tokens"]
strip = [{k: r[k] for k in keys if k in r} for r in recs]
check(strip == [{k: r[k] for k in keys if k in r} for r in cli_recs],
      f"python run == rat train run: {strip} vs {cli_recs}")
check(rat.Model.load("pyrun/latest").eval(tokens, max_samples=2)["tokens"] > 0,
      "the run's latest loads")
msg = raises(rat.Error, rat.train, "exp.yaml", ["trainer.max_steps=2"], run_dir="pyrun")
check(msg == cli_error("train", "exp.yaml", "trainer.max_steps=2", "--run-dir", "pyrun"),
      "a second run into the same directory is refused as by rat train: " + msg)


def stop(_):
    raise KeyError("stop here")


check("stop here" in raises(KeyError, rat.train, "exp.yaml", over, run_dir="pyrun2", on_record=stop),
      "an exception of on_record ends the run and reaches the caller")

# --- errors: rat's messages ------------------------------------------------------------
msg = raises(rat.FileNotFoundError, rat.Model.load, "no_such_dir")
check(msg == cli_error("eval", "--model", "no_such_dir", "--data", "data/val.bin"),
      "missing dir: " + msg)
msg = raises(rat.Error, rat.Model.load, "text")
check(msg == cli_error("eval", "--model", "text", "--data", "data/val.bin"), "not a model: " + msg)
msg = raises(rat.Error, rat.Model.load, MODEL, dtype="f16")
check("dtype: unknown" in msg and "f16" in msg, "bad dtype: " + msg)
msg = raises(rat.FileNotFoundError, model.eval, "no_such.bin")
check(msg == cli_error("eval", "--model", MODEL, "--data", "no_such.bin"), "missing data: " + msg)
msg = raises(rat.Error, model.eval, np.array([5, 1, 400, 3], dtype=np.uint16))
check("token 400 at position 2" in msg, "eval of ids out of range: " + msg)
msg = raises(rat.Error, model.generate, [5, 300], greedy=True)
check("token id 300 at position 1" in msg, "generate: id out of range: " + msg)
msg = raises(rat.Error, model.generate, [5, 6], top_p=1.5)
check(msg == cli_error("generate", "--model", MODEL, "--prompt-ids", "5 6", "--top-p", "1.5"),
      "bad top_p: " + msg)
msg = raises(rat.Error, rat.train, "exp.yaml", ["optim.optimizer.lrr=1"], run_dir="bad")
check(msg == cli_error("train", "exp.yaml", "optim.optimizer.lrr=1", "--run-dir", "bad"),
      "bad override: " + msg)
check(not os.path.exists("bad"), "a bad override writes nothing")
msg = raises(rat.FileNotFoundError, rat.train, "no_such.yaml")
check(msg == cli_error("train", "no_such.yaml"), "missing config: " + msg)
msg = raises(rat.Error, model.score, "", "")
check("continuation is empty" in msg, "empty continuation: " + msg)
nt = os.path.join(WORK, "notok")
shutil.copytree(MODEL, nt)
os.remove(os.path.join(nt, "tokenizer.model"))
bare = rat.Model.load(nt)
check(not bare.has_tokenizer and "tokenizer.model does not exist" in
      raises(rat.Error, bare.generate, "The"), "text prompt without tokenizer")
check(bare.generate([5, 17, 9], max_new_tokens=12, greedy=True, ignore_eos=True) == cli_ids[0],
      "ids without tokenizer")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("bindings_check: all checks passed")
