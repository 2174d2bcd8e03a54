"""`rat eval --task gen|niah` end to end, on a model trained here in a second
from a few KB of text with its own tokenizer (`rat tokenize`, `rat train`):

- niah: `rat tasks niah` cases, greedy answers scored with RULER's
  string_match_all (recomputed here from the predictions file), means per
  length and per (length, depth), the heatmap PNG, the warning for cases past
  the model's context, and the clear error when gnuplot is missing;
- gen: the same predictions at batch 1 and 4, the last line
  `<metric>=<f> n=<int>` equal to `rat metrics` on the predictions file,
  prompt_ids without tokenizer, and bad input (FILE:LINE, a text prompt on a
  model directory without tokenizer.model) failing with nothing written.

usage: eval_gen_check.py RAT WORKDIR
"""
import json
import os
import re
import shutil
import sys

RAT, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
import harness  # noqa: E402

check = harness.Checks()
failures = check.failures


def rat(*args, env=None, ok=True):
    return harness.run(RAT, *args, cwd=WORK, ok=ok, env=dict(os.environ, **(env or {})))


def string_match_all(pred, refs):  # RULER's metric, per case, as a fraction
    return sum(1.0 if r.lower() in pred.lower() else 0.0 for r in refs) / len(refs)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


shutil.rmtree(WORK, ignore_errors=True)
harness.write_docs(os.path.join(WORK, "text"),
                   line=lambda k: f"The pass key is {10000 + 37 * k}. Remember it. The grass is "
                   "green. The sky is blue.\n")
harness.tokenize(RAT, WORK)
MODEL = harness.train(RAT, WORK)

# --- niah -------------------------------------------------------------------
rat("tasks", "niah", "--tokenizer", os.path.join(MODEL, "tokenizer.model"), "--lengths",
    "250,400", "--depths", "0,0.5,1", "--kind", "passkey", "--samples", "2",
    "--max-new-tokens", "8", "--out", "niah.jsonl")
cases = read_jsonl(os.path.join(WORK, "niah.jsonl"))
p = rat("eval", "--model", MODEL, "--task", "niah", "niah.jsonl", "--heatmap", "heat.png",
        "--out", "niah_pred.jsonl", "--batch-size", "4", "--json")
j = json.loads(p.stdout.strip().splitlines()[-1])
preds = read_jsonl(os.path.join(WORK, "niah_pred.jsonl"))
check(len(preds) == len(cases) == j["n"] == 12, f"niah: {len(preds)} predictions of {len(cases)}")
want = [string_match_all(q["prediction"], q["answers"]) for q in preds]
check(all(abs(q["score"] - w) < 1e-12 for q, w in zip(preds, want)), "niah per-case scores")
check(abs(j["score"] - sum(want) / len(want)) < 1e-9, "niah mean")
for q, c in zip(preds, cases):
    check(q["prompt"] == c["prompt"] and q["length"] == c["length"] and q["depth"] == c["depth"],
          "niah predictions keep the case's fields in order")
    check(len(q["prediction"]) > 0, "niah prediction is not empty")
cells = {(c["length"], c["depth"]): c for c in j["by_cell"]}
check(len(cells) == 6 and all(c["n"] == 2 for c in cells.values()), f"niah cells {j['by_cell']}")
for (length, depth), c in cells.items():
    s = [w for q, w in zip(preds, want) if q["length"] == length and q["depth"] == depth]
    check(abs(c["score"] - sum(s) / len(s)) < 1e-9, f"niah cell ({length}, {depth})")
check(sorted(x["length"] for x in j["by_length"]) == [250, 400], "niah by_length")
check("beyond the training length" in p.stderr and "12 of 12 cases" in p.stderr,
      "niah: warning for cases past the context: " + p.stderr)
with open(os.path.join(WORK, "heat.png"), "rb") as f:
    check(f.read(8) == b"\x89PNG\r\n\x1a\n", "heatmap is a PNG")
# Text form: a table, per-length lines, and the metric last.
p = rat("eval", "--model", MODEL, "--task", "niah", "niah.jsonl", "--limit", "3")
last = p.stdout.strip().splitlines()[-1]
check(re.fullmatch(r"string_match_all=[01]\.\d{6} n=3", last) is not None, "niah last line: " + last)
check("length 250: string_match_all=" in p.stdout, "niah per-length line")
# No gnuplot on PATH: a clear error before any work, nothing written.
p = rat("eval", "--model", MODEL, "--task", "niah", "niah.jsonl", "--heatmap", "h2.png", "--out",
        "np2.jsonl", env={"PATH": os.path.join(WORK, "text")}, ok=False)
check(p.returncode != 0 and "gnuplot not found" in p.stderr, "no gnuplot: " + p.stderr)
check(not os.path.exists(os.path.join(WORK, "h2.png")) and
      not os.path.exists(os.path.join(WORK, "np2.jsonl")), "no gnuplot: nothing written")

