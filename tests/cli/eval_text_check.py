"""`rat eval --text` and `rat eval --task mqar` end to end, with a real tokenizer.

A 400-piece BPE tokenizer is trained by `rat tokenize` on a small generated corpus (English words
with accented letters, CJK, an emoji); a golden RAT / local-attention hybrid (make_case.py) gets that
vocabulary and the tokenizer. The ids of the evaluated texts come from `rat tokenize` with the same
tokenizer (its train.bin: the text's ids, then eos), and the float64 oracle
(tests/python/eval_oracle.py) scores them; `rat eval --text --json` must agree to 1e-5 relative
(the bound of tests/cpp/eval/test_rolling.cc), count every token and every UTF-8 byte, and satisfy
bpb = nll / (ln 2 * bytes) and ppl = exp(nll / tokens) to double rounding. Then the error paths: no
tokenizer, a tokenizer larger than the model, an empty, missing or non-UTF-8 file, bad strides;
and the MQAR runner's output and errors.

usage: eval_text_check.py RAT WORKDIR
"""
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PY = os.path.join(os.path.dirname(HERE), "python")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


def run(rat, *args):
    p = subprocess.run([rat] + [str(a) for a in args], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    return p.returncode, p.stdout, p.stderr


def expect_error(rat, args, part):
    rc, out, err = run(rat, *args)
    lines = err.strip().splitlines()
    check(rc != 0, "exit status of %s (%d)" % (args, rc))
    check(out == "", "nothing on stdout for %s: %r" % (args, out))
    check(len(lines) >= 1 and lines[-1].startswith("error: ") and part in lines[-1],
          "error of %s: want %r in %r" % (args, part, err))


def rel(a, b):
    return abs(a - b) / abs(b)


WORDS = ("the a of to and in is it that for on with as was he be by at this from or have an they which "
         "one you were her all she there would their we him been has when who will more no if out so "
         "said what up its about into than them can only other new some could time these two may then "
         "do first any my now such like our over man me even most made after also did many before must "
         "through back years where much your way well down should because each just those people how "
         "too little state good very make world still own see men work long get here").split()
EXTRA = ["café", "naïve", "—", "€5", "日本語", "Zürich", "🙂"]


def text(rng, lines):
    out = []
    for _ in range(lines):
        ws = [rng.choice(WORDS) if rng.random() > 0.06 else rng.choice(EXTRA) for _ in range(rng.randint(5, 14))]
        out.append(" ".join(ws).capitalize() + ".")
    return "\n".join(out) + "\n"


def main():
    rat, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "corpus"))
    rng = random.Random(1)
    for d in range(3):
        with open(os.path.join(work, "corpus", "doc%d.txt" % d), "w", encoding="utf-8") as f:
            f.write(text(rng, 60))
    tok = os.path.join(work, "tok")
    rc, out, err = run(rat, "tokenize", "--input", os.path.join(work, "corpus"), "--out-dir", tok,
                       "--vocab-size", 400, "--val-fraction", 0)
    assert rc == 0, err
    eos = json.load(open(os.path.join(tok, "tokenize.json")))["eos_id"]

    # The model: the hybrid case with the tokenizer's vocabulary and eos as end of document.
    import yaml
    cfg = yaml.safe_load(open(os.path.join(PY, "cases", "hybrid_rat_local.yaml")))
    cfg["data"]["vocab_size"] = cfg["model"]["embedding"]["vocab_size"] = 400
    cfg["data"]["ignore_input_index"] = eos
    cfg["data"]["seq_len"] = 24
    with open(os.path.join(work, "model.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    case = os.path.join(work, "case")
    subprocess.run(["/usr/bin/python3", os.path.join(PY, "make_case.py"), "--config",
                    os.path.join(work, "model.yaml"), "--out", case, "--batch", "1"],
                   check=True, capture_output=True)
    model = os.path.join(case, "model")
    bare = os.path.join(work, "bare_model")  # the same model without a tokenizer
    shutil.copytree(model, bare)
    shutil.copy(os.path.join(tok, "tokenizer.model"), model)

    texts = {"long": text(random.Random(2), 25), "short": "Hi café 🙂\n"}
    for name, t in texts.items():
        d = os.path.join(work, "text_" + name)
        os.makedirs(d)
        with open(os.path.join(d, "t.txt"), "w", encoding="utf-8") as f:
            f.write(t)
        rc, _, err = run(rat, "tokenize", "--tokenizer", os.path.join(tok, "tokenizer.model"), "--input", d,
                         "--out-dir", d + "_ids", "--val-fraction", 0)
        assert rc == 0, err
    runs = {"long": [(24, 12), (24, 24), (24, 7), (8, 3)], "short": [(24, 12)]}
    for name, t in texts.items():
        path = os.path.join(work, "text_" + name, "t.txt")
        nbytes = len(t.encode("utf-8"))
        import numpy as np
        ids = [int(i) for i in np.fromfile(os.path.join(work, "text_" + name + "_ids", "train.bin"), dtype="<u2")]
        assert ids[-1] == eos
        ids = ids[:-1]
        spec = os.path.join(work, name + "_ids.json")
        json.dump({"ids": ids, "eod": eos, "bytes": nbytes, "runs": runs[name]}, open(spec, "w"))
        subprocess.run(["/usr/bin/python3", os.path.join(PY, "eval_oracle.py"), "rolling", "--model", model,
                        "--ids", spec, "--out", spec + ".out"], check=True)
        want = json.load(open(spec + ".out"))["runs"]
        if name == "short":
            check(len(ids) < 24, "the short text is shorter than a window (%d tokens)" % len(ids))
        for (T, S), w in zip(runs[name], want):
            args = ["eval", "--model", model, "--text", path, "--seq-len", T, "--batch-size", 3, "--json"]
            if S != T // 2:
                args += ["--stride", S]  # else the default, T/2
            rc, out, err = run(rat, *args)
            check(rc == 0, "%s T %d S %d: exit %d %s" % (name, T, S, rc, err))
            if rc:
                continue
            j = json.loads(out)
            what = "%s T %d S %d" % (name, T, S)
            check(j["tokens"] == len(ids), what + ": tokens %d, want %d" % (j["tokens"], len(ids)))
            check(j["bytes"] == nbytes, what + ": bytes %d, want %d" % (j["bytes"], nbytes))
            check(j["stride"] == S and j["windows"] == w["windows"], what + ": stride/windows %s" % j)
            for k in ["nll", "ppl", "bpb"]:
                check(rel(j[k], w[k]) <= 1e-5, what + ": %s %r, oracle %r" % (k, j[k], w[k]))
            check(rel(j["bpb"], j["nll"] / (math.log(2) * nbytes)) <= 1e-12, what + ": bpb = nll / (ln2 bytes)")
            check(rel(j["ppl"], math.exp(j["nll"] / j["tokens"])) <= 1e-12, what + ": ppl = exp(nll / tokens)")
            check(rel(j["ppl_stderr"], j["ppl"] * j["mean_nll_stderr"]) <= 1e-12, what + ": delta method")
            words = len(t.split())
            check(j["words"] == words and rel(j["word_ppl"], math.exp(j["nll"] / words)) <= 1e-12,
                  what + ": word_ppl over %d words" % words)
        # The text output: its last line carries the same numbers.
        rc, out, _ = run(rat, "eval", "--model", model, "--text", path)
        m = re.fullmatch(r"ppl=([0-9.]+) bpb=([0-9.]+) tokens=(\d+)", out.strip().splitlines()[-1])
        check(m is not None, "last line of the text output: %r" % out)
        if m:
            check(rel(float(m.group(1)), want[0]["ppl"]) <= 1e-5 and int(m.group(3)) == len(ids),
                  "text output %r vs oracle ppl %r" % (m.group(0), want[0]["ppl"]))

    # Errors: one line on stderr naming the thing, non-zero exit, nothing on stdout.
    long_txt = os.path.join(work, "text_long", "t.txt")
    expect_error(rat, ["eval", "--model", bare, "--text", long_txt],
                 "rat eval --text needs the model's tokenizer, but %s/tokenizer.model does not exist" % bare)
    small = os.path.join(work, "small_case")
    subprocess.run(["/usr/bin/python3", os.path.join(PY, "make_case.py"), "--config",
                    os.path.join(PY, "cases", "rat_g1.yaml"), "--out", small, "--batch", "1"],
                   check=True, capture_output=True)
    shutil.copy(os.path.join(tok, "tokenizer.model"), os.path.join(small, "model"))
    expect_error(rat, ["eval", "--model", os.path.join(small, "model"), "--text", long_txt],
                 "tokenizer.model: 400 pieces, but the model's vocab_size is 64")
    empty = os.path.join(work, "empty.txt")
    open(empty, "w").close()
    expect_error(rat, ["eval", "--model", model, "--text", empty], "--text %s: the file is empty" % empty)
    expect_error(rat, ["eval", "--model", model, "--text", empty + ".missing"], "not a readable file")
    expect_error(rat, ["eval", "--model", model, "--text", work], "not a readable file")
    latin1 = os.path.join(work, "latin1.txt")
    with open(latin1, "wb") as f:
        f.write("fine\ncaf".encode() + b"\xe9 au lait\n")
    expect_error(rat, ["eval", "--model", model, "--text", latin1],
                 "%s:2: byte 4 of the line is not UTF-8" % latin1)
    expect_error(rat, ["eval", "--model", model, "--text", long_txt, "--stride", 25],
                 "--stride 25: expected 1 <= S <= --seq-len 24")
    expect_error(rat, ["eval", "--model", model, "--text", long_txt, "--seq-len", 8, "--stride", 9],
                 "--stride 9: expected 1 <= S <= --seq-len 8")
    expect_error(rat, ["eval", "--model", model, "--text", long_txt, "--stride", -2], "--stride -2: expected >= 1")
    expect_error(rat, ["eval", "--model", model, "--text", long_txt, "--batch-size", 0], "--batch-size 0")

    # MQAR: output lines, --limit, and its errors.
    pre = os.path.join(work, "mqar", "k3")
    rc, _, err = run(rat, "tasks", "mqar", "--vocab", 64, "--pairs", 3, "--seq-len", 24, "--train", 2,
                     "--test", 20, "--seed", 0, "--out", pre)
    assert rc == 0, err
    rc, out, err = run(rat, "eval", "--model", model, "--task", "mqar", pre)
    m = re.fullmatch(r"acc=([0-9.]+) n=60 examples=20", out.strip().splitlines()[-1]) if rc == 0 else None
    check(m is not None, "mqar last line: %r %r" % (out, err))
    rc, out, err = run(rat, "eval", "--model", model, "--task", "mqar", pre, "--limit", 5, "--json",
                       "--batch-size", 2)
    j = json.loads(out) if rc == 0 else {}
    check(j.get("n") == 15 and j.get("examples") == 5 and j.get("correct", -1) >= 0
          and abs(j.get("acc", -1) - j.get("correct", 0) / 15) < 1e-15, "mqar --limit 5 --json: %r %r" % (out, err))
    expect_error(rat, ["eval", "--model", model, "--task", "mqar", pre + "x"], pre + "x.json: cannot read")
    expect_error(rat, ["eval", "--model", model, "--task", "mqar"], "the task file is missing")
    expect_error(rat, ["eval", "--model", model, "--task", "mqar", pre, "--limit", -3], "--limit -3: expected")
    long_pre = os.path.join(work, "mqar", "long")
    run(rat, "tasks", "mqar", "--vocab", 64, "--pairs", 3, "--seq-len", 32, "--train", 1, "--test", 3,
        "--out", long_pre)
    expect_error(rat, ["eval", "--model", model, "--task", "mqar", long_pre],
                 "examples of 32 tokens, but %s was trained on data.seq_len 24 (give --seq-len 32" % model)
    rc, out, _ = run(rat, "eval", "--model", model, "--task", "mqar", long_pre, "--seq-len", 32)
    check(rc == 0 and out.strip().endswith("n=9 examples=3"), "mqar beyond data.seq_len with --seq-len: %r" % out)
    wide_pre = os.path.join(work, "mqar", "wide")
    run(rat, "tasks", "mqar", "--vocab", 500, "--pairs", 3, "--seq-len", 24, "--train", 1, "--test", 3,
        "--out", wide_pre)
    expect_error(rat, ["eval", "--model", model, "--task", "mqar", wide_pre],
                 "vocab_size 400 is below the task's vocab 500 (%s.json)" % wide_pre)
    with open(pre + ".test.labels.bin", "r+b") as f:
        f.truncate(10)
    expect_error(rat, ["eval", "--model", model, "--task", "mqar", pre],
                 pre + ".test.labels.bin: 5 ids, expected 480")

    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)
    print("rat eval --text / --task mqar: oracle agreement, consistency and errors all as expected")


if __name__ == "__main__":
    main()