# --- gen --------------------------------------------------------------------
lines = [
    {"prompt": "The pass key is 10037. Remember it. The pass key is", "answers": ["10037"],
     "id": 1},
    {"prompt": "The grass is", "answers": ["green"], "max_new_tokens": 3},
    {"prompt": "The sky is blue.\nThe pass key is", "answers": ["the pass key"]},
    {"prompt": " ".join(["The grass is green."] * 30) + " The sky is", "answers": ["blue"]},
    {"prompt_ids": [5, 17, 9], "answers": ["x y"]},
    {"prompt": "Remember it.", "answers": ["The grass is green."], "max_new_tokens": 0},
]
with open(os.path.join(WORK, "gen.jsonl"), "w") as f:
    for x in lines:
        f.write(json.dumps(x) + "\n")
outs = {}
for b in (1, 4):
    p = rat("eval", "--model", MODEL, "--task", "gen", "gen.jsonl", "--metric", "rouge_l",
            "--batch-size", str(b), "--max-new-tokens", "12", "--out", f"gen{b}.jsonl")
    outs[b] = p.stdout.strip().splitlines()[-1]
    check(re.fullmatch(r"rouge_l=[01]\.\d{6} n=6", outs[b]) is not None, "gen last line " + outs[b])
g1, g4 = read_jsonl(os.path.join(WORK, "gen1.jsonl")), read_jsonl(os.path.join(WORK, "gen4.jsonl"))
check([q["prediction"] for q in g1] == [q["prediction"] for q in g4], "gen: batch 1 == batch 4")
check(outs[1] == outs[4], "gen: same score at batch 1 and 4")
check(len({q["prediction"] for q in g1}) >= 3, "gen: predictions differ between prompts")
check(g1[0]["id"] == 1 and g1[1]["max_new_tokens"] == 3, "gen: line fields kept")
check(g1[3]["prompt_tokens"] == 64 - 12, f"gen: long prompt cut to T - new: {g1[3]['prompt_tokens']}")
check(re.fullmatch(r"\d+( \d+)*", g1[4]["prediction"]) is None, "gen: ids decoded with tokenizer")
m = rat("metrics", "--predictions", "gen1.jsonl", "--metric", "rouge_l").stdout.strip()
check(m == outs[1], f"gen: rat metrics on --out ({m}) == eval ({outs[1]})")
p = rat("eval", "--model", MODEL, "--task", "gen", "gen.jsonl", "--json", "--limit", "1",
        "--max-prompt-tokens", "5")
j = json.loads(p.stdout)
check(j["metric"] == "qa_f1" and j["n"] == 1 and j["truncated"] == 1, f"gen --json {j}")
p = rat("eval", "--model", MODEL, "--task", "gen", "gen.jsonl", "--json", "--max-prompt-tokens",
        "1000", "--max-new-tokens", "2")
j = json.loads(p.stdout)
check(j["n"] == 6 and j["truncated"] == 0 and j["over_context"] == 1, f"gen --json {j}")

# A model directory without tokenizer.model: ids work, text is refused.
bare = os.path.join(WORK, "bare")
shutil.copytree(MODEL, bare)
os.remove(os.path.join(bare, "tokenizer.model"))
with open(os.path.join(WORK, "ids.jsonl"), "w") as f:
    f.write(json.dumps({"prompt_ids": [5, 17, 9], "answers": ["1 2"]}) + "\n")
p = rat("eval", "--model", bare, "--task", "gen", "ids.jsonl", "--out", "ids_pred.jsonl")
q = read_jsonl(os.path.join(WORK, "ids_pred.jsonl"))[0]
check(re.fullmatch(r"\d+( \d+)*", q["prediction"]) is not None, "ids without tokenizer: " + str(q))
p = rat("eval", "--model", bare, "--task", "gen", "gen.jsonl", "--out", "bare.jsonl", ok=False)
check(p.returncode != 0 and "gen.jsonl:1: a text \"prompt\" needs the model's tokenizer.model"
      in p.stderr, "text prompt without tokenizer: " + p.stderr)
check(not os.path.exists(os.path.join(WORK, "bare.jsonl")), "no tokenizer: nothing written")

# A malformed line is named FILE:LINE; nothing is written.
with open(os.path.join(WORK, "bad.jsonl"), "w") as f:
    f.write(json.dumps(lines[0]) + "\n\n" + '{"prompt": "x", "answers": "y"}\n')
p = rat("eval", "--model", MODEL, "--task", "gen", "bad.jsonl", "--out", "bad_pred.jsonl", ok=False)
check(p.returncode != 0 and "bad.jsonl:3: \"answers\" is not a non-empty list" in p.stderr,
      "malformed line: " + p.stderr)
check(not os.path.exists(os.path.join(WORK, "bad_pred.jsonl")), "malformed: nothing written")
p = rat("eval", "--model", MODEL, "--task", "gen", "gen.jsonl", "--metric", "bleu", ok=False)
check(p.returncode != 0 and "--metric" in p.stderr, "unknown metric: " + p.stderr)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("eval gen/niah checks passed")
